"""Real workload traces (PlanetLab CPU, Google 2011 CPU+memory) and SMD anomaly shapes.

The package ships 300 PlanetLab and 200 Google day-long series at 5-min steps (see the ``#``
header of each data file for source and licence). A workload's ``trace`` names one series:
``planetlab:K`` → packaged PlanetLab series ``K mod 300``; ``google:K`` → Google series
``K mod 200``; no trace → a PlanetLab series chosen from the workload's position. The fold
keeps every id the site generator emits valid while shipping a subset.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from wattwise.errors import ConfigError
from wattwise.sim.curves import read_data_rows

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
TRACE_STEP_S = 300.0
TRACE_SLOTS = 288


@dataclass(frozen=True)
class TraceBank:
    """All packaged traces as one matrix: rows = series, columns = 5-min slots over 24 h.

    Attributes:
        cpu_frac: CPU utilisation, shape (n_series, 288), 0–1.
        mem_frac: Memory utilisation (PlanetLab has none: a flat 0.3), same shape.
        mean_cpu_frac: Mean CPU of each series.
        n_planetlab: Rows ``[0, n_planetlab)`` are PlanetLab, the rest Google.
    """

    cpu_frac: FloatArray
    mem_frac: FloatArray
    mean_cpu_frac: FloatArray
    n_planetlab: int

    def row_of(self, trace: str | None, fallback: int) -> int:
        """Matrix row of a workload's trace name (see the module docstring)."""
        n_google = len(self.cpu_frac) - self.n_planetlab
        if trace is None:
            return fallback % self.n_planetlab
        source, _, key = trace.partition(":")
        try:
            k = int(key)
        except ValueError as err:
            raise ConfigError(f"trace {trace!r}: expected 'planetlab:N' or 'google:N'") from err
        if source == "planetlab":
            return k % self.n_planetlab
        if source == "google":
            return self.n_planetlab + k % n_google
        raise ConfigError(f"trace {trace!r}: unknown source {source!r} (planetlab, google)")

    def at(self, rows: IntArray, t_s: FloatArray | float) -> tuple[FloatArray, FloatArray]:
        """CPU and memory of series ``rows`` at times ``t_s`` (linear between slots, wraps at 24 h)."""
        x = (np.asarray(t_s, dtype=np.float64) / TRACE_STEP_S) % TRACE_SLOTS
        lo = x.astype(np.int64)
        hi = (lo + 1) % TRACE_SLOTS
        f = x - lo
        cpu = self.cpu_frac[rows, lo] * (1 - f) + self.cpu_frac[rows, hi] * f
        mem = self.mem_frac[rows, lo] * (1 - f) + self.mem_frac[rows, hi] * f
        return np.asarray(cpu, dtype=np.float64), np.asarray(mem, dtype=np.float64)


@lru_cache(maxsize=1)
def trace_bank() -> TraceBank:
    """Load the packaged traces once."""
    cols = [f"c{k:03d}" for k in range(TRACE_SLOTS)]
    pl = read_data_rows("traces_planetlab_cpu_5min.csv.gz")
    pl_cpu = np.array([[float(r[c]) for c in cols] for r in pl], dtype=np.float64) / 100.0
    g = read_data_rows("traces_google2011_cpu_mem_5min.csv.gz")
    g_cpu = np.array([[float(r[c]) for c in cols] for r in g if r["resource"] == "cpu"], dtype=np.float64) / 100.0
    g_mem = np.array([[float(r[c]) for c in cols] for r in g if r["resource"] == "mem"], dtype=np.float64) / 100.0
    cpu = np.vstack([pl_cpu, g_cpu])
    mem = np.vstack([np.full_like(pl_cpu, 0.3), g_mem])
    return TraceBank(cpu, mem, cpu.mean(axis=1), len(pl_cpu))


@lru_cache(maxsize=1)
def smd_shapes() -> tuple[FloatArray, ...]:
    """SMD anomaly windows, each an array (minutes, 4): cpu, mem, net (0–1) and the anomaly label."""
    rows = read_data_rows("smd_anomaly_shapes.csv")
    by_shape: dict[int, list[list[float]]] = {}
    for r in rows:
        by_shape.setdefault(int(r["shape"]), []).append(
            [float(r["cpu"]), float(r["mem"]), float(r["net"]), float(r["anomalous"])]
        )
    return tuple(np.array(v, dtype=np.float64) for _, v in sorted(by_shape.items()))


class TraceCursor:
    """Fast per-step evaluation of many workloads' normalised CPU traces.

    Each workload's value is linear within a 5-min slot, so the two slot end-points are fetched
    only when a workload crosses into a new slot (1/300 of them per 1-s step); the rest of the
    step is a handful of vector operations. Values are ``cpu / mean(cpu)`` capped at 3.
    """

    def __init__(self, bank: TraceBank) -> None:
        self.bank = bank
        self._rows: IntArray | None = None
        self._slot = np.zeros(0, dtype=np.int64)
        self._v0 = np.zeros(0)
        self._v1 = np.zeros(0)
        self._inv_mean = np.zeros(0)

    def _reset(self, rows: IntArray) -> None:
        n = len(rows)
        self._rows = rows
        self._slot = np.full(n, -(2**62), dtype=np.int64)
        self._v0 = np.zeros(n)
        self._v1 = np.zeros(n)
        self._inv_mean = 1.0 / np.maximum(self.bank.mean_cpu_frac[rows], 0.02)

    def norm_cpu(self, rows: IntArray, t_s: FloatArray) -> FloatArray:
        """Normalised CPU (long-run mean 1, capped at 3) of series ``rows`` at times ``t_s``."""
        if rows is not self._rows:
            self._reset(rows)
        x = t_s / TRACE_STEP_S
        slot = np.floor(x).astype(np.int64)
        stale = slot != self._slot
        if np.count_nonzero(stale):
            idx = np.flatnonzero(stale)
            lo = slot[idx] % TRACE_SLOTS
            r = rows[idx]
            cpu = self.bank.cpu_frac
            scale = self._inv_mean[idx]
            self._v0[idx] = np.minimum(cpu[r, lo] * scale, 3.0)
            self._v1[idx] = np.minimum(cpu[r, (lo + 1) % TRACE_SLOTS] * scale, 3.0)
            self._slot[idx] = slot[idx]
        return np.asarray(self._v0 + (x - self._slot) * (self._v1 - self._v0), dtype=np.float64)
