"""Prometheus metrics of one server (its own registry; labels never hold user text).

Labels are route templates ("/v1/collections/{name}/ask"), status codes, and the kind of
model ("chat" or "qa"), so neither a question, a collection name nor a key reaches them.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from sealion_agents.guard import GuardCounter, Verdict

__all__ = ["GuardMetrics", "Metrics", "route_label"]

_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def route_label(scope: Any) -> str:
    """The route template a request matched (never its URL), or "unmatched"."""
    return getattr(scope.get("route"), "path", None) or "unmatched"


class Metrics:
    """Every metric the server records, in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "sealion_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.errors = Counter(
            "sealion_errors",
            "Error responses by route and error type",
            ["route", "type"],
            registry=r,
        )
        self.ttft = Histogram(
            "sealion_time_to_first_token_seconds",
            "Seconds from request to the first generated token (reasoning or answer)",
            ["kind"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.reasoning_tokens = Counter(
            "sealion_reasoning_tokens", "Reasoning tokens generated", ["kind"], registry=r
        )
        self.answer_tokens = Counter(
            "sealion_answer_tokens", "Answer tokens generated", ["kind"], registry=r
        )
        self.queue_depth = Gauge(
            "sealion_queue_depth", "Requests waiting for a generation slot", registry=r
        )
        self.generating = Gauge("sealion_generating", "Generations running now", registry=r)
        self.active_streams = Gauge(
            "sealion_active_streams", "Streaming responses open now", registry=r
        )
        self.rejected = Counter(
            "sealion_rejected", "Requests refused with 429, by reason", ["reason"], registry=r
        )
        self.jobs = Counter(
            "sealion_ingestion_jobs",
            "Ingestion jobs finished, by final state",
            ["state"],
            registry=r,
        )
        self.jobs_running = Gauge(
            "sealion_ingestion_jobs_running", "Ingestion jobs queued or running", registry=r
        )
        self.guard_checks = Counter(
            "sealion_guard_checks",
            "Guard checks by stage and verdict (safe, unsafe, or failed: the guard could not "
            "answer and the fail policy decided)",
            ["stage", "verdict"],
            registry=r,
        )
        self.guard_seconds = Histogram(
            "sealion_guard_check_seconds",
            "Seconds per guard check, by stage (a batch of checks: the whole batch)",
            ["stage"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class GuardMetrics(GuardCounter):
    """A ``GuardCounter`` that also records each verdict in a server's metrics."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self._metrics = metrics

    def record(self, verdict: Verdict) -> None:
        """Count one verdict, here and in the metrics."""
        super().record(verdict)
        label = "failed" if verdict.failed else verdict.label
        self._metrics.guard_checks.labels(verdict.stage, label).inc()
        self._metrics.guard_seconds.labels(verdict.stage).observe(verdict.latency_s)
