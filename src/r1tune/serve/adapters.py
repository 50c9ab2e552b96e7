"""Several LoRA adapters on one base model: registration, validation, loading and unloading at runtime.

Adapters are attached to one `PeftModel` under their model id (`load_adapter(path, adapter_name=...)`), and
the engine batches requests for different adapters in one forward pass (PEFT mixed-batch inference).
Every model change runs on the engine thread between two decoding steps, so a forward pass never sees a
half-loaded adapter. An adapter is unloaded only after the requests using it have finished.

What is refused, and why:
- names outside `[A-Za-z0-9][A-Za-z0-9._-]{0,63}` (no `/`, no `..`): names become model ids and log keys;
- paths outside the configured adapter folders (after resolving symlinks and `..`): the admin endpoint must
  not be a way to read arbitrary files;
- pickle weights (`adapter_model.bin`) and anything that is not a LoRA adapter.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r1tune.config import ADAPTER_NAME_PATTERN
from r1tune.errors import R1TuneError
from r1tune.rundir import RunDir
from r1tune.serve.engine import BASE_ADAPTER, Engine, EngineRequest

log = logging.getLogger(__name__)

RESERVED_NAMES = frozenset({"auto", BASE_ADAPTER})


class AdapterError(R1TuneError):
    """An adapter cannot be registered; `status` is the HTTP status the admin endpoint answers with."""

    def __init__(self, message: str, hint: str | None = None, status: int = 400, param: str = "lora_path") -> None:
        super().__init__(message, hint)
        self.status = status
        self.param = param  # the request field the error is about


@dataclass
class AdapterInfo:
    """A loaded adapter as `/v1/models` and the completion log describe it."""

    name: str
    path: Path
    version: str  # first 12 hex digits of the weights' sha256: changes whenever the adapter is retrained
    rank: int
    run_dir: Path | None
    router_prompts: list[str] = field(default_factory=list)
    loaded_at: float = field(default_factory=time.time)
    engine_name: str = ""  # the weights' name inside the engine: the public name, or `name__N` after a swap

    def __post_init__(self) -> None:
        self.engine_name = self.engine_name or self.name


def validate_adapter_name(name: str, taken: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    if not isinstance(name, str) or not re.fullmatch(ADAPTER_NAME_PATTERN, name):
        raise AdapterError(
            f"invalid adapter name {name!r}",
            hint="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", param="lora_name",
        )
    if name in RESERVED_NAMES or name in taken:
        raise AdapterError(f"the model id {name!r} is already in use", status=409, param="lora_name")
    return name


def confine(path: Path, roots: list[Path] | None, param: str = "lora_path") -> Path:
    """`path` with every symlink and `..` resolved, which must exist and, when `roots` are given, lie inside
    one of them. "Missing" and "not allowed" are one error, so the admin endpoint cannot be used to learn
    which files exist outside the adapter folders."""
    try:
        resolved = Path(path).expanduser().resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        resolved = None
    allowed = roots is None or (resolved is not None and
                                any(resolved.is_relative_to(Path(r).expanduser().resolve()) for r in roots))
    if resolved is None or not allowed:
        where = " inside the allowed adapter folders (serve.adapter_dirs)" if roots is not None else ""
        raise AdapterError(f"{path} does not exist{where}", status=404, param=param)
    return resolved


def resolve_adapter_dir(path: Path, roots: list[Path] | None = None) -> tuple[Path, Path | None]:
    """Find the PEFT folder for a run folder or adapter folder; returns (adapter_dir, run_dir or None).
    With `roots`, the folder, the adapter folder inside a run and the files PEFT reads must all
    resolve inside them: a `train/adapter` or weights file that links elsewhere is refused."""
    resolved = confine(path, roots)
    run = RunDir(resolved)
    if (run.adapter / "adapter_config.json").is_file():
        adapter_dir, run_dir = confine(run.adapter, roots), resolved
    elif (resolved / "adapter_config.json").is_file():
        run_dir = resolved.parent.parent
        is_run = resolved.parent.name == "train" and (run_dir / "config.yaml").is_file()
        adapter_dir, run_dir = resolved, (run_dir if is_run else None)
    elif run.whole_model.is_dir():
        raise AdapterError(f"{path} is a full/freeze run: it trained whole weights, not an adapter", status=400,
                           hint=f"serve it on its own with `r1tune serve {path}`")
    else:
        raise AdapterError(f"{path} is neither a run folder nor a PEFT adapter folder (no adapter_config.json)",
                           status=404)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        if (adapter_dir / name).exists() or (adapter_dir / name).is_symlink():
            confine(adapter_dir / name, roots)
    return adapter_dir, run_dir


def inspect_adapter(adapter_dir: Path) -> tuple[int, str]:
    """Check that a folder holds a LoRA adapter in safetensors; return (rank, version)."""
    config_file = adapter_dir / "adapter_config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise AdapterError(f"{config_file} is not valid JSON: {err}") from None
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        kind = config.get("peft_type") if isinstance(config, dict) else type(config).__name__
        raise AdapterError(f"{adapter_dir} is a {kind} adapter; only LoRA adapters can be served")
    if config.get("use_dora"):
        raise AdapterError(f"{adapter_dir} is a DoRA adapter, which PEFT cannot batch with other adapters")
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        pickled = (adapter_dir / "adapter_model.bin").is_file()
        raise AdapterError(
            f"{adapter_dir} has no adapter_model.safetensors"
            + (" (refusing the pickle adapter_model.bin: loading it can execute code)" if pickled else ""),
            hint="save adapters with safe_serialization=True",
        )
    _check_weights_readable(weights)
    digest = hashlib.sha256()
    with weights.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return int(config.get("r") or 0), digest.hexdigest()[:12]


def _check_weights_readable(weights: Path) -> None:
    """Read every tensor once before the model is touched: a truncated or corrupt file is refused here with
    a 400 instead of failing half-way through attaching. LoRA weights are small (MBs), so this is cheap."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 (safe_open has keys(), no iteration)
                fh.get_tensor(key)
    except Exception as err:  # safetensors raises its own error types for every kind of damage
        raise AdapterError(f"{weights} is not a readable safetensors file: {err}") from None


def router_prompts(run_dir: Path | None, router_data: Path | None, limit: int = 5000) -> list[str]:
    """The user prompts an adapter was trained on (for `model: auto`): the last user turn per record."""
    from r1tune.data import read_jsonl

    source = router_data or (run_dir / "data" / "train.jsonl" if run_dir else None)
    if source is None or not source.is_file():
        return []
    prompts: list[str] = []
    try:
        for record in read_jsonl(source):
            users = [m.content for m in record.prompt_messages if m.role == "user"]
            if users:
                prompts.append(users[-1])
            if len(prompts) >= limit:
                break
    except Exception as err:  # a data error names the file and line; it is the operator's own file
        raise AdapterError(f"router data {source} is not a JSONL file of chat records: {err}",
                           param="router_data") from None
    return prompts


class AdapterRegistry:
    """The adapters attached to the engine's model, by model id.

    Two locks: `_lock` serialises the admin operations (load, swap, canary, unload), which may hold it
    for seconds while weights attach; `_handover` is held only while a request picks its weights and
    enters the engine's queue (`submit`) and while an admin operation changes which weights a name
    picks. So a request either reaches the engine before old weights are retired, where the retirement
    sees it and waits, or picks the new weights; without that, a request picked between a swap's check
    and its detach ran on weights that were gone."""

    def __init__(self, engine: Engine, allowed_roots: list[Path] | None = None) -> None:
        self.engine = engine
        self.allowed_roots = allowed_roots
        self.adapters: dict[str, AdapterInfo] = {}
        self._unloading: set[str] = set()
        self._lock = threading.Lock()
        self._handover = threading.Lock()
        self._swaps = 0
        self.canaries: dict[str, tuple[AdapterInfo, float]] = {}

    def names(self) -> list[str]:
        """Adapters that take requests (one being unloaded no longer does)."""
        return sorted(set(self.adapters) - self._unloading)

    def get(self, name: str) -> AdapterInfo | None:
        return None if name in self._unloading else self.adapters.get(name)

    def load(self, name: str, path: Path, router_data: Path | None = None, *, reserved: set[str] = frozenset(),
             check_roots: bool = True) -> AdapterInfo:
        """Validate and attach an adapter (blocks until the engine thread has loaded it)."""
        with self._lock:
            validate_adapter_name(name, set(self.adapters) | set(reserved))
            roots = self.allowed_roots if check_roots else None
            adapter_dir, run_dir = resolve_adapter_dir(path, roots)
            rank, version = inspect_adapter(adapter_dir)
            if router_data is not None:
                router_data = confine(router_data, roots, param="router_data")
            prompts = router_prompts(run_dir, router_data)
            self._attach_weights(name, adapter_dir)
            info = AdapterInfo(name, adapter_dir, version, rank, run_dir, prompts)
            self.adapters[name] = info
            log.info("loaded adapter %s (version %s) from %s", name, version, adapter_dir)
            return info

    def replace(self, name: str, path: Path, timeout: float = 60.0, check_roots: bool = True) -> AdapterInfo:
        """Swap `name` to the weights at `path` without a restart: the new weights attach under a fresh
        engine name, new requests go to them at once, requests already running finish on the old weights,
        which are detached when none uses them any more (a promotion or rollback of a model version)."""
        with self._lock:
            old = self.adapters.get(name)
            if old is None or name in self._unloading:
                raise AdapterError(f"no adapter named {name!r} is loaded", status=404)
            info = self._attach_fresh(name, path, check_roots, with_router_prompts=True)
            with self._handover:
                self.adapters[name] = info
        self._detach_when_unused(old.engine_name, timeout)
        log.info("adapter %s now serves version %s (was %s)", name, info.version, old.version)
        return info

    def set_canary(self, name: str, path: Path | None, share: float, timeout: float = 60.0) -> AdapterInfo | None:
        """Send `share` of `name`'s traffic to the candidate weights at `path` (share 0 ends the canary);
        returns the candidate's info, None when ended."""
        with self._lock:
            if name not in self.adapters or name in self._unloading:
                raise AdapterError(f"no adapter named {name!r} is loaded", status=404)
            with self._handover:
                ended = self.canaries.pop(name, None)
        if ended is not None:
            self._detach_when_unused(ended[0].engine_name, timeout)
        if share == 0 or path is None:
            return None
        with self._lock:
            info = self._attach_fresh(name, path, check_roots=True, with_router_prompts=False)
            with self._handover:
                self.canaries[name] = (info, share)
        return info

    def _attach_fresh(self, name: str, path: Path, check_roots: bool, with_router_prompts: bool) -> AdapterInfo:
        """Attach the weights at `path` for `name` under a new engine name, beside the ones serving now."""
        adapter_dir, run_dir = resolve_adapter_dir(path, self.allowed_roots if check_roots else None)
        rank, version = inspect_adapter(adapter_dir)
        self._swaps += 1
        prompts = router_prompts(run_dir, None) if with_router_prompts else []
        info = AdapterInfo(name, adapter_dir, version, rank, run_dir, prompts, engine_name=f"{name}__{self._swaps}")
        self._attach_weights(info.engine_name, adapter_dir)
        return info

    def _attach_weights(self, engine_name: str, adapter_dir: Path) -> None:
        attach = getattr(self.engine, "attach_adapter", None) or self._attach  # a gateway's upstream holds it
        self.engine.call(lambda: attach(engine_name, adapter_dir)).result()

    def submit(self, request: EngineRequest, name: str | None, user: str | None) -> AdapterInfo | None:
        """Queue `request` on the engine, on the weights that answer `name` now (None: the base model);
        returns those weights' info. Raises AdapterError (404) for a name that is not, or no longer, served,
        and the engine's EngineBusy when its queue is full."""
        if name is None:
            self.engine.submit(request)
            return None
        with self._handover:
            info = self._pick(name, user)
            if info is None:
                raise AdapterError(f"no adapter named {name!r} is loaded", status=404, param="model")
            request.adapter = info.engine_name
            self.engine.submit(request)
        return info

    def _pick(self, name: str, user: str | None) -> AdapterInfo | None:
        """The weights that answer a request for `name`: the canary for its share of the traffic (the
        same user always gets the same side), else the live ones."""
        live = self.get(name)
        canary = self.canaries.get(name)
        if live is None or canary is None:
            return live
        info, share = canary
        draw = (int(hashlib.sha256(user.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF) if user else random.random()
        return info if draw < share else live

    def _detach_when_unused(self, engine_name: str, timeout: float) -> None:
        """Detach `engine_name` once no queued or running request holds it. The check and the detach run
        as one command on the engine thread, between two steps: during a step, requests being admitted are
        in neither the queue nor the running batch, and a check from outside missed them."""
        detach = getattr(self.engine, "detach_adapter", None) or self._detach

        def detach_if_unused() -> bool:
            if engine_name in self.engine.adapters_in_use():
                return False
            detach(engine_name)
            return True

        deadline = time.monotonic() + timeout
        while not self.engine.call(detach_if_unused).result():
            if time.monotonic() > deadline:
                raise AdapterError(f"the old weights of {engine_name!r} are still busy after {timeout:.0f}s", status=409)
            time.sleep(0.05)

    def unload(self, name: str, timeout: float = 60.0) -> AdapterInfo:
        """Stop routing new requests to `name`, wait for its running requests, then detach it."""
        with self._lock:
            info = self.adapters.get(name)
            if info is None or name in self._unloading:
                raise AdapterError(f"no adapter named {name!r} is loaded", status=404)
            with self._handover:
                self._unloading.add(name)
        try:
            self._detach_when_unused(info.engine_name, timeout)
            canary = self.canaries.pop(name, None)
            if canary is not None:
                self._detach_when_unused(canary[0].engine_name, timeout)
            with self._lock:
                del self.adapters[name]
            log.info("unloaded adapter %s", name)
            return info
        finally:
            self._unloading.discard(name)

    # -- on the engine thread ----------------------------------------------------------------------------

    def _attach(self, name: str, adapter_dir: Path) -> None:
        from peft import PeftModel

        model = self.engine.model
        had_config = hasattr(model, "peft_config")
        try:
            if isinstance(model, PeftModel):
                model.load_adapter(str(adapter_dir), adapter_name=name, is_trainable=False)
            else:
                model = PeftModel.from_pretrained(model, str(adapter_dir), adapter_name=name, is_trainable=False)
        except Exception as err:  # any failure: the model must be left exactly as it was
            _roll_back_attach(self.engine.model, name, had_config)
            detail = " ".join(str(err).split("\n")[:2])[:300]  # a state-dict error lists every tensor
            raise AdapterError(f"cannot attach adapter {name!r} from {adapter_dir}: {type(err).__name__}: {detail}",
                               hint="was it trained on this base model?") from None
        model.eval()
        self.engine.model = model
        self.engine.uses_adapters = True

    def _detach(self, name: str) -> None:
        model: Any = self.engine.model
        if len(model.peft_config) > 1:
            with warnings.catch_warnings():  # "adapter X was active": the engine names adapters per row anyway
                warnings.simplefilter("ignore", UserWarning)
                model.delete_adapter(name)
            return
        # The last adapter: take the LoRA layers out again so the base model runs at full speed.
        self.engine.model = model.unload()
        self.engine.uses_adapters = False


def _roll_back_attach(model: Any, name: str, had_config: bool) -> None:
    """Undo a failed attach. On a PeftModel, delete the half-loaded adapter. On a plain model, PEFT may
    already have wrapped layers in place and set a `peft_config` attribute before the weights failed to
    load: put the base layers back and drop the attribute (left behind, the next attach took the failed
    adapter's config along and then loaded nothing for it without an error)."""
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTunerLayer

    if isinstance(model, PeftModel):
        if name in model.peft_config:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                model.delete_adapter(name)
        return
    wrapped = [(n, m) for n, m in model.named_modules() if isinstance(m, BaseTunerLayer)]
    for module_name, module in wrapped:
        parent_name, _, child = module_name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, module.get_base_layer())
    if not had_config and hasattr(model, "peft_config"):
        del model.peft_config
