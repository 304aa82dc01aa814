"""Workload-signature server power model calibrated on SPECpower_ssj2008 curves.

``P = idle_w + (peak_w - idle_w) * g(cpu_frac) + w_mem * mem_frac + w_net * net_frac
+ w_sto * storage_frac + w_amb * max(0, ambient_c - ambient_ref_c)``

* ``idle_w`` and ``peak_w`` are the server's datasheet points (SPECpower's active idle and
  100 % results, known for 1 088 published systems);
* ``g`` is the normalised load-to-power shape (piecewise linear between the 10 % knots),
  learned from the SPECpower curves it is fitted on. Shape families, all keyed on the
  server's ``idle_w / peak_w`` ratio (energy-proportional servers have more convex curves):

  - ``"idle_ratio"``: each knot is a linear function of the ratio (least squares);
  - ``"median"``: the median normalised curve, whatever the ratio;
  - ``"neighbours"``: a Gaussian-kernel average of the fitted curves' shapes, weighted by
    how close their ratio is to this server's (``bandwidth_frac`` wide, in ratio units);
  - ``"auto"`` (default): picks one of the above (and the bandwidth from
    ``candidate_bandwidths_frac``) by leave-one-curve-out on the curves given to
    :meth:`SpecPowerModel.fit_curves` only, scored by the MAPE of the 10-90 % points; a
    server left out of those curves therefore takes no part in the choice.

  The baseline :class:`LinearPowerModel` uses ``g(u) = u``;
* the memory, network, storage and ambient (fan) terms are fitted by non-negative least
  squares on measured power when telemetry is available (:meth:`SpecPowerModel.fit_residual`);
  SPECpower varies only CPU load, so they start at zero and the SPECpower evaluation does not
  test them.

>>> m = SpecPowerModel(shape="median")
>>> m.fit_curves(np.array([[100.0, 130, 150, 165, 178, 190, 202, 215, 228, 240, 250]]))
>>> round(float(m.predict_w(np.array([0.5]), idle_w=100.0, peak_w=250.0)[0]), 1)
190.0
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from wattwise.errors import PredictionError
from wattwise.predict.base import FloatArray

KNOTS_FRAC = np.linspace(0.0, 1.0, 11)
SHAPES = ("auto", "idle_ratio", "median", "neighbours")
CANDIDATE_BANDWIDTHS_FRAC = (0.01, 0.02, 0.04, 0.08, 0.16)
_INTERIOR = slice(1, 10)  # 10 % ... 90 %: idle and 100 % are the datasheet inputs


def _check_frac(name: str, x: FloatArray) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise PredictionError(f"{name} contains NaN or inf")
    if np.any(arr < -1e-9) or np.any(arr > 1 + 1e-9):
        raise PredictionError(f"{name} must be a fraction in [0, 1]")
    out: FloatArray = np.clip(arr, 0.0, 1.0)
    return out


def _check_curves(curves_w: FloatArray) -> FloatArray:
    c = np.asarray(curves_w, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 11 or c.shape[0] == 0 or not np.all(np.isfinite(c)):
        raise PredictionError(f"curves must be finite (n, 11) watts, got shape {c.shape}")
    if np.any(c[:, -1] - c[:, 0] <= 0):
        raise PredictionError("a curve does not rise from idle to 100 %")
    return c


def interior_mape_pct(predicted_w: FloatArray, measured_w: FloatArray) -> float:
    """Mean absolute percentage error over the 10-90 % knots of an 11-point curve, %.

    >>> interior_mape_pct(np.full(11, 110.0), np.full(11, 100.0))
    10.0
    """
    pred = np.asarray(predicted_w, dtype=np.float64)[_INTERIOR]
    actual = np.asarray(measured_w, dtype=np.float64)[_INTERIOR]
    return float(100.0 * np.mean(np.abs(pred - actual) / actual))


class LinearPowerModel:
    """Baseline: power linear in CPU load between idle and peak (g(u) = u)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit_curves(self, curves_w: FloatArray) -> None:
        """Nothing to learn (kept for the uniform contract)."""

    def predict_w(self, cpu_frac: FloatArray, *, idle_w: float, peak_w: float) -> FloatArray:
        """Server power at each CPU load fraction, W."""
        u = _check_frac("cpu_frac", cpu_frac)
        out: FloatArray = idle_w + (peak_w - idle_w) * u
        return out


class SpecPowerModel:
    """Learned SPECpower shape plus memory, network, storage and ambient terms.

    Args:
        shape: One of :data:`SHAPES` (see the module docstring); ``"auto"`` chooses the shape
            family and bandwidth by leave-one-curve-out on the fitted curves.
        bandwidth_frac: Kernel width of ``shape="neighbours"``, in idle/peak-ratio units (0-1).
        candidate_bandwidths_frac: Widths ``shape="auto"`` chooses among, idle/peak-ratio units.
        ambient_ref_c: Inlet temperature above which fan power grows, °C.
        seed: Unused (deterministic); kept for the uniform contract.

    After :meth:`fit_curves`, ``selected_shape`` and ``selected_bandwidth_frac`` say which shape
    is in use, and (``shape="auto"`` only) ``selection_mape_pct`` maps each candidate to its
    leave-one-curve-out MAPE (%) on the fitted curves.

    >>> flat = [100.0, 110, 120, 130, 140, 150, 160, 170, 180, 190, 200]
    >>> steep = [20.0, 60, 70, 80, 90, 100, 110, 120, 140, 160, 200]
    >>> m = SpecPowerModel(shape="neighbours", bandwidth_frac=0.05)
    >>> m.fit_curves(np.array([flat, steep]))
    >>> round(float(m.predict_w(np.array([0.1]), idle_w=25.0, peak_w=250.0)[0]), 1)
    75.0
    """

    def __init__(
        self,
        *,
        shape: str = "auto",
        bandwidth_frac: float = 0.04,
        candidate_bandwidths_frac: tuple[float, ...] = CANDIDATE_BANDWIDTHS_FRAC,
        ambient_ref_c: float = 25.0,
        seed: int = 0,
    ) -> None:
        if shape not in SHAPES:
            raise PredictionError(f"unknown shape {shape!r}")
        if not bandwidth_frac > 0 or not candidate_bandwidths_frac or min(candidate_bandwidths_frac) <= 0:
            raise PredictionError("kernel bandwidths must be > 0")
        self.shape = shape
        self.bandwidth_frac = bandwidth_frac
        self.candidate_bandwidths_frac = tuple(candidate_bandwidths_frac)
        self.ambient_ref_c = ambient_ref_c
        self.seed = seed
        self.shape_coef = np.stack([KNOTS_FRAC, np.zeros(11)])  # knot = coef[0] + coef[1] * idle/peak
        self.coef_w = np.zeros(4)  # memory, network, storage (W at 100 %), ambient (W per °C)
        self.selected_shape = "idle_ratio" if shape == "auto" else shape  # linear g until fitted
        self.selected_bandwidth_frac = bandwidth_frac
        self.selection_mape_pct: dict[str, float] = {}
        self.fit_ratio_frac = np.zeros(0)  # idle/peak of each fitted curve
        self.fit_shape_frac = np.zeros((0, 11))  # normalised shape of each fitted curve

    def fit_curves(self, curves_w: FloatArray) -> None:
        """Learn ``g`` from ``(n_servers, 11)`` curves (W at idle, 10 %, ..., 100 %).

        With ``shape="auto"`` every candidate is scored by leave-one-out over these curves
        only (fitted on ``n - 1``, scored on the one left out); the lowest mean MAPE wins,
        ties going to the earlier candidate. Fewer than 3 curves: the median shape.

        Raises:
            PredictionError: Wrong shape, non-finite values or a flat curve.
        """
        c = _check_curves(curves_w)
        shape, bandwidth_frac = self.shape, self.bandwidth_frac
        self.selection_mape_pct = {}
        if shape == "auto":
            shape, bandwidth_frac = self._select(c)
        self._fit_fixed(c, shape, bandwidth_frac)

    def candidates(self) -> list[tuple[str, float]]:
        """(shape, bandwidth_frac) pairs that ``shape="auto"`` chooses among, in tie-break order."""
        fixed = [("idle_ratio", self.bandwidth_frac), ("median", self.bandwidth_frac)]
        return fixed + [("neighbours", b) for b in self.candidate_bandwidths_frac]

    def _select(self, c: FloatArray) -> tuple[str, float]:
        if c.shape[0] < 3:
            return "median", self.bandwidth_frac
        best: tuple[float, str, float] | None = None
        for shape, bandwidth_frac in self.candidates():
            mape_pct = _loo_mape_pct(c, shape, bandwidth_frac)
            label = f"neighbours@{bandwidth_frac:g}" if shape == "neighbours" else shape
            self.selection_mape_pct[label] = mape_pct
            if best is None or mape_pct < best[0]:
                best = (mape_pct, shape, bandwidth_frac)
        assert best is not None  # candidates() is never empty
        return best[1], best[2]

    def _fit_fixed(self, c: FloatArray, shape: str, bandwidth_frac: float) -> None:
        norm = (c - c[:, :1]) / (c[:, -1] - c[:, 0])[:, None]
        ratio = c[:, 0] / c[:, -1]
        if shape == "idle_ratio" and c.shape[0] < 3:
            shape = "median"  # two points fit any line: too few curves for a slope
        self.selected_shape, self.selected_bandwidth_frac = shape, bandwidth_frac
        self.fit_ratio_frac, self.fit_shape_frac = ratio, norm
        if shape == "idle_ratio":
            design = np.column_stack([np.ones(c.shape[0]), ratio])
            self.shape_coef = np.linalg.lstsq(design, norm, rcond=None)[0]
        else:
            self.shape_coef = np.stack([np.median(norm, axis=0), np.zeros(11)])

    def shape_frac(self, idle_w: float, peak_w: float) -> FloatArray:
        """Normalised power at the 11 knots for a server with these datasheet points."""
        ratio = idle_w / peak_w if peak_w > 0 else 1.0
        if self.selected_shape == "neighbours" and self.fit_ratio_frac.size:
            d2 = ((self.fit_ratio_frac - ratio) / self.selected_bandwidth_frac) ** 2
            weight = np.exp(-0.5 * (d2 - d2.min()))  # shifted so the nearest curve keeps weight 1
            knots = weight @ self.fit_shape_frac / weight.sum()
        else:
            knots = self.shape_coef[0] + self.shape_coef[1] * ratio
        out: FloatArray = np.maximum.accumulate(np.clip(knots, 0.0, 1.0))
        out[0], out[-1] = 0.0, 1.0
        return out

    def predict_w(
        self,
        cpu_frac: FloatArray,
        *,
        idle_w: float,
        peak_w: float,
        mem_frac: FloatArray | None = None,
        net_frac: FloatArray | None = None,
        storage_frac: FloatArray | None = None,
        ambient_c: FloatArray | None = None,
    ) -> FloatArray:
        """Server power, W, from its workload signature and inlet temperature.

        Raises:
            PredictionError: A fraction outside [0, 1], NaN input, or ``peak_w < idle_w``.
        """
        if not peak_w >= idle_w >= 0:
            raise PredictionError(f"need 0 <= idle_w <= peak_w, got {idle_w}, {peak_w}")
        u = _check_frac("cpu_frac", cpu_frac)
        base = idle_w + (peak_w - idle_w) * np.interp(u, KNOTS_FRAC, self.shape_frac(idle_w, peak_w))
        out: FloatArray = base + self._extra_design(u.shape, mem_frac, net_frac, storage_frac, ambient_c) @ self.coef_w
        return out

    def _extra_design(
        self,
        shape: tuple[int, ...],
        mem_frac: FloatArray | None,
        net_frac: FloatArray | None,
        storage_frac: FloatArray | None,
        ambient_c: FloatArray | None,
    ) -> FloatArray:
        cols = [
            _check_frac(name, x) if x is not None else np.zeros(shape)
            for name, x in (("mem_frac", mem_frac), ("net_frac", net_frac), ("storage_frac", storage_frac))
        ]
        if ambient_c is None:
            amb = np.zeros(shape)
        else:
            amb_arr = np.asarray(ambient_c, dtype=np.float64)
            if not np.all(np.isfinite(amb_arr)):
                raise PredictionError("ambient_c contains NaN or inf")
            amb = np.maximum(amb_arr - self.ambient_ref_c, 0.0)
        out: FloatArray = np.stack([*cols, amb], axis=-1)
        return out

    def fit_residual(
        self,
        measured_w: FloatArray,
        cpu_frac: FloatArray,
        *,
        idle_w: float,
        peak_w: float,
        mem_frac: FloatArray,
        net_frac: FloatArray,
        storage_frac: FloatArray,
        ambient_c: FloatArray,
    ) -> None:
        """Fit the non-negative memory/network/storage/ambient coefficients on measured power.

        Raises:
            PredictionError: Fewer than 8 samples or non-finite input.
        """
        y = np.asarray(measured_w, dtype=np.float64)
        if y.shape[0] < 8 or not np.all(np.isfinite(y)):
            raise PredictionError("need at least 8 finite power measurements")
        saved = self.coef_w
        self.coef_w = np.zeros(4)
        base = self.predict_w(cpu_frac, idle_w=idle_w, peak_w=peak_w)
        self.coef_w = saved
        x = self._extra_design(y.shape, mem_frac, net_frac, storage_frac, ambient_c)
        self.coef_w = nnls(x, y - base)[0]


def _loo_mape_pct(curves_w: FloatArray, shape: str, bandwidth_frac: float) -> float:
    """Mean leave-one-curve-out MAPE (%) of one fixed shape over these curves."""
    errs = []
    for j in range(curves_w.shape[0]):
        model = SpecPowerModel(shape=shape, bandwidth_frac=bandwidth_frac)
        model.fit_curves(np.delete(curves_w, j, axis=0))  # curve j is left out of the fit
        pred_w = model.predict_w(KNOTS_FRAC, idle_w=curves_w[j, 0], peak_w=curves_w[j, -1])
        errs.append(interior_mape_pct(pred_w, curves_w[j]))
    return float(np.mean(errs))
