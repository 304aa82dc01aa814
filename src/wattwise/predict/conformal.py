"""Split-conformal calibration of forecast intervals, one pair of offsets per lead time.

The calibrator sees the signed residuals ``actual - point`` of forecasts made on a
calibration range the model was *not* fitted on, and takes, per lead, the lower and upper
empirical quantiles at ``(1 - level) / 2`` and ``(1 + level) / 2`` with the finite-sample
correction of split conformal prediction. Offsets are made non-decreasing in lead time
(uncertainty does not shrink with lead) and always bracket zero, so the interval contains
the point forecast.

>>> cal = SplitConformal(level=0.8)
>>> res = np.tile(np.linspace(-1.0, 1.0, 101)[:, None], (1, 2))
>>> cal.fit(res)
>>> [round(x, 2) for x in cal.upper_offset.tolist()]
[0.82, 0.82]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from wattwise.errors import PredictionError
from wattwise.predict.base import FloatArray


class SplitConformal:
    """Per-lead split-conformal interval offsets.

    Args:
        level: Nominal coverage of the central interval (0-1 exclusive).
        min_samples: Fewest calibration residuals accepted per lead.
    """

    def __init__(self, level: float = 0.95, min_samples: int = 20) -> None:
        if not 0.0 < level < 1.0:
            raise PredictionError(f"level must be in (0, 1), got {level}")
        self.level = level
        self.min_samples = min_samples
        self.lower_offset: FloatArray = np.zeros(0)
        self.upper_offset: FloatArray = np.zeros(0)

    def fit(self, residuals: FloatArray) -> None:
        """Calibrate from ``(n_origins, n_leads)`` residuals; NaN entries are ignored.

        Raises:
            PredictionError: Fewer than ``min_samples`` residuals for some lead.
        """
        res = np.asarray(residuals, dtype=np.float64)
        if res.ndim != 2 or res.shape[1] == 0:
            raise PredictionError(f"residuals must be 2-D (origins, leads), got shape {res.shape}")
        counts = np.sum(np.isfinite(res), axis=0)
        if int(counts.min()) < self.min_samples:
            raise PredictionError(
                f"calibration too short: {int(counts.min())} residuals at the longest lead, need {self.min_samples}"
            )
        alpha = 1.0 - self.level
        lo = np.empty(res.shape[1])
        hi = np.empty(res.shape[1])
        for j in range(res.shape[1]):
            col = np.sort(res[np.isfinite(res[:, j]), j])
            lo[j], hi[j] = _conformal_pair(col, alpha)
        self.lower_offset = np.minimum.accumulate(np.minimum(lo, 0.0))
        self.upper_offset = np.maximum.accumulate(np.maximum(hi, 0.0))

    @property
    def n_leads(self) -> int:
        """Number of leads calibrated (0 before ``fit``)."""
        return int(self.upper_offset.shape[0])

    def bands(self, point: FloatArray, lead_idx: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Lower and upper bounds around ``point`` for 0-based lead indices ``lead_idx``.

        Raises:
            PredictionError: Before ``fit`` or for a lead beyond the calibrated ones.
        """
        idx = np.asarray(lead_idx, dtype=np.int64)
        if self.n_leads == 0:
            raise PredictionError("interval calibrator is not fitted")
        if idx.size and int(idx.max()) >= self.n_leads:
            raise PredictionError(f"lead {int(idx.max()) + 1} steps is beyond the calibrated {self.n_leads}")
        return point + self.lower_offset[idx], point + self.upper_offset[idx]


def _conformal_pair(sorted_res: FloatArray, alpha: float) -> tuple[float, float]:
    """Finite-sample corrected (alpha/2, 1-alpha/2) order statistics of sorted residuals."""
    n = sorted_res.shape[0]
    k_hi = int(np.ceil((n + 1) * (1.0 - alpha / 2.0)))
    k_lo = int(np.floor((n + 1) * (alpha / 2.0)))
    hi = sorted_res[min(k_hi, n) - 1]
    lo = sorted_res[max(k_lo, 1) - 1]
    return float(lo), float(hi)
