"""Serve stage: an OpenAI-compatible server over a continuous-batching engine, with several LoRA adapters
on one base model, guards, a feedback store and its export into training data.

    r1tune serve runs/<run-id>          # the base model + that run's adapter
    r1tune feedback export CONFIG --out feedback/
"""

from r1tune.models.decoding import ReasoningSplitter, TextStream
from r1tune.serve.adapters import AdapterError, AdapterInfo, AdapterRegistry, validate_adapter_name
from r1tune.serve.app import create_app
from r1tune.serve.engine import Engine, EngineBusy, EngineRequest, Finished, TextDelta
from r1tune.serve.guards import GuardReport, Guards, OutputFilter
from r1tune.serve.router import DomainRouter, Route
from r1tune.serve.runtime import (
    ServeRuntime,
    ServeTarget,
    build_runtime,
    default_database_url,
    resolve_target,
)
from r1tune.serve.sampling import SamplingParams
from r1tune.serve.security import ApiKeys, RateLimiter, add_key
from r1tune.serve.server import prepare_target, run_server
from r1tune.serve.store import ExportResult, FeedbackStore, export_feedback

__all__ = [
    "AdapterError", "AdapterInfo", "AdapterRegistry", "ApiKeys", "DomainRouter", "Engine", "EngineBusy",
    "EngineRequest", "ExportResult", "FeedbackStore", "Finished", "GuardReport", "Guards", "OutputFilter",
    "RateLimiter", "ReasoningSplitter", "Route", "SamplingParams", "ServeRuntime", "ServeTarget", "TextDelta",
    "TextStream", "add_key", "build_runtime", "create_app", "default_database_url", "export_feedback",
    "prepare_target", "resolve_target", "run_server", "validate_adapter_name",
]
