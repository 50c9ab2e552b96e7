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
from r1tune.serve.engine import BASE_ADAPTER, Engine

log = logging.getLogger(__name__)

RESERVED_NAMES = frozenset({"auto", BASE_ADAPTER})


class AdapterError(R1TuneError):
    """An adapter cannot be registered; `status` is the HTTP status the admin endpoint answers with."""

    def __init__(self, message: str, hint: str | None = None, status: int = 400) -> None:
        super().__init__(message, hint)
        self.status = status


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


def validate_adapter_name(name: str, taken: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    if not isinstance(name, str) or not re.fullmatch(ADAPTER_NAME_PATTERN, name):
        raise AdapterError(
            f"invalid adapter name {name!r}",
            hint="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    if name in RESERVED_NAMES or name in taken:
        raise AdapterError(f"the model id {name!r} is already in use", status=409)
    return name


def resolve_adapter_dir(path: Path, allowed_roots: list[Path] | None = None) -> tuple[Path, Path | None]:
    """Find the PEFT folder for a run folder or adapter folder; returns (adapter_dir, run_dir or None)."""
    try:
        resolved = Path(path).expanduser().resolve(strict=True)
    except (OSError, RuntimeError):
        raise AdapterError(f"adapter path {path} does not exist", status=404) from None
    if allowed_roots is not None:
        roots = [Path(r).expanduser().resolve() for r in allowed_roots]
        if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
            raise AdapterError(
                f"adapter path {path} is outside the allowed adapter folders",
                hint="put the adapter under one of: " + ", ".join(str(r) for r in roots)
                + " (serve.adapter_dirs)",
                status=403,
            )
    run = RunDir(resolved)
    if (run.adapter / "adapter_config.json").is_file():
        return run.adapter, resolved
    if (resolved / "adapter_config.json").is_file():
        run_dir = resolved.parent.parent
        is_run = resolved.parent.name == "train" and (run_dir / "config.yaml").is_file()
        return resolved, run_dir if is_run else None
    if run.whole_model.is_dir():
        raise AdapterError(f"{path} is a full/freeze run: it trained whole weights, not an adapter", status=400,
                           hint=f"serve it on its own with `r1tune serve {path}`")
    raise AdapterError(f"{path} is neither a run folder nor a PEFT adapter folder (no adapter_config.json)",
                       status=404)


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
    digest = hashlib.sha256()
    with weights.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return int(config.get("r") or 0), digest.hexdigest()[:12]


def router_prompts(run_dir: Path | None, router_data: Path | None, limit: int = 5000) -> list[str]:
    """The user prompts an adapter was trained on (for `model: auto`): the last user turn per record."""
    from r1tune.data import read_jsonl

    source = router_data or (run_dir / "data" / "train.jsonl" if run_dir else None)
    if source is None or not source.is_file():
        if router_data is not None:
            raise AdapterError(f"router data {router_data} does not exist", status=404)
        return []
    prompts: list[str] = []
    for record in read_jsonl(source):
        users = [m.content for m in record.prompt_messages if m.role == "user"]
        if users:
            prompts.append(users[-1])
        if len(prompts) >= limit:
            break
    return prompts


class AdapterRegistry:
    """The adapters attached to the engine's model, by model id."""

    def __init__(self, engine: Engine, allowed_roots: list[Path] | None = None) -> None:
        self.engine = engine
        self.allowed_roots = allowed_roots
        self.adapters: dict[str, AdapterInfo] = {}
        self._unloading: set[str] = set()
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return sorted(self.adapters)

    def get(self, name: str) -> AdapterInfo | None:
        return None if name in self._unloading else self.adapters.get(name)

    def load(self, name: str, path: Path, router_data: Path | None = None, *, reserved: set[str] = frozenset(),
             check_roots: bool = True) -> AdapterInfo:
        """Validate and attach an adapter (blocks until the engine thread has loaded it)."""
        with self._lock:
            validate_adapter_name(name, set(self.adapters) | set(reserved))
            adapter_dir, run_dir = resolve_adapter_dir(path, self.allowed_roots if check_roots else None)
            rank, version = inspect_adapter(adapter_dir)
            prompts = router_prompts(run_dir, router_data)
            self.engine.call(lambda: self._attach(name, adapter_dir)).result()
            info = AdapterInfo(name, adapter_dir, version, rank, run_dir, prompts)
            self.adapters[name] = info
            log.info("loaded adapter %s (version %s) from %s", name, version, adapter_dir)
            return info

    def unload(self, name: str, timeout: float = 60.0) -> AdapterInfo:
        """Stop routing new requests to `name`, wait for its running requests, then detach it."""
        with self._lock:
            info = self.adapters.get(name)
            if info is None or name in self._unloading:
                raise AdapterError(f"no adapter named {name!r} is loaded", status=404)
            self._unloading.add(name)
        try:
            deadline = time.monotonic() + timeout
            while name in self.engine.adapters_in_use():
                if time.monotonic() > deadline:
                    raise AdapterError(f"adapter {name!r} is still busy after {timeout:.0f}s", status=409)
                time.sleep(0.05)
            self.engine.call(lambda: self._detach(name)).result()
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
        try:
            if isinstance(model, PeftModel):
                model.load_adapter(str(adapter_dir), adapter_name=name, is_trainable=False)
            else:
                model = PeftModel.from_pretrained(model, str(adapter_dir), adapter_name=name, is_trainable=False)
        except (ValueError, KeyError, RuntimeError, OSError) as err:
            if isinstance(model, PeftModel) and name in model.peft_config:
                model.delete_adapter(name)  # do not leave a half-attached adapter behind
            raise AdapterError(f"cannot attach adapter {name!r} from {adapter_dir}: {err}",
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
