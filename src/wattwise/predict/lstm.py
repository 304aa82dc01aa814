"""LSTM forecaster on PyTorch (CPU; the ``ml`` extra): a small sequence model, direct multi-horizon.

Input: the last ``window`` scaled values relative to the origin value plus the time of day
(sin, cos), run through one LSTM layer; its last hidden state is concatenated with the
"same time yesterday" path (also relative to the origin) and mapped linearly to the change
at every lead. Loss: L1 on observed targets. Randomness (weight init, batch order) comes only
from ``seed`` inside a forked RNG, so the global torch RNG is left untouched.

Fallback (documented): a constant history, or too few training windows, is forecast by
persistence with a warning (``fallback_reason``).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from wattwise.predict.base import FloatArray, Forecast, ForecastPaths, Series, TrainingRange
from wattwise.predict.engine import ForecastEngine, IntArray
from wattwise.predict.series import Grid

logger = logging.getLogger(__name__)


class _Net(nn.Module):
    def __init__(self, hidden: int, n_out: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size=3, hidden_size=hidden, batch_first=True)
        self.head = nn.Linear(hidden + n_out, n_out)

    def forward(self, seq: torch.Tensor, yday: torch.Tensor) -> torch.Tensor:
        _, (h_n, _) = self.lstm(seq)
        out: torch.Tensor = self.head(torch.cat([h_n[-1], yday], dim=1))
        return out


class _LstmPaths:
    """Path model around a small LSTM."""

    def __init__(self, window: int, hidden: int, epochs: int, max_windows: int, num_threads: int, seed: int) -> None:
        self.window = window
        self.hidden = hidden
        self.epochs = epochs
        self.max_windows = max_windows
        self.num_threads = num_threads
        self.seed = seed
        self.net: _Net | None = None
        self.scale = 1.0
        self.day_steps = 1
        self.n_out = 1
        self.fallback_reason = ""

    def _inputs(self, grid: Grid, origin: IntArray) -> tuple[torch.Tensor, torch.Tensor]:
        v = grid.value / self.scale
        lags = origin[:, None] + np.arange(-self.window + 1, 1)[None, :]
        seq_v = np.where(lags >= 0, v[np.maximum(lags, 0)], v[origin][:, None]) - v[origin][:, None]
        phase = 2 * np.pi * (grid.t0_s + grid.step_s * lags) / 86_400.0
        seq = np.stack([seq_v, np.sin(phase), np.cos(phase)], axis=2)
        past = origin[:, None] + np.arange(1, self.n_out + 1)[None, :] - self.day_steps
        yday = np.where(past >= 0, v[np.maximum(past, 0)] - v[origin][:, None], 0.0)
        return torch.tensor(seq, dtype=torch.float32), torch.tensor(yday, dtype=torch.float32)

    def fit_grid(self, grid: Grid, end_idx: int, max_steps: int) -> None:
        self.day_steps = max(1, int(round(86_400.0 / grid.step_s)))
        self.n_out = max_steps
        self.net, self.fallback_reason = None, ""
        head = grid.value[:end_idx]
        origins = np.arange(self.window, end_idx - max_steps, dtype=np.int64)
        if float(np.ptp(head)) == 0.0:
            self.fallback_reason = "constant history: persistence"
        elif origins.shape[0] < 64:
            self.fallback_reason = f"only {max(origins.shape[0], 0)} training windows (< 64): persistence"
        if self.fallback_reason:
            logger.warning("LstmForecaster falls back: %s", self.fallback_reason)
            return
        self.scale = float(np.median(np.abs(head))) or 1.0
        origins = origins[:: max(1, int(np.ceil(origins.shape[0] / self.max_windows)))]
        seq, yday = self._inputs(grid, origins)
        tgt_idx = origins[:, None] + np.arange(1, max_steps + 1)[None, :]
        v = grid.value / self.scale
        target = torch.tensor(v[tgt_idx] - v[origins][:, None], dtype=torch.float32)
        mask = torch.tensor(grid.observed[tgt_idx], dtype=torch.float32)
        torch.set_num_threads(self.num_threads)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.net = _Net(self.hidden, max_steps)
            self._train(self.net, seq, yday, target, mask)

    def _train(
        self, net: _Net, seq: torch.Tensor, yday: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
    ) -> None:
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        n = seq.shape[0]
        for _ in range(self.epochs):
            order = torch.randperm(n)
            for start in range(0, n, 128):
                b = order[start : start + 128]
                opt.zero_grad()
                err = (net(seq[b], yday[b]) - target[b]).abs() * mask[b]
                loss = err.sum() / mask[b].sum().clamp(min=1.0)
                loss.backward()
                opt.step()
        net.eval()

    def paths(self, grid: Grid, origin_idx: IntArray, n_steps: int) -> FloatArray:
        last = grid.value[origin_idx][:, None]
        if self.net is None:
            out: FloatArray = np.repeat(last, n_steps, axis=1)
            return out
        chunks = []
        with torch.no_grad():
            for start in range(0, origin_idx.shape[0], 2048):
                seq, yday = self._inputs(grid, origin_idx[start : start + 2048])
                chunks.append(self.net(seq, yday).numpy().astype(np.float64))
        delta = np.concatenate(chunks, axis=0)[:, :n_steps]
        point: FloatArray = last + delta * self.scale
        return point


class LstmForecaster:
    """Small LSTM direct multi-horizon forecaster with split-conformal intervals.

    Args:
        level: Interval coverage.
        max_horizon_s: Longest horizon (the network outputs every step up to it).
        cal_frac: Fraction of the history kept for interval calibration.
        step_s: Grid step; ``None`` infers it from the history.
        max_fill_steps: Longest gap filled by interpolation.
        window: Input window length, steps.
        hidden: LSTM hidden size.
        epochs: Training epochs.
        max_windows: Cap on training windows (evenly thinned).
        num_threads: Torch CPU threads (set globally during ``fit``).
        seed: Seed of weight init and batch order.
    """

    def __init__(
        self,
        *,
        level: float = 0.95,
        max_horizon_s: float = 86_400.0,
        cal_frac: float = 0.25,
        step_s: float | None = None,
        max_fill_steps: int = 12,
        window: int = 36,
        hidden: int = 32,
        epochs: int = 8,
        max_windows: int = 4000,
        num_threads: int = 2,
        seed: int = 0,
    ) -> None:
        self.level = level
        self.max_horizon_s = max_horizon_s
        self.cal_frac = cal_frac
        self.step_s = step_s
        self.max_fill_steps = max_fill_steps
        self.window = window
        self.hidden = hidden
        self.epochs = epochs
        self.max_windows = max_windows
        self.num_threads = num_threads
        self.seed = seed
        self._paths = _LstmPaths(window, hidden, epochs, max_windows, num_threads, seed)
        self._engine = ForecastEngine(
            self._paths,
            level=level,
            max_horizon_s=max_horizon_s,
            cal_frac=cal_frac,
            step_s=step_s,
            max_fill_steps=max_fill_steps,
        )

    @property
    def training_range(self) -> TrainingRange:
        """The range of the history given to ``fit``."""
        return self._engine.training_range

    @property
    def fallback_reason(self) -> str:
        """Why the model fell back to persistence at fit time ("" when it did not)."""
        return self._paths.fallback_reason

    def fit(self, history: Series) -> None:
        """Train on the head of the history, calibrate intervals on its tail."""
        self._engine.fit(history)

    def update(self, new: Series) -> None:
        """Append newer observations."""
        self._engine.update(new)

    def predict(self, horizon_s: float, step_s: float) -> Forecast:
        """Forecast ahead of the last observation."""
        return self._engine.predict(horizon_s, step_s)

    def predict_paths(self, series: Series, origins_t_s: FloatArray, horizon_s: float) -> ForecastPaths:
        """Forecast from many origins of ``series``."""
        return self._engine.predict_paths(series, origins_t_s, horizon_s)
