"""Learned per-node load forecasts for the planner, picked up from the model registry while running.

:class:`NodeForecasts` gives the planner ``SiteForecast.node_load_upper_w``: per upstream node
(``SiteIndex.node_ids`` order) the highest upper interval bound its registered forecaster
predicts over the horizon, or NaN where the node has no usable model (it stays on the
baseline: the per-server peak forecast the chain rows are built from).

The registry is read off the event loop: every ``reload_s`` a daemon thread asks for each
node's latest version, loads a newer one, brings it up to date from the stored readings and
hands it over; the loop installs it at its next decision. A version whose metadata does not say
it beat persistence on its held-out range is not used. A model that raises gives NaN for its
node, a status and an error count, and is reloaded at the next check; the loop goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from wattwise.control.loop import LatestValues
from wattwise.control.model_registry import DEFAULT_PREFIX, model_name, node_series
from wattwise.decide.index import SiteIndex
from wattwise.predict.base import Forecaster, ModelRecord, ModelRegistry, Series
from wattwise.predict.registry import load_model
from wattwise.store.base import Bucket

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


class History(Protocol):
    """Where a freshly loaded model catches up on readings newer than its training range."""

    def range(self, device_id: str, metric: str, start_s: float, end_s: float, step_s: float) -> list[Bucket]:
        """Mean per ``step_s`` bucket over ``[start_s, end_s)``."""
        ...


@dataclass(frozen=True, slots=True)
class NodeForecastStatus:
    """What forecasts one node's load.

    Attributes:
        node_id: The upstream node.
        source: ``model`` (a registered forecaster) or ``baseline`` (none usable).
        version: Registry version in use, or the one rejected or failing; ``None`` when none.
        message: Why, in words (rejected, failing, not registered).
    """

    node_id: str
    source: Literal["model", "baseline"]
    version: int | None
    message: str


@dataclass
class _Loaded:
    version: int
    model: Forecaster
    step_s: float
    horizon_s: float
    last_t_s: float = float("-inf")
    bucket_t_s: float = float("nan")
    bucket_sum: float = 0.0
    bucket_n: int = 0


@dataclass(frozen=True)
class _Outcome:
    node_id: str
    version: int
    loaded: _Loaded | None
    message: str


class NodeForecasts:
    """Per-node load forecasters from a registry, reloaded without a restart.

    Args:
        index: The site's arrays (node ids and kinds give the model names and metrics).
        registry: Where ``wattwise train`` saved the models (the store's model table).
        history: Stored readings a newly loaded model catches up from (``None``: it catches up
            from the loop's readings only, within its gap-filling limit).
        reload_s: Seconds (of the controller's clock) between registry checks.
        prefix: Model name prefix (``<prefix>/<node id>``).
    """

    def __init__(
        self,
        index: SiteIndex,
        registry: ModelRegistry,
        history: History | None = None,
        *,
        reload_s: float = 60.0,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self.index = index
        self.registry = registry
        self.history = history
        self.reload_s = reload_s
        self.prefix = prefix
        self.nodes = node_series(index)
        self.errors_total = 0
        self.registry_error: str | None = None
        self._models: dict[str, _Loaded] = {}
        self._status: dict[str, NodeForecastStatus] = {}
        self._seen: dict[str, int] = {}  # newest version looked at per node (used or not)
        self._inbox: list[_Outcome] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_check_s = float("-inf")

    # ---- the loop's side --------------------------------------------------------------
    def observe(self, latest: LatestValues, now_s: float, horizon_s: float) -> FloatArray:
        """Feed the latest node loads and return each node's upper load bound over ``horizon_s``, W (NaN: none)."""
        self._install()
        self._maybe_check(now_s)
        out = np.full(len(self.nodes), np.nan)
        for i, (node_id, metric) in enumerate(self.nodes):
            loaded = self._models.get(node_id)
            if loaded is not None:
                out[i] = self._predict(node_id, loaded, latest.values.get((node_id, metric)), horizon_s)
        return out

    def status(self) -> list[NodeForecastStatus]:
        """One status per node, in ``index.node_ids`` order."""
        return [
            self._status.get(n, NodeForecastStatus(n, "baseline", None, "no model registered")) for n, _ in self.nodes
        ]

    def problems(self) -> dict[str, str]:
        """Node → error text for nodes whose model failed (and ``registry`` when the last check could not read)."""
        out = {s.node_id: s.message for s in self._status.values() if s.message.startswith("failed")}
        if self.registry_error is not None:
            out["registry"] = self.registry_error
        return out

    def _predict(self, node_id: str, loaded: _Loaded, reading: tuple[float, float] | None, horizon_s: float) -> float:
        try:
            if reading is not None:
                _feed(loaded, *reading)
            h_s = max(loaded.step_s, loaded.step_s * np.floor(min(horizon_s, loaded.horizon_s) / loaded.step_s))
            upper = float(np.max(loaded.model.predict(float(h_s), loaded.step_s).upper))
        except Exception as err:  # a broken model must not stop the decision (log on transition)
            self.errors_total += 1
            message = f"failed: {type(err).__name__}: {err}"
            if not self._status.get(node_id, _BASE).message.startswith("failed"):
                logger.exception("node %s forecaster v%d failing, baseline used", node_id, loaded.version)
            self._status[node_id] = NodeForecastStatus(node_id, "baseline", loaded.version, message)
            with self._lock:
                self._seen.pop(node_id, None)  # reload (and catch up again) at the next check
            return float("nan")
        if self._status.get(node_id, _BASE).message.startswith("failed"):
            logger.info("node %s forecaster v%d recovered", node_id, loaded.version)
        self._status[node_id] = NodeForecastStatus(node_id, "model", loaded.version, "in use")
        return upper

    def _install(self) -> None:
        with self._lock:
            inbox, self._inbox = self._inbox, []
        for o in inbox:
            old = self._status.get(o.node_id, _BASE)
            if o.loaded is not None:
                self._models[o.node_id] = o.loaded
                if old.version != o.version or not old.message.startswith("failed"):  # a reload keeps its failure
                    self._status[o.node_id] = NodeForecastStatus(o.node_id, "model", o.version, "in use")
                    logger.info("node %s: forecaster v%d in use", o.node_id, o.version)
            else:
                self._models.pop(o.node_id, None)
                self._status[o.node_id] = NodeForecastStatus(o.node_id, "baseline", o.version, o.message)
                logger.warning("node %s: v%d not used (%s); baseline forecast", o.node_id, o.version, o.message)

    def _maybe_check(self, now_s: float) -> None:
        if now_s - self._last_check_s < self.reload_s:
            return
        if self._thread is not None and self._thread.is_alive():
            return  # a slow registry: the previous check still runs, the loop does not wait
        self._last_check_s = now_s
        self._thread = threading.Thread(target=self.check, args=(now_s,), name="node-forecasts", daemon=True)
        self._thread.start()

    @property
    def checking(self) -> bool:
        """Whether a registry check is running now."""
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout_s: float | None = None) -> None:
        """Wait for the running registry check, if any (tests, an orderly shutdown)."""
        if self._thread is not None:
            self._thread.join(timeout_s)

    # ---- the checking thread's side ---------------------------------------------------
    def check(self, now_s: float) -> None:
        """Look for newer versions and load them (blocking: runs in a thread; public for tests)."""
        for node_id, metric in self.nodes:
            name = model_name(node_id, self.prefix)
            try:
                rec = self.registry.latest(name)
            except Exception as err:  # a registry outage is a status; the loop keeps its models
                logger.exception("model registry: cannot read %s", name)
                self.registry_error = f"{type(err).__name__}: {err}"
                return
            with self._lock:
                seen = self._seen.get(node_id, 0)
            self.registry_error = None
            if rec is None or rec.version <= seen:
                continue
            outcome = self._load(node_id, metric, rec, now_s)
            with self._lock:
                self._seen[node_id] = rec.version
                self._inbox.append(outcome)

    def _load(self, node_id: str, metric: str, rec: ModelRecord, now_s: float) -> _Outcome:
        meta = dict(rec.meta)
        if meta.get("beats_baseline") != "true":
            why = f"did not beat persistence on its held-out range (MAPE {meta.get('eval_mape_pct', '?')} %"
            return _Outcome(node_id, rec.version, None, f"{why} vs {meta.get('eval_persistence_mape_pct', '?')} %)")
        try:
            model = load_model(rec.blob)
            if not isinstance(model, Forecaster):
                return _Outcome(node_id, rec.version, None, f"not a forecaster: {type(model).__name__}")
            step_s, horizon_s = float(meta["step_s"]), float(meta["horizon_s"])
            loaded = _Loaded(rec.version, model, step_s, horizon_s)
            if self.history is not None:
                _catch_up(loaded, self.history, node_id, metric, now_s)
        except Exception as err:  # an unloadable version leaves the node on its baseline
            logger.exception("node %s: cannot load v%d", node_id, rec.version)
            return _Outcome(node_id, rec.version, None, f"failed to load: {type(err).__name__}: {err}")
        return _Outcome(node_id, rec.version, loaded, "")


_BASE = NodeForecastStatus("", "baseline", None, "")


def _catch_up(loaded: _Loaded, history: History, node_id: str, metric: str, now_s: float) -> None:
    """Feed the stored buckets between the model's training end and the last whole bucket before now."""
    step_s = loaded.step_s
    start_s = loaded.model.training_range.end_s + step_s
    end_s = np.floor(now_s / step_s) * step_s
    if end_s <= start_s:
        return
    buckets = history.range(node_id, metric, start_s, float(end_s), step_s)
    if buckets:
        loaded.model.update(_series([b.t_s for b in buckets], [b.mean_value for b in buckets]))


def _feed(loaded: _Loaded, value: float, t_s: float) -> None:
    """Average readings per ``step_s`` bucket (as training did) and give each finished bucket to the model."""
    if t_s <= loaded.last_t_s:
        return  # the same reading seen at an earlier decision
    loaded.last_t_s = t_s
    bucket_t_s = float(np.floor(t_s / loaded.step_s) * loaded.step_s)
    if bucket_t_s == loaded.bucket_t_s:
        loaded.bucket_sum += value
        loaded.bucket_n += 1
        return
    if loaded.bucket_n and bucket_t_s > loaded.bucket_t_s:
        loaded.model.update(_series([loaded.bucket_t_s], [loaded.bucket_sum / loaded.bucket_n]))
    loaded.bucket_t_s, loaded.bucket_sum, loaded.bucket_n = bucket_t_s, value, 1


def _series(t_s: Sequence[float], value: Sequence[float]) -> Series:
    return Series(t_s=np.asarray(t_s, dtype=np.float64), value=np.asarray(value, dtype=np.float64))
