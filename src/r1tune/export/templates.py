"""r1tune's chat format as the template languages of other servers: Go text/template for Ollama, Jinja for
vLLM (`--chat-template`) and transformers. Both are generated from the renderer's own format strings and
generation prompt (`models/chat_format.ChatRenderer`), so another server prompts the model with exactly the
text r1tune trained on; tests execute them with the real engines (Go, jinja2) against `prompt_text`.
Neither uses whitespace-trimming markers: every byte of literal text is the format's.
"""

from __future__ import annotations

from dataclasses import dataclass

from r1tune.errors import R1TuneError
from r1tune.models.chat_format import ChatRenderer, turn_separator


@dataclass(frozen=True)
class _Syntax:
    loop: tuple[str, str]  # around the turns
    role_is: str  # an `if` that tests the role, with {role} in it
    elif_role_is: str
    end_if: str
    content: str
    forbidden: tuple[str, ...]  # literal text containing these would be read as template code


GO = _Syntax(("{{ range .Messages }}", "{{ end }}"), '{{{{ if eq .Role "{role}" }}}}', '{{{{ else if eq .Role "{role}" }}}}',
             "{{ end }}", "{{ .Content }}", ("{{", '"""'))
JINJA = _Syntax(("{% for message in messages %}", "{% endfor %}"), "{{% if message['role'] == '{role}' %}}",
                "{{% elif message['role'] == '{role}' %}}", "{% endif %}", "{{ message['content'] }}",
                ("{{", "{%", "{#"))


def _checked(renderer: ChatRenderer, syntax: _Syntax) -> None:
    fmt = renderer.fmt
    for text in (fmt.bos, *fmt.system, *fmt.user, *fmt.assistant, renderer.generation_prompt(), fmt.default_system or ""):
        if any(bad in text for bad in syntax.forbidden):
            raise R1TuneError(f"chat format {fmt.name!r} holds text a template cannot carry: {text!r}")


def _turns(renderer: ChatRenderer, syntax: _Syntax) -> str:
    fmt, c = renderer.fmt, syntax.content
    return (f"{syntax.loop[0]}{syntax.role_is.format(role='system')}{fmt.system[0]}{c}{fmt.system[1]}"
            f"{syntax.elif_role_is.format(role='user')}{fmt.user[0]}{c}{fmt.user[1]}"
            f"{syntax.elif_role_is.format(role='assistant')}{fmt.assistant[0]}{c}{fmt.assistant[1]}"
            f"{turn_separator(fmt)}{syntax.end_if}{syntax.loop[1]}")


def go_template(renderer: ChatRenderer) -> str:
    """Over Ollama's `.Messages` (Role, Content); Ollama itself puts the Modelfile's SYSTEM first when a
    request has none, which is how r1tune applies a default system prompt."""
    _checked(renderer, GO)
    return f"{renderer.fmt.bos}{_turns(renderer, GO)}{renderer.generation_prompt()}"


def jinja_template(renderer: ChatRenderer) -> str:
    """A Hugging Face chat template (`messages`, `add_generation_prompt`), default system prompt included."""
    _checked(renderer, JINJA)
    fmt, system = renderer.fmt, ""
    if fmt.default_system:
        system = (f"{{% if not messages or messages[0]['role'] != 'system' %}}{fmt.system[0]}{fmt.default_system}"
                  f"{fmt.system[1]}{{% endif %}}")
    generation = f"{{% if add_generation_prompt %}}{renderer.generation_prompt()}{{% endif %}}"
    return f"{fmt.bos}{system}{_turns(renderer, JINJA)}{generation}"
