"""Prometheus exposition of telemetry and of wattwise's own ingest health.

Device values are exported under base-unit names taken from the metric registry
(``wattwise_power_watts``, ``wattwise_energy_joules_total``, ``wattwise_temperature_celsius``),
labelled by ``device_id``. Health: readings accepted and rejected (by reason and device),
ingest lag, store write latency, queue depth, per-device staleness, and a build ``_info``.

``build_registry`` returns a ``CollectorRegistry``; ``metrics_app`` wraps it as an ASGI app
that the API mounts at ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, make_asgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from wattwise.telemetry.metrics import METRICS, MetricKind
from wattwise.telemetry.pipeline import IngestPipeline

_Family = GaugeMetricFamily | CounterMetricFamily


class TelemetryCollector(Collector):
    """Builds every sample at scrape time from the pipeline's state (no per-reading cost)."""

    def __init__(self, pipeline: IngestPipeline, version: str = "0.1.0") -> None:
        self.pipeline = pipeline
        self.version = version

    def collect(self) -> Iterator[Metric]:
        """Yield device metrics, then health metrics."""
        yield from self._device_metrics()
        yield from self._health_metrics()

    def _device_metrics(self) -> Iterator[Metric]:
        families: dict[str, _Family] = {}
        for (device, metric), (value, _t_s) in sorted(self.pipeline.latest_view().items()):
            spec = METRICS.get(metric)
            if spec is None:
                continue
            fam = families.get(metric)
            if fam is None:
                if spec.kind is MetricKind.COUNTER:
                    # CounterMetricFamily appends ``_total`` itself
                    fam = CounterMetricFamily(spec.prom_name.removesuffix("_total"), spec.help, labels=["device_id"])
                else:
                    fam = GaugeMetricFamily(spec.prom_name, f"{spec.help} ({spec.unit})", labels=["device_id"])
                families[metric] = fam
            fam.add_metric([device], value)
        yield from families.values()

    def _health_metrics(self) -> Iterator[Metric]:
        p = self.pipeline
        stats = p.validator.snapshot()
        info = InfoMetricFamily("wattwise_build", "wattwise build information")
        info.add_metric([], {"version": self.version})
        yield info
        yield CounterMetricFamily("wattwise_readings_accepted", "Readings validated and stored", stats.accepted_total)
        rejected = CounterMetricFamily(
            "wattwise_readings_rejected", "Readings rejected, by reason and device", labels=["reason", "device_id"]
        )
        for (reason, device), n in sorted(stats.rejected.items()):
            rejected.add_metric([str(reason), device], n)
        yield rejected
        yield GaugeMetricFamily("wattwise_ingest_lag_seconds", "Clock time minus newest stored reading", p.ingest_lag_s)
        yield GaugeMetricFamily("wattwise_ingest_queue_batches", "Batches waiting for the store", p.queued_batches())
        yield CounterMetricFamily("wattwise_store_write_failures", "Failed (retried) store writes", p.store_failures)
        yield SummaryMetricFamily(
            "wattwise_store_write_seconds", "Store batch write latency", count_value=p.write_count,
            sum_value=p.write_seconds_sum,
        )  # fmt: skip
        stale = GaugeMetricFamily(
            "wattwise_device_staleness_seconds", "Age of the last good reading per device", labels=["device_id"]
        )
        now_s = p.clock.now_s()
        for device, t_s in sorted(p.validator.last_good_t_s().items()):
            stale.add_metric([device], max(0.0, now_s - t_s))
        yield stale


def build_registry(pipeline: IngestPipeline) -> CollectorRegistry:
    """A registry holding only wattwise's telemetry collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TelemetryCollector(pipeline))
    return registry


def metrics_app(registry: CollectorRegistry) -> object:
    """The ASGI app serving ``registry`` (mount it at ``/metrics``)."""
    return make_asgi_app(registry=registry)
