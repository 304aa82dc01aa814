"""Physical curves from real data shipped in ``wattwise/data``: server power, PSU and UPS efficiency.

Each loader reads a package file whose ``#`` header names its source and licence
(the files are built from ``shared/datasets`` by ``bench/twin_package_data.py``).

* Server power P(u): the 25 SPECpower_ssj2008 11-point curves (active idle, 10 % … 100 %).
  A server whose ``model`` is ``specpower-K`` uses curve K's shape scaled to its own idle and
  peak; a server with ``power_curve_w`` uses those 11 points as they are.
* PSU efficiency η(load): the 80 PLUS 230 V internal-redundant thresholds (10/20/50/100 %).
  Levels without a 10 % point get Titanium's 10→20 % drop (4 points); 5 % and 0 % follow the
  measured 600 W PFE curve's fall below its first point. Input power = output / η(load).
* UPS efficiency: a double-conversion curve with representative datasheet values of modern
  three-phase units (95 % at half load, falling below 25 % load). The few nut-ddl dumps that
  report ``ups.efficiency`` are small single-phase units at 75–86 % for 9–17 % load, the
  same shape a few points lower. ``ups_eco`` is the eco-mode (bypass-first) curve.
"""

from __future__ import annotations

import csv
import gzip
import io
from functools import lru_cache
from importlib import resources

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

SPEC_LOADS_FRAC = np.linspace(0.0, 1.0, 11)
PSU_STANDBY_LOSS_FRAC = 0.005
"""No-load loss of a powered PSU carrying nothing (hot standby), as a fraction of its rating."""

UPS_CURVES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "ups_double_conversion": ((0.0, 0.1, 0.25, 0.5, 0.75, 1.0), (0.7, 0.87, 0.93, 0.95, 0.955, 0.95)),
    "ups_eco": ((0.0, 0.1, 0.25, 0.5, 0.75, 1.0), (0.8, 0.95, 0.975, 0.985, 0.99, 0.99)),
}


def read_data_text(name: str) -> str:
    """Text of one package data file (gzip transparently), ``#`` header lines included."""
    raw = resources.files("wattwise.data").joinpath(name).read_bytes()
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.decode()


def read_data_rows(name: str) -> list[dict[str, str]]:
    """Rows of a package CSV file as dicts, skipping its ``#`` licence header."""
    text = read_data_text(name)
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return list(csv.DictReader(io.StringIO(body)))


def data_licence(name: str) -> str:
    """The ``#`` header (source and licence lines) of a package data file."""
    return "\n".join(line[2:] for line in read_data_text(name).splitlines() if line.startswith("#"))


@lru_cache(maxsize=1)
def specpower_curves_w() -> FloatArray:
    """The 25 SPECpower 11-point curves, shape (25, 11), W (active idle, 10 % … 100 %)."""
    rows = read_data_rows("specpower_curves_11pt.csv")
    cols = ["watts_active_idle"] + [f"watts_{k}pct" for k in range(10, 101, 10)]
    return np.array([[float(r[c]) for c in cols] for r in rows], dtype=np.float64)


@lru_cache(maxsize=1)
def specpower_systems() -> tuple[str, ...]:
    """System names of the SPECpower curves, in curve order."""
    return tuple(r["system"] for r in read_data_rows("specpower_curves_11pt.csv"))


def server_curve_w(idle_w: float, peak_w: float, model: str, power_curve_w: tuple[float, ...] | None) -> FloatArray:
    """11-point power curve of one server, W.

    Args:
        idle_w: Active-idle power, W.
        peak_w: Power at 100 % load, W.
        model: ``specpower-K`` picks the shape of SPEC curve K; anything else: a linear shape.
        power_curve_w: Explicit 11 points; used unchanged when given.

    Returns:
        Power at 0 %, 10 % … 100 % load, W.
    """
    if power_curve_w is not None:
        return np.asarray(power_curve_w, dtype=np.float64)
    shape = SPEC_LOADS_FRAC
    if model.startswith("specpower-"):
        curves = specpower_curves_w()
        k = int(model.split("-", 1)[1]) % len(curves)
        c = curves[k]
        shape = (c - c[0]) / max(c[-1] - c[0], 1e-9)
    return np.asarray(idle_w + (peak_w - idle_w) * shape, dtype=np.float64)


def interp_rows(curves: FloatArray, u_frac: FloatArray) -> FloatArray:
    """Piecewise-linear value of each row's 11-point curve at its own load ``u_frac`` (0–1)."""
    x = np.minimum(np.maximum(u_frac, 0.0), 1.0) * 10.0
    lo = np.minimum(x.astype(np.int64), 9)
    flat = curves.ravel()
    at = np.arange(0, curves.size, curves.shape[1] if curves.ndim == 2 else 11) + lo
    y0 = flat[at]
    return np.asarray(y0 + (x - lo) * (flat[at + 1] - y0), dtype=np.float64)


@lru_cache(maxsize=1)
def psu_curves() -> dict[str, tuple[FloatArray, FloatArray]]:
    """80 PLUS curve name (``80plus_platinum``) → (load fractions, efficiency fractions)."""
    levels: dict[str, dict[float, float]] = {}
    for r in read_data_rows("psu_80plus_230v_redundant.csv"):
        levels.setdefault(r["level"].lower(), {})[float(r["load_pct"]) / 100.0] = float(r["min_efficiency_pct"]) / 100.0
    pfe = read_data_rows("psu_curve_pfe_600w.csv")
    first_eff = float(pfe[0]["efficiency_%"]) / 100.0
    # The measured PFE curve falls ~0.8 pt per 1 % of load at its low end; we carry that slope below 10 %.
    second_eff = float(pfe[1]["efficiency_%"]) / 100.0
    slope_per_frac = (second_eff - first_eff) / ((float(pfe[1]["load_W"]) - float(pfe[0]["load_W"])) / 600.0)
    out: dict[str, tuple[FloatArray, FloatArray]] = {}
    for level, pts in levels.items():
        pts = dict(pts)
        if 0.1 not in pts:
            pts[0.1] = pts[0.2] - (levels["titanium"][0.2] - levels["titanium"][0.1])
        pts[0.05] = pts[0.1] - 0.05 * slope_per_frac
        pts[0.0] = 0.5
        loads = np.array(sorted(pts), dtype=np.float64)
        out[f"80plus_{level}"] = (loads, np.array([pts[x] for x in loads], dtype=np.float64))
    return out


def psu_curve_table(names: list[str]) -> tuple[FloatArray, FloatArray]:
    """Curves of several PSU types on one load grid: (grid, efficiency[type, grid])."""
    curves = psu_curves()
    grid = np.linspace(0.0, 1.0, 201)
    fallback = curves["80plus_platinum"]
    table = [np.interp(grid, *curves.get(n, fallback)) for n in names]
    return grid, np.array(table, dtype=np.float64).reshape(len(names), len(grid))


def efficiency_at(table: FloatArray, kind: npt.NDArray[np.int64], load_frac: FloatArray) -> FloatArray:
    """Efficiency of each unit of curve ``kind`` at ``load_frac`` from a 201-point table (0–1)."""
    x = np.minimum(np.maximum(load_frac, 0.0), 1.0) * 200.0
    lo = np.minimum(x.astype(np.int64), 199)
    at = kind * table.shape[1] + lo
    flat = table.ravel()
    y0 = flat[at]
    return np.asarray(y0 + (x - lo) * (flat[at + 1] - y0), dtype=np.float64)


FINE_POINTS = 4001
"""Grid of the fine PSU efficiency tables: 1/4000 of rating (0.025 %) between points."""


def psu_fine_table(names: list[str]) -> FloatArray:
    """PSU curves sampled every 1/4000 of rating, flattened (curve k starts at k × FINE_POINTS).

    Nearest-point lookup on this grid (:func:`efficiency_fine`) is exact at every 80 PLUS test
    point and within 0.1 % absolute elsewhere, at half the cost of interpolating a coarse table.
    """
    curves = psu_curves()
    grid = np.linspace(0.0, 1.0, FINE_POINTS)
    fallback = curves["80plus_platinum"]
    return np.concatenate([np.interp(grid, *curves.get(n, fallback)) for n in names]).astype(np.float64)


def efficiency_fine(fine: FloatArray, offset: npt.NDArray[np.int64], load_frac: FloatArray) -> FloatArray:
    """Efficiency at ``load_frac`` (clipped to 0–1) from :func:`psu_fine_table`; ``offset`` = curve × FINE_POINTS."""
    at = (np.minimum(load_frac, 1.0) * (FINE_POINTS - 1) + 0.5).astype(np.int64)
    at += offset
    return np.asarray(fine[at], dtype=np.float64)


def ups_curve_table(names: list[str]) -> FloatArray:
    """UPS efficiency curves on the same 201-point grid as :func:`psu_curve_table`."""
    grid = np.linspace(0.0, 1.0, 201)
    default = UPS_CURVES["ups_double_conversion"]
    return np.array([np.interp(grid, *UPS_CURVES.get(n, default)) for n in names], dtype=np.float64).reshape(
        len(names), len(grid)
    )


@lru_cache(maxsize=1)
def nut_runtime_table() -> tuple[tuple[float, float, float, float], ...]:
    """Real (nominal W, load fraction, charge fraction, runtime s) points from the nut-ddl dumps.

    Nominal W is ``ups.realpower.nominal`` or, when only VA is given, 0.6 × ``ups.power.nominal``
    (the usual power factor of small line-interactive units).
    """
    out = []
    for r in read_data_rows("nut_runtime_dumps.csv"):
        w = float(r["realpower_nominal_w"]) if r["realpower_nominal_w"] else 0.6 * float(r["power_nominal_va"])
        out.append((w, float(r["load_pct"]) / 100.0, float(r["charge_pct"]) / 100.0, float(r["runtime_s"])))
    return tuple(out)
