"""Prometheus exposition of telemetry and of wattwise's own ingest health.

Device values are exported under base-unit names taken from the metric registry
(``wattwise_power_watts``, ``wattwise_energy_joules_total``, ``wattwise_temperature_celsius``),
labelled by ``device_id``.

Per-phase metrics (``current_l1_a``..``current_l3_a``, ``power_l1_w``..,
``breaker_l1_tripped``..; see :class:`wattwise.model.metrics.PhaseFamily`) are one metric per
phase inside wattwise, because the phases of one poll share device and time. Prometheus names
should not carry label values, so each family is exported as one series name with a ``phase``
label: ``wattwise_phase_current_amperes{device_id="pdu-1",phase="L2"}``,
``wattwise_phase_power_watts``, ``wattwise_phase_breaker_tripped``. They are kept apart from
``wattwise_current_amperes`` (totals and outlet currents), so ``sum by (device_id)`` over either
name never counts a PDU's load twice.

Health: readings accepted and rejected (by reason and device),
ingest lag, store write latency, queue depth, per-device staleness, and a build ``_info``.

``build_registry`` returns a ``CollectorRegistry``; ``metrics_app`` wraps it as an ASGI app
that the API mounts at ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from prometheus_client import CollectorRegistry, make_asgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from wattwise.model.metrics import PHASE_NAMES, phase_of_metric
from wattwise.telemetry.metrics import METRICS, MetricDef, MetricKind
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
            exported = export_spec(metric)
            if exported is None:
                continue
            spec, phase = exported
            labels = [device] if phase is None else [device, phase]
            fam = families.get(spec.name)
            if fam is None:
                fam = _family(spec, ["device_id", "phase"][: len(labels)])
                families[spec.name] = fam
            fam.add_metric(labels, value)
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


def export_spec(metric: str) -> tuple[MetricDef, str | None] | None:
    """How a metric is exported: the spec of its series and its ``phase`` label, if any.

    Returns:
        ``None`` for an unknown metric; for a per-phase metric (``current_l2_a``) the spec of
        its family (``phase_current_a``, exported as ``wattwise_phase_current_amperes``) and the
        phase (``"L2"``); for any other metric its own spec and ``None``.
    """
    spec = METRICS.get(metric)
    if spec is None:
        return None
    phased = phase_of_metric(metric)
    if phased is None:
        return spec, None
    family, phase = phased
    about = family.description[:1].upper() + family.description[1:]
    return replace(spec, name=family.name, help=about), PHASE_NAMES[phase - 1]


def device_series_names() -> frozenset[str]:
    """Every Prometheus name device values can be exported under (for dashboards' checks)."""
    return frozenset(e[0].prom_name for m in METRICS if (e := export_spec(m)) is not None)


def _family(spec: MetricDef, labels: list[str]) -> _Family:
    if spec.kind is MetricKind.COUNTER:
        # CounterMetricFamily appends ``_total`` itself
        return CounterMetricFamily(spec.prom_name.removesuffix("_total"), spec.help, labels=labels)
    return GaugeMetricFamily(spec.prom_name, f"{spec.help} ({spec.unit})", labels=labels)


def build_registry(pipeline: IngestPipeline) -> CollectorRegistry:
    """A registry holding only wattwise's telemetry collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TelemetryCollector(pipeline))
    return registry


def metrics_app(registry: CollectorRegistry) -> object:
    """The ASGI app serving ``registry`` (mount it at ``/metrics``)."""
    return make_asgi_app(registry=registry)
