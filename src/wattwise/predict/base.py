"""Contracts and values of the prediction layer.

Everything here is pure: models are fitted on a history handed in, predict from it, and
draw randomness only from a ``seed`` given to their constructor. Values that leave the layer
are frozen dataclasses holding NumPy arrays (the arrays are copied and made read-only).

Roles (STYLE.md: one verb set per role):

* :class:`Forecaster` -- ``fit(history)``, ``update(new)``, ``predict(horizon_s, step_s)``
  and the batch verb ``predict_paths(series, origins_t_s, horizon_s)`` used by backtests.
* :class:`InstabilityDetector` -- ``fit(train)``, ``score(frame)`` → per-sample instability
  score, alarm flag and failure probability of one node or processor.
* :class:`FailurePredictor` -- ``fit(train)``, ``predict(frame, horizon_s)`` → probability of
  failure within the horizon with the top contributing signals.
* :class:`ModelRegistry` -- ``save(name, version, blob, meta)`` and ``latest(name)``.

>>> s = Series(t_s=np.array([0.0, 60.0, 120.0]), value=np.array([1.0, 2.0, 3.0]))
>>> s.step_s
60.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _frozen(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = np.array(values, dtype=np.float64, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class Series:
    """A univariate time series: sample times (s) and values in the metric's SI unit.

    Attributes:
        t_s: Strictly increasing sample times, seconds.
        value: One value per time; NaN marks a missing sample.
    """

    t_s: FloatArray
    value: FloatArray

    def __post_init__(self) -> None:
        object.__setattr__(self, "t_s", _frozen(self.t_s))
        object.__setattr__(self, "value", _frozen(self.value))

    def __len__(self) -> int:
        return int(self.t_s.shape[0])

    @property
    def step_s(self) -> float:
        """Median spacing of the samples, seconds (0 when fewer than two samples)."""
        if len(self) < 2:
            return 0.0
        return float(np.median(np.diff(self.t_s)))

    def slice_s(self, start_s: float, end_s: float) -> Series:
        """The samples with ``start_s <= t_s < end_s``."""
        keep = (self.t_s >= start_s) & (self.t_s < end_s)
        return Series(t_s=self.t_s[keep], value=self.value[keep])


@dataclass(frozen=True)
class Forecast:
    """A point forecast with a calibrated central interval.

    Attributes:
        t_s: Target times, seconds.
        point: Point forecast per target time.
        lower: Lower interval bound (``lower <= point``).
        upper: Upper interval bound (``point <= upper``); planners use this one.
        level: Nominal coverage of the interval, e.g. 0.95.
    """

    t_s: FloatArray
    point: FloatArray
    lower: FloatArray
    upper: FloatArray
    level: float

    def __post_init__(self) -> None:
        for name in ("t_s", "point", "lower", "upper"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))


@dataclass(frozen=True)
class ForecastPaths:
    """Forecasts from many origins at once (rows: origins, columns: horizon steps).

    Attributes:
        origin_t_s: Origin times (the last sample each forecast may use), seconds.
        lead_s: Lead time of each column, seconds (``step_s, 2 step_s, ...``).
        point: ``(n_origins, n_leads)`` point forecasts.
        lower: Lower bounds, same shape.
        upper: Upper bounds, same shape.
        level: Nominal coverage of the interval.
    """

    origin_t_s: FloatArray
    lead_s: FloatArray
    point: FloatArray
    lower: FloatArray
    upper: FloatArray
    level: float

    def __post_init__(self) -> None:
        for name in ("origin_t_s", "lead_s", "point", "lower", "upper"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))


@dataclass(frozen=True)
class Frame:
    """Multivariate samples of one node, processor or device.

    Attributes:
        t_s: Sample times, seconds, strictly increasing.
        values: ``(n_samples, n_signals)`` values; NaN marks a missing sample.
        signals: Name of each column (metric names with their unit suffix).
    """

    t_s: FloatArray
    values: FloatArray
    signals: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "t_s", _frozen(self.t_s))
        values = np.array(self.values, dtype=np.float64, copy=True)
        if values.ndim == 1:
            values = values[:, None]
        values.setflags(write=False)
        object.__setattr__(self, "values", values)

    def __len__(self) -> int:
        return int(self.t_s.shape[0])


@dataclass(frozen=True)
class InstabilityScore:
    """Per-sample instability of one node or processor.

    Attributes:
        t_s: Sample times, seconds.
        score: Instability score (dimensionless, larger is less stable).
        alarm: Whether the detector raises an alarm at this sample.
        failure_prob_frac: Probability (0-1) that the node is failing or about to.
        threshold: The score above which an alarm is raised (fixed at fit time).
        top_signals: Per sample, the signal contributing most to the score.
    """

    t_s: FloatArray
    score: FloatArray
    alarm: BoolArray
    failure_prob_frac: FloatArray
    threshold: float
    top_signals: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class FailureRisk:
    """Probability of a failure within a horizon, per sample, with its causes.

    Attributes:
        t_s: Sample times at which the risk is assessed, seconds.
        horizon_s: The horizon the probability refers to, seconds.
        failure_prob_frac: Probability (0-1) of failure within ``horizon_s`` after ``t_s``.
        alarm: Whether the predictor's fixed decision threshold is crossed.
        top_signals: The contributing signals of the latest sample, strongest first.
    """

    t_s: FloatArray
    horizon_s: float
    failure_prob_frac: FloatArray
    alarm: BoolArray
    top_signals: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class TrainingRange:
    """The time range a model was fitted on (never evaluated on it)."""

    start_s: float
    end_s: float


@runtime_checkable
class Forecaster(Protocol):
    """Point + interval forecaster of one series on a regular grid."""

    seed: int
    level: float

    @property
    def training_range(self) -> TrainingRange:
        """The range of the history given to ``fit``."""
        ...

    def fit(self, history: Series) -> None:
        """Fit the model and its interval calibration on ``history``.

        Raises:
            PredictionError: History too short, constant, or unusable.
        """
        ...

    def update(self, new: Series) -> None:
        """Append observations newer than the history without refitting."""
        ...

    def predict(self, horizon_s: float, step_s: float) -> Forecast:
        """Forecast ``horizon_s`` ahead of the last observation at ``step_s`` spacing."""
        ...

    def predict_paths(self, series: Series, origins_t_s: FloatArray, horizon_s: float) -> ForecastPaths:
        """Forecast from many origins of ``series``; each uses only samples up to its origin."""
        ...


@runtime_checkable
class InstabilityDetector(Protocol):
    """Instability score and failure probability of a node from its telemetry."""

    seed: int

    def fit(self, train: Frame) -> None:
        """Learn normal behaviour and fix the alarm threshold from ``train`` only."""
        ...

    def score(self, frame: Frame) -> InstabilityScore:
        """Score every sample of ``frame`` using only samples up to it (causal)."""
        ...


@runtime_checkable
class FailurePredictor(Protocol):
    """Probability that a device fails within a horizon."""

    seed: int

    def fit(self, train: Frame) -> None:
        """Learn normal behaviour (and failures, when labelled) from ``train`` only."""
        ...

    def predict(self, frame: Frame, horizon_s: float) -> FailureRisk:
        """Failure probability within ``horizon_s`` at every sample of ``frame``."""
        ...


@dataclass(frozen=True)
class ModelRecord:
    """One stored model version.

    Attributes:
        name: Model name (e.g. ``demand/pdu6``).
        version: Monotonic version number, starting at 1.
        blob: The serialized model.
        meta: Text metadata: training range, metrics, class, seed.
    """

    name: str
    version: int
    blob: bytes
    meta: tuple[tuple[str, str], ...]


class ModelRegistry(Protocol):
    """Versioned model storage (file-backed in the CLI, the store's model table for the controller)."""

    def save(self, name: str, version: int, blob: bytes, meta: dict[str, str]) -> None:
        """Store ``blob`` as ``name`` version ``version``; an existing version is never overwritten."""
        ...

    def latest(self, name: str) -> ModelRecord | None:
        """The highest version of ``name``, or ``None`` when none is stored."""
        ...
