"""Lag, seasonal-difference and calendar features for direct multi-horizon forecasting.

One row per (origin i, lead h): everything is computed from values at or before the origin
(the seasonal terms look at ``i + h - season`` which is ≤ ``i`` while ``h ≤ season``), so a
row never sees its target. Values are divided by a scale fixed at fit time so one model
serves kW- and fraction-valued series alike.
"""

from __future__ import annotations

import numpy as np

from wattwise.predict.base import FloatArray
from wattwise.predict.engine import IntArray

DIFF_LAGS = (1, 2, 3, 6, 12, 24, 48)
FEATURE_NAMES = (
    "lead_steps",
    "level",
    *(f"diff_{k}" for k in DIFF_LAGS),
    "mean12_minus_level",
    "std12",
    "meanday_minus_level",
    "day_ago_change",
    "day_ago_minus_level",
    "week_ago_change",
    "week_ago_minus_level",
    "target_hour_of_day",
    "target_day_of_week",
)
SMOOTH_FEATURE_NAMES = ("mean3_minus_level", "day_ago_mean_minus_level", "week_ago_mean_minus_level")


def _rolling(v: FloatArray, window: int) -> tuple[FloatArray, FloatArray]:
    """Trailing mean and std over ``window`` samples ending at each index (shorter at the start)."""
    c1 = np.concatenate([[0.0], np.cumsum(v)])
    c2 = np.concatenate([[0.0], np.cumsum(v * v)])
    idx = np.arange(v.shape[0])
    lo = np.maximum(idx + 1 - window, 0)
    cnt = idx + 1 - lo
    mean = (c1[idx + 1] - c1[lo]) / cnt
    var = np.maximum((c2[idx + 1] - c2[lo]) / cnt - mean * mean, 0.0)
    return mean, np.sqrt(var)


def _at(v: FloatArray, idx: IntArray) -> FloatArray:
    """``v[idx]`` with NaN where ``idx`` is negative."""
    out: FloatArray = np.where(idx >= 0, v[np.maximum(idx, 0)], np.nan)
    return out


def build_features(
    v: FloatArray,
    t_s: FloatArray,
    origin: IntArray,
    lead: IntArray,
    day_steps: int,
    week_steps: int,
    smooth: bool = False,
) -> FloatArray:
    """Feature matrix ``(len(origin), len(FEATURE_NAMES))`` for scaled values ``v`` on grid times ``t_s``.

    Args:
        v: Scaled grid values (no NaN).
        t_s: Grid times, seconds since the Unix epoch (UTC calendar).
        origin: Origin index of each row.
        lead: Lead in steps of each row (≥ 1).
        day_steps: Steps per day.
        week_steps: Steps per week.
        smooth: Append :data:`SMOOTH_FEATURE_NAMES`: noise-averaged level and seasonal values
            (7-sample means around the same time yesterday / last week, clipped at the origin).
    """
    level = v[origin]
    mean12, std12 = _rolling(v, 12)
    meanday, _ = _rolling(v, day_steps)
    cols: list[FloatArray] = [lead.astype(np.float64), level]
    cols += [level - _at(v, origin - k) for k in DIFF_LAGS]
    cols += [mean12[origin] - level, std12[origin], meanday[origin] - level]
    for season in (day_steps, week_steps):
        past_target = np.where(lead <= season, _at(v, origin + lead - season), np.nan)
        cols += [past_target - _at(v, origin - season), past_target - level]
    t_target = t_s[origin] + (t_s[1] - t_s[0] if t_s.shape[0] > 1 else 0.0) * lead
    cols.append((t_target % 86_400.0) / 3600.0)
    cols.append(((t_target // 86_400.0) + 4.0) % 7.0)  # 1970-01-01 was a Thursday (Monday = 0)
    if smooth:
        mean3, _ = _rolling(v, 3)
        mean7, _ = _rolling(v, 7)
        cols.append(mean3[origin] - level)
        for season in (day_steps, week_steps):
            end = np.minimum(origin + lead - season + 3, origin)  # centred, but never past the origin
            cols.append(np.where((lead <= season) & (end >= 0), _at(mean7, end), np.nan) - level)
    return np.column_stack(cols)
