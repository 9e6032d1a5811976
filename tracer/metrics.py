"""Prometheus metrics of the tracer (one registry per app, so tests can run several)."""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily


class _PendingCollector:
    def __init__(self, stats: Callable[[], tuple[int, float | None, int]]):
        self.stats = stats

    def collect(self):
        try:
            pending, age, unbatched = self.stats()
        except Exception:  # database unreachable: report nothing rather than fail the scrape
            return
        yield GaugeMetricFamily("tracer_pending_traces", "Traces stored but not yet anchored", value=pending)
        yield GaugeMetricFamily("tracer_unbatched_traces", "Traces stored and not yet in a batch", value=unbatched)
        yield GaugeMetricFamily(
            "tracer_oldest_pending_age_seconds", "Age of the oldest trace not yet anchored (0 when none)", value=age or 0.0
        )


class Metrics:
    def __init__(self, stats: Callable[[], tuple[int, float | None, int]] | None = None):
        self.registry = CollectorRegistry()
        r = self.registry
        self.traces_received = Counter("tracer_traces_received", "Traces stored by the intake", registry=r)
        self.traces_duplicate = Counter("tracer_traces_duplicate", "Posts of a trace id already stored", registry=r)
        self.traces_rejected = Counter("tracer_traces_rejected", "Posts refused (4xx)", registry=r)
        self.anchors_sent = Counter("tracer_anchor_transactions_sent", "Anchor transactions broadcast", registry=r)
        self.batches_anchored = Counter("tracer_batches_anchored", "Batches confirmed on the chain", registry=r)
        self.traces_anchored = Counter("tracer_traces_anchored", "Traces confirmed on the chain", registry=r)
        self.failures = Counter("tracer_anchor_failures", "Failed anchoring attempts (chain down, timeouts, reverts)", registry=r)
        if stats is not None:
            r.register(_PendingCollector(stats))

    def render(self) -> bytes:
        return generate_latest(self.registry)
