"""Prometheus metrics for `/metrics`, in a registry of their own (several servers may share a process)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)


class ServeMetrics:
    def __init__(self, running: Callable[[], float], waiting: Callable[[], float]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("r1tune_requests", "Chat completion requests by model and outcome",
                                ["model", "status"], registry=r)
        self.latency = Histogram("r1tune_request_latency_seconds", "End-to-end completion latency", ["model"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("r1tune_time_to_first_token_seconds", "Time to first generated text", ["model"],
                              buckets=LATENCY_BUCKETS, registry=r)
        self.prompt_tokens = Counter("r1tune_prompt_tokens", "Prompt tokens processed", ["model"], registry=r)
        self.completion_tokens = Counter("r1tune_completion_tokens", "Tokens generated", ["model"], registry=r)
        self.guard_events = Counter("r1tune_guard_events", "Guard actions (input_blocked, output_blocked, "
                                    "pii_masked, disclaimer)", ["kind"], registry=r)
        self.store_errors = Counter("r1tune_store_errors", "Completions the store failed to log", registry=r)
        self.feedback = Counter("r1tune_feedback", "Feedback received by rating", ["rating"], registry=r)
        running_gauge = Gauge("r1tune_running_requests", "Sequences in the decoding batch", registry=r)
        running_gauge.set_function(running)
        waiting_gauge = Gauge("r1tune_waiting_requests", "Requests queued for the batch", registry=r)
        waiting_gauge.set_function(waiting)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def observe(self, model: str, status: str, **values: Any) -> None:
        self.requests.labels(model, status).inc()
        if values.get("latency") is not None:
            self.latency.labels(model).observe(values["latency"])
        if values.get("ttft") is not None:
            self.ttft.labels(model).observe(values["ttft"])
        self.prompt_tokens.labels(model).inc(values.get("prompt_tokens", 0))
        self.completion_tokens.labels(model).inc(values.get("completion_tokens", 0))
