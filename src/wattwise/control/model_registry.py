"""The store's model table as a :class:`~wattwise.predict.base.ModelRegistry`, and node model naming.

``wattwise train --store`` writes one demand forecaster per upstream power node (feed, ATS,
UPS, PDU) as ``<prefix>/<node id>`` with integer versions 1, 2, ...; the controller's
:class:`~wattwise.control.models.NodeForecasts` reads them back. Both go through this adapter,
so the naming and the version rules live in one place. (The store layer cannot import
``predict``; this module wires the two.)
"""

from __future__ import annotations

import time

import numpy as np

from wattwise.decide.index import KIND_UPS, SiteIndex
from wattwise.errors import PredictionError
from wattwise.predict.base import ModelRecord, Series
from wattwise.store.base import TimeSeriesStore

DEFAULT_PREFIX = "demand"
"""Model name prefix shared by ``wattwise train`` and the controller."""


def node_load_metric(kind: int) -> str:
    """The metric that carries a node's load: a UPS's ``output_power_w``, else ``power_w``.

    The chain rows that ``SiteForecast.node_load_upper_w`` bounds carry the load fed by the
    node, which for a UPS is its output (its input adds losses and battery charging).
    """
    return "output_power_w" if kind == KIND_UPS else "power_w"


def node_series(index: SiteIndex) -> list[tuple[str, str]]:
    """``(node id, load metric)`` for every upstream node, in ``index.node_ids`` order."""
    return [(n, node_load_metric(int(k))) for n, k in zip(index.node_ids, index.node_kind.tolist(), strict=True)]


def load_store_series(
    store: TimeSeriesStore, index: SiteIndex, step_s: float, history_s: float
) -> tuple[dict[str, Series], dict[str, str]]:
    """One load series per upstream node from the store, and the nodes skipped with why.

    Each series holds the mean of the node's load metric per ``step_s`` bucket over the last
    ``history_s`` before its newest reading (the buckets the controller feeds the model).
    """
    series: dict[str, Series] = {}
    skipped: dict[str, str] = {}
    for node_id, metric in node_series(index):
        newest = store.latest([node_id], [metric])
        if not newest:
            skipped[node_id] = f"no {metric} readings in the store"
            continue
        end_s = (np.floor(newest[0].t_s / step_s) + 1.0) * step_s
        buckets = store.range(node_id, metric, float(end_s - history_s), float(end_s), step_s)
        t_s = np.array([b.t_s for b in buckets], dtype=np.float64)
        series[node_id] = Series(t_s=t_s, value=np.array([b.mean_value for b in buckets], dtype=np.float64))
    return series, skipped


def model_name(node_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The registry name of a node's demand forecaster."""
    return f"{prefix}/{node_id}"


class StoreModelRegistry:
    """A ``ModelRegistry`` on a :class:`~wattwise.store.base.TimeSeriesStore`'s model table.

    Versions are stored as decimal text; metadata values as text. A version is never
    overwritten, and a new version is stamped after the previous one even within one clock
    tick, so ``latest_model`` (newest by time) returns the highest version.

    Args:
        store: The store (DuckDB or PostgreSQL); its calls may block, so the controller makes
            them off the event loop.
    """

    def __init__(self, store: TimeSeriesStore) -> None:
        self.store = store

    def save(self, name: str, version: int, blob: bytes, meta: dict[str, str]) -> None:
        """Store ``blob`` as ``name`` version ``version``.

        Raises:
            PredictionError: The version is not positive or not above the latest stored one.
            StoreError: The store failed.
        """
        prev = self.store.latest_model(name)
        prev_version = _version(prev.version) if prev is not None else 0
        if version < 1 or version <= prev_version:
            raise PredictionError(f"{name} version {version} exists or is invalid (latest {prev_version})")
        t_s = time.time() if prev is None else max(time.time(), prev.t_s + 1e-3)
        self.store.save_model(name, str(version), blob, meta, t_s=t_s)

    def latest(self, name: str) -> ModelRecord | None:
        """The highest version of ``name``, or ``None``.

        Raises:
            PredictionError: The stored version is not an integer (not written by this registry).
            StoreError: The store failed.
        """
        rec = self.store.latest_model(name)
        if rec is None:
            return None
        meta = tuple(sorted((str(k), str(v)) for k, v in rec.meta.items()))
        return ModelRecord(rec.name, _version(rec.version), rec.blob, meta)

    def next_version(self, name: str) -> int:
        """The version the next ``save`` of ``name`` should use."""
        latest = self.latest(name)
        return 1 if latest is None else latest.version + 1


def _version(text: str) -> int:
    try:
        return int(text)
    except ValueError as err:
        raise PredictionError(f"model version {text!r} is not an integer") from err
