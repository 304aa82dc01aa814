"""A columnar batch of readings: the shape validation and storage work on (NumPy columns).

``Reading`` is the value that crosses layers one at a time; ``ReadingBatch`` carries many of
them as parallel arrays so that validation and bulk inserts run at NumPy/database speed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from wattwise.model.values import Quality, Reading

ObjArray = npt.NDArray[np.object_]
FloatArray = npt.NDArray[np.float64]
Tags = tuple[tuple[str, str], ...]


def _obj(items: Sequence[object]) -> ObjArray:
    # fromiter never broadcasts nested tuples (tags) into extra dimensions
    return np.fromiter(items, dtype=object, count=len(items))


@dataclass(frozen=True, slots=True, eq=False)
class ReadingBatch:
    """Many readings as parallel columns (row ``i`` of every column is one reading).

    Attributes:
        device_id: Device ids (``str`` objects).
        metric: Metric names (``str`` objects).
        value: Values in the metric's SI unit.
        t_s: Measurement times, s since the epoch.
        quality: ``Quality`` values as strings.
        tags: Sorted ``(key, value)`` tuples, one per row.
    """

    device_id: ObjArray
    metric: ObjArray
    value: FloatArray
    t_s: FloatArray
    quality: ObjArray
    tags: ObjArray

    def __len__(self) -> int:
        return int(self.value.shape[0])

    @classmethod
    def empty(cls) -> ReadingBatch:
        """A batch with no rows."""
        return cls.from_readings(())

    @classmethod
    def from_readings(cls, readings: Iterable[Reading]) -> ReadingBatch:
        """Columns from ``Reading`` values."""
        rows = list(readings)
        return cls(
            device_id=_obj([r.device_id for r in rows]),
            metric=_obj([r.metric for r in rows]),
            value=np.array([r.value for r in rows], dtype=np.float64),
            t_s=np.array([r.t_s for r in rows], dtype=np.float64),
            quality=_obj([str(r.quality) for r in rows]),
            tags=_obj([r.tags for r in rows]),
        )

    @classmethod
    def from_columns(
        cls,
        device_id: Sequence[str],
        metric: Sequence[str],
        value: npt.ArrayLike,
        t_s: npt.ArrayLike,
        quality: Sequence[str] | None = None,
        tags: Sequence[Tags] | None = None,
    ) -> ReadingBatch:
        """Columns from sequences (quality defaults to good, tags to none)."""
        n = len(device_id)
        return cls(
            device_id=_obj(device_id),
            metric=_obj(metric),
            value=np.asarray(value, dtype=np.float64).reshape(n),
            t_s=np.asarray(t_s, dtype=np.float64).reshape(n),
            quality=_obj(quality if quality is not None else [str(Quality.GOOD)] * n),
            tags=_obj(tags if tags is not None else [()] * n),
        )

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> ReadingBatch:
        """The rows selected by an integer index or a boolean mask."""
        return ReadingBatch(
            self.device_id[index],
            self.metric[index],
            self.value[index],
            self.t_s[index],
            self.quality[index],
            self.tags[index],
        )

    def to_readings(self) -> list[Reading]:
        """Back to ``Reading`` values."""
        q = _QUALITY
        return [
            Reading(d, m, v, t, q[s], g)
            for d, m, v, t, s, g in zip(
                self.device_id.tolist(), self.metric.tolist(), self.value.tolist(), self.t_s.tolist(),
                self.quality.tolist(), self.tags.tolist(), strict=True,
            )
        ]  # fmt: skip

    @staticmethod
    def concat(batches: Sequence[ReadingBatch]) -> ReadingBatch:
        """One batch holding the rows of all ``batches`` in order."""
        if not batches:
            return ReadingBatch.empty()
        return ReadingBatch(*(np.concatenate([getattr(b, col) for b in batches]) for col in _COLUMNS))


_QUALITY = {str(q): q for q in Quality}
_COLUMNS = ("device_id", "metric", "value", "t_s", "quality", "tags")
