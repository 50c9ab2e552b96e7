"""Everything a running server holds, built from a project file or a run folder: the model and its engine,
the adapters, the router, the guards, the feedback store, the keys and the metrics."""

from __future__ import annotations

import functools
import ipaddress
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r1tune.config import R1TuneConfig, ServeConfig
from r1tune.errors import ConfigError
from r1tune.models.decoding import THINK_CLOSE
from r1tune.serve.adapters import AdapterInfo, AdapterRegistry
from r1tune.serve.engine import Engine
from r1tune.serve.guards import Guards
from r1tune.serve.logprobs import LogprobFormatter
from r1tune.serve.metrics import ServeMetrics
from r1tune.serve.router import DomainRouter
from r1tune.serve.security import ApiKeys, RateLimiter
from r1tune.serve.store import FeedbackStore
from r1tune.serve.structured import StructuredOutputs

log = logging.getLogger(__name__)


@dataclass
class ServeTarget:
    """What `r1tune serve PATH` resolved to: a config, plus the run whose adapter to serve (if PATH is a run),
    or the whole trained weights of a `full`/`freeze` run, served in place of the base."""

    cfg: R1TuneConfig
    run_dir: Path | None = None
    run_adapter_name: str | None = None
    weights_dir: Path | None = None


def resolve_target(path: Path, overrides: list[str] | None = None) -> ServeTarget:
    """A run folder serves the base model plus that run's adapter (named after its project), or, for a
    `full`/`freeze` run, its trained weights in place of the base; a project file serves the base model
    plus `serve.adapters`."""
    from r1tune.configfile import load_config
    from r1tune.rundir import RunDir

    path = Path(path)
    run = RunDir(path.resolve())
    kind = run.result_kind if run.config_file.is_file() else None
    if kind == "adapter":
        cfg = load_config(run.config_file, overrides or [])
        return ServeTarget(cfg, run.path, _adapter_id(cfg.project.name))
    if kind == "whole_model":
        return ServeTarget(load_config(run.config_file, overrides or []), run.path, weights_dir=run.whole_model)
    return ServeTarget(load_config(path, overrides or []))


def _adapter_id(project_name: str) -> str:
    slug = "".join(c if c.isalnum() or c in "._-" else "-" for c in project_name).strip("-._")[:64]
    return slug or "adapter"


def default_database_url(cfg: R1TuneConfig) -> str:
    return cfg.serve.database_url or f"sqlite:///{cfg.project.runs_dir / 'feedback.db'}"


def check_security(serve: ServeConfig, keys: ApiKeys) -> None:
    """Refuse to expose an unauthenticated server beyond this machine unless explicitly allowed."""
    if keys.enabled or serve.allow_unauthenticated or _is_loopback(serve.host):
        return
    raise ConfigError(
        f"refusing to serve on {serve.host} without API keys",
        hint="add keys (serve.api_keys_file, or the environment variable "
        f"{serve.api_keys_env}), bind to 127.0.0.1, or set serve.allow_unauthenticated: true",
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServeRuntime:
    cfg: R1TuneConfig
    base_id: str
    loaded: object  # r1tune.models.LoadedModel
    engine: Engine
    registry: AdapterRegistry
    guards: Guards
    store: FeedbackStore | None
    keys: ApiKeys
    limiter: RateLimiter
    metrics: ServeMetrics
    router: DomainRouter = field(init=False)
    max_context: int | None = None
    auth_failures: RateLimiter = field(init=False)  # failed key attempts, per client address

    def __post_init__(self) -> None:
        self.auth_failures = RateLimiter(self.cfg.serve.auth_failures_per_minute)
        self.refresh_router()

    @property
    def serve(self) -> ServeConfig:
        return self.cfg.serve

    @functools.cached_property
    def max_token_chars(self) -> int:
        """Characters in the vocabulary's longest token: no token decodes to more (a byte-level entry has one
        character per byte)."""
        return max(len(token) for token in self.loaded.tokenizer.get_vocab())  # type: ignore[attr-defined]

    @functools.cached_property
    def logprob_formatter(self) -> LogprobFormatter:
        return LogprobFormatter(self.loaded.tokenizer)  # type: ignore[attr-defined]

    @functools.cached_property
    def structured(self) -> StructuredOutputs:
        """The response-format compiler (built on the first request that asks for JSON)."""
        loaded: Any = self.loaded
        vocab = loaded.tokenizer.get_vocab()
        return StructuredOutputs(loaded.tokenizer, list(self.engine.stop_token_ids), loaded.model.config.vocab_size,
                                 vocab.get(THINK_CLOSE), bool(loaded.renderer.fmt.think))

    def refresh_router(self) -> None:
        prompts = {name: info.router_prompts for name, info in self.registry.adapters.items()}
        min_similarity = self.serve.auto_min_similarity if self.serve.serve_base else 0.0
        self.router = DomainRouter(prompts, min_similarity=min_similarity, method=self.serve.router)

    def model_ids(self) -> list[str]:
        ids = [self.base_id] if self.serve.serve_base else []
        ids += self.registry.names()
        if self.router.available:
            ids.append("auto")
        return ids

    def load_adapter(self, name: str, path: Path, router_data: Path | None = None, check_roots: bool = True
                     ) -> AdapterInfo:
        info = self.registry.load(name, path, router_data, reserved={self.base_id}, check_roots=check_roots)
        self.refresh_router()
        return info

    def swap_adapter(self, name: str, path: Path) -> AdapterInfo:
        """New weights for a served adapter name, without a restart (see AdapterRegistry.replace)."""
        info = self.registry.replace(name, path)
        self.refresh_router()
        return info

    def set_canary(self, name: str, path: Path | None, share: float) -> AdapterInfo | None:
        return self.registry.set_canary(name, path, share)

    def unload_adapter(self, name: str) -> AdapterInfo:
        info = self.registry.unload(name)
        self.refresh_router()
        return info

    def start(self) -> None:
        self.engine.start()

    def close(self) -> None:
        self.engine.stop()
        if self.store is not None:
            self.store.close()


def load_serving_model(source, model_cfg, plan, pack_weights: bool = True):
    """The model in the dtype it is served in. bf16 *weights* rather than fp32 weights under bf16 autocast:
    measured on a shared 2-core AMX CPU (1 torch thread) with SmolLM2-135M, a decoding step at batch 1 took
    139 ms with bf16 weights, 126 ms in fp32 and 250 ms under autocast (which re-casts the weights), and at
    batch 16 227 / 310 / 333 ms. With `pack_weights`, bf16 linear layers are pre-packed for oneDNN
    (`models.pack_linear_layers`), before any adapter is attached. `plan` (models/device.DevicePlan) says
    where: on a GPU the weights are in its compute dtype too."""
    import torch

    from r1tune.models import load_model, pack_linear_layers

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(plan.compute, torch.float32)
    model = load_model(source, model_cfg, dtype=dtype, plan=plan)
    model.eval()
    model.config.use_cache = True
    if pack_weights and plan.device == "cpu":
        pack_linear_layers(model)
    return model


def _local_engine(cfg: R1TuneConfig, target: ServeTarget, loaded: Any, plan: Any) -> tuple[Engine, int | None]:
    """The model in this process, placed by the device plan, and the continuous-batching engine over it."""
    from r1tune import models

    serve = cfg.serve
    source = models.weights_source(cfg.model, target.weights_dir) if target.weights_dir else loaded.source
    loaded.model = model = load_serving_model(source, cfg.model, plan, serve.pack_weights)
    max_context = getattr(model.config, "max_position_embeddings", None)
    engine = Engine(model, loaded.tokenizer, loaded.renderer.stop_token_ids, max_batch_size=serve.max_batch_size,
                    max_waiting=serve.max_waiting, prefill_token_budget=serve.prefill_token_budget,
                    max_context=max_context, seed=cfg.project.seed)
    return engine, max_context


def build_runtime(target: ServeTarget) -> ServeRuntime:
    """Load the model and every configured adapter; nothing is started yet (see `ServeRuntime.start`)."""
    from r1tune import models
    from r1tune.models.device import choose_engine

    cfg = target.cfg
    serve = cfg.serve
    if cfg.model.trust_remote_code:
        raise ConfigError("the server does not run models that need trust_remote_code",
                          hint="set model.trust_remote_code: false (export a model in standard format first)")
    plan = models.inference_plan(serve.precision, cfg.model)
    engine_name = choose_engine(serve.engine, plan.device, "serve.engine")  # vLLM without CUDA fails first
    keys = ApiKeys.load(serve.api_keys_file, serve.api_keys_env, serve.allow_weak_keys)
    check_security(serve, keys)
    # opened before the model loads, so a wrong database URL fails in seconds, not after a 70B load
    store = FeedbackStore(default_database_url(cfg)) if serve.log_completions else None
    loaded = models.load(cfg.model, cfg.train.reasoning, with_weights=False)
    served_name = cfg.project.name if target.weights_dir else loaded.source.display_name.rstrip("/").split("/")[-1]
    base_id = serve.base_model_id or _adapter_id(served_name)
    if engine_name == "builtin":
        engine, max_context = _local_engine(cfg, target, loaded, plan)
    else:
        from r1tune.serve.gateway import upstream_engine

        engine, max_context = upstream_engine(cfg, target, loaded, base_id, engine_name)
    log.info("serve.engine: %s (%s)", engine_name, serve.engine)
    roots = serve.adapter_dirs or [cfg.project.runs_dir]
    registry = AdapterRegistry(engine, allowed_roots=roots)
    runtime = ServeRuntime(cfg, base_id, loaded, engine, registry, Guards(serve.guards), store, keys,
                           RateLimiter(serve.rate_limit_per_minute),
                           ServeMetrics(lambda: engine.num_running, lambda: engine.num_waiting),
                           max_context=max_context)
    # Adapters named in the config (and the served run's own) were chosen by the operator: the admin
    # endpoint's folder restriction does not apply to them.
    if target.run_dir is not None and target.run_adapter_name:
        runtime.load_adapter(target.run_adapter_name, target.run_dir, check_roots=False)
    for spec in serve.adapters:
        runtime.load_adapter(spec.name, spec.path, spec.router_data, check_roots=False)
    if serve.live_versions:
        _serve_live_versions(runtime, store or FeedbackStore(default_database_url(cfg)))
    return runtime


def _serve_live_versions(runtime: ServeRuntime, store: FeedbackStore) -> None:
    """The registry's live version of each name: loaded, or swapped in over the config's weights."""
    from r1tune.serve.versions import VersionRegistry

    for row in VersionRegistry(store).list():
        if row.status != "live" or row.kind != "adapter":
            continue
        served = runtime.registry.get(row.name)
        if served is None:
            runtime.load_adapter(row.name, Path(row.run_path), check_roots=False)
        elif served.path.resolve() != (Path(row.run_path) / "train" / "adapter").resolve():
            runtime.registry.replace(row.name, Path(row.run_path), check_roots=False)  # the operator promoted it
        log.info("serving %s from live version %s", row.name, row.id)
    runtime.refresh_router()
