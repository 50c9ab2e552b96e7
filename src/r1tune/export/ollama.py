"""An Ollama Modelfile for a GGUF export: the TEMPLATE renders r1tune's chat format, text for text, and the
PARAMETERs carry the preset's sampling and stop tokens, so `ollama run` prompts the model as it was trained.

The template (export/templates.py) is Go text/template, Ollama's language. The GGUF's `add_bos_token` is
false, since formats with a BOS write it in the text.
"""

from __future__ import annotations

import json
from typing import Any

from r1tune.export.templates import go_template
from r1tune.models.chat_format import ChatRenderer

MODELFILE = "Modelfile"


def modelfile(gguf_name: str, renderer: ChatRenderer, sampling: dict[str, Any]) -> str:
    """The Modelfile beside `gguf_name`: FROM, TEMPLATE, SYSTEM (the default system prompt) and PARAMETERs."""
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{go_template(renderer)}"""']
    if renderer.fmt.default_system:
        lines.append(f'SYSTEM """{renderer.fmt.default_system}"""')
    lines += [f"PARAMETER stop {json.dumps(stop, ensure_ascii=False)}" for stop in renderer.fmt.stop]
    lines += [f"PARAMETER {name} {value}" for name, value in sampling.items() if value is not None]
    return "\n".join(lines) + "\n"
