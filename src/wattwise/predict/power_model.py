"""Workload-signature server power model calibrated on SPECpower_ssj2008 curves.

``P = idle_w + (peak_w - idle_w) * g(cpu_frac) + w_mem * mem_frac + w_net * net_frac
+ w_sto * storage_frac + w_amb * max(0, ambient_c - ambient_ref_c)``

* ``idle_w`` and ``peak_w`` are the server's datasheet points (SPECpower's active idle and
  100 % results, known for 1 088 published systems);
* ``g`` is the normalised load-to-power shape (piecewise linear between the 10 % knots),
  learned from the SPECpower curves it is fitted on: with ``shape="idle_ratio"`` (default)
  each knot is a linear function of the server's ``idle_w / peak_w`` (energy-proportional
  servers have more convex curves), with ``shape="median"`` it is the median normalised
  curve; the baseline :class:`LinearPowerModel` uses ``g(u) = u``;
* the memory, network, storage and ambient (fan) terms are fitted by non-negative least
  squares on measured power when telemetry is available (:meth:`fit_residual`); SPECpower
  varies only CPU load, so they start at zero and the SPECpower evaluation does not test them.

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


def _check_frac(name: str, x: FloatArray) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise PredictionError(f"{name} contains NaN or inf")
    if np.any(arr < -1e-9) or np.any(arr > 1 + 1e-9):
        raise PredictionError(f"{name} must be a fraction in [0, 1]")
    out: FloatArray = np.clip(arr, 0.0, 1.0)
    return out


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
        shape: ``"idle_ratio"`` (knots linear in idle/peak) or ``"median"``.
        ambient_ref_c: Inlet temperature above which fan power grows, °C.
        seed: Unused (deterministic); kept for the uniform contract.
    """

    def __init__(self, *, shape: str = "idle_ratio", ambient_ref_c: float = 25.0, seed: int = 0) -> None:
        if shape not in ("idle_ratio", "median"):
            raise PredictionError(f"unknown shape {shape!r}")
        self.shape = shape
        self.ambient_ref_c = ambient_ref_c
        self.seed = seed
        self.shape_coef = np.stack([KNOTS_FRAC, np.zeros(11)])  # knot = coef[0] + coef[1] * idle/peak
        self.coef_w = np.zeros(4)  # memory, network, storage (W at 100 %), ambient (W per °C)

    def fit_curves(self, curves_w: FloatArray) -> None:
        """Learn ``g`` from ``(n_servers, 11)`` curves (W at idle, 10 %, ..., 100 %).

        Raises:
            PredictionError: Wrong shape, non-finite values or a flat curve.
        """
        c = np.asarray(curves_w, dtype=np.float64)
        if c.ndim != 2 or c.shape[1] != 11 or c.shape[0] == 0 or not np.all(np.isfinite(c)):
            raise PredictionError(f"curves must be finite (n, 11) watts, got shape {c.shape}")
        span = c[:, -1] - c[:, 0]
        if np.any(span <= 0):
            raise PredictionError("a curve does not rise from idle to 100 %")
        norm = (c - c[:, :1]) / span[:, None]
        if self.shape == "median" or c.shape[0] < 3:
            self.shape_coef = np.stack([np.median(norm, axis=0), np.zeros(11)])
        else:
            design = np.column_stack([np.ones(c.shape[0]), c[:, 0] / c[:, -1]])
            self.shape_coef = np.linalg.lstsq(design, norm, rcond=None)[0]

    def shape_frac(self, idle_w: float, peak_w: float) -> FloatArray:
        """Normalised power at the 11 knots for a server with these datasheet points."""
        ratio = idle_w / peak_w if peak_w > 0 else 1.0
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
