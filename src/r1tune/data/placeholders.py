"""Unfilled template placeholders: `{{name}}`, `{author}`, `${var}`, `<NAME>`, `%s`.

Peer data ships templates meant to be filled before training (LLaMA-Factory's identity.json says
"I am {{name}}, made by {{author}}"); trained as they are, the model learns to say the braces. Square
brackets are left alone: `[PHONE]` is what r1tune's own PII masking writes.
"""

from __future__ import annotations

import re

_PLACEHOLDER = re.compile(
    r"\{\{\s*[A-Za-z_][\w.]*\s*\}\}"  # {{name}}, {{ user.name }}
    r"|\$\{[A-Za-z_]\w*\}"  # ${name}
    r"|(?<![{\w])\{[A-Za-z_]\w*\}(?!\})"  # {name} (not JSON: no quotes, no colon)
    r"|<[A-Z][A-Z0-9_]{2,}>"  # <NAME>, <COMPANY_NAME>
    r"|%[sd](?![A-Za-z])"  # %s, %d
)


def find_placeholders(texts: list[str]) -> list[str]:
    """The distinct placeholders in `texts`, in order of first appearance."""
    found: dict[str, None] = {}
    for text in texts:
        for match in _PLACEHOLDER.finditer(text):
            found.setdefault(match.group(), None)
    return list(found)
