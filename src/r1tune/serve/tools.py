"""Tool calls: `tools`, `tool_choice` and `parallel_tool_calls` for models that call tools in `<tool_call>`
blocks: ChatML models (Qwen2.5's convention) and the DeepSeek-R1 distills, whose Qwen vocabulary keeps
`<tool_call>` and `</tool_call>` as tokens of their own. Other chat formats answer 400.

The conversation is rendered with the formats' ordinary roles: the tool signatures join the system prompt,
an assistant turn that called tools carries its `<tool_call>` blocks, and a tool result becomes a user turn
wrapped in `<tool_response>`. A generated answer's blocks become OpenAI `tool_calls` (finish_reason
`tool_calls`); a block that is not JSON naming a known function stays in the text. `tool_choice: required`
or a named function constrains decoding to one well-formed call with the grammar engine of
`response_format`, so the arguments always fit the function's `parameters`.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from r1tune.data.records import Message
from r1tune.models.decoding import longest_suffix_prefix
from r1tune.serve.protocol import (
    ApiError,
    ChatCompletionRequest,
    ChatMessageIn,
    FunctionSpec,
    NamedToolChoice,
)

TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
TOOL_FORMATS = frozenset({"chatml", "deepseek-r1"})
_BLOCK = re.compile(re.escape(TOOL_CALL_OPEN) + r"\s*(.*?)\s*" + re.escape(TOOL_CALL_CLOSE), re.DOTALL)


def offered_functions(body: ChatCompletionRequest, format_name: str) -> list[FunctionSpec]:
    """The functions the model may call in this request ([] for none); 400 where the format has no tools."""
    if not body.tools or body.tool_choice == "none":
        return []
    if format_name not in TOOL_FORMATS:
        raise ApiError(400, f"this model's chat format ({format_name}) has no tool-call convention; tools work "
                       f"with {', '.join(sorted(TOOL_FORMATS))} models", param="tools", code="unsupported_parameter")
    functions = [t.function for t in body.tools]
    if isinstance(body.tool_choice, NamedToolChoice):
        return [f for f in functions if f.name == body.tool_choice.function.name]
    return functions


def conversation(body: ChatCompletionRequest, functions: list[FunctionSpec]) -> list[Message]:
    """The request's messages in the roles every chat format has, with tool turns written out."""
    messages = [Message(*_role_and_text(m, i)) for i, m in enumerate(body.messages)]  # type: ignore[misc]
    if not functions:
        return messages
    prompt = tools_prompt(functions, body.parallel_tool_calls)
    if messages and messages[0].role == "system":
        return [Message("system", messages[0].content + "\n\n" + prompt), *messages[1:]]
    return [Message("system", prompt), *messages]


def _role_and_text(m: ChatMessageIn, index: int) -> tuple[str, str]:
    if m.role == "tool":
        return "user", f"<tool_response>\n{m.text}\n</tool_response>"
    role = "system" if m.role == "developer" else m.role
    if not m.tool_calls:
        return role, m.text
    blocks = []
    for j, call in enumerate(m.tool_calls):
        try:
            arguments = json.loads(call.function.arguments)
        except json.JSONDecodeError as err:
            raise ApiError(400, f"tool call arguments are not JSON ({err})", code="invalid_value",
                           param=f"messages.{index}.tool_calls.{j}.function.arguments") from None
        call_json = json.dumps({"name": call.function.name, "arguments": arguments}, ensure_ascii=False)
        blocks.append(f"{TOOL_CALL_OPEN}\n{call_json}\n{TOOL_CALL_CLOSE}")
    return role, "\n".join(([m.text] if m.text else []) + blocks)


def tools_prompt(functions: list[FunctionSpec], parallel: bool) -> str:
    signatures = "\n".join(json.dumps({"type": "function", "function": f.model_dump(exclude_none=True)},
                                      ensure_ascii=False) for f in functions)
    how_many = "one block per call" if parallel else "at most one call per answer"
    return ("# Tools\n\nYou may call functions to help answer. Their signatures, in JSON, between <tools> and "
            f"</tools>:\n<tools>\n{signatures}\n</tools>\n\nTo call a function, answer with {how_many}:\n"
            f'{TOOL_CALL_OPEN}\n{{"name": <function name>, "arguments": <arguments as a JSON object>}}\n'
            f"{TOOL_CALL_CLOSE}")


def parse_tool_calls(text: str, functions: list[FunctionSpec]) -> tuple[str, list[dict[str, Any]]]:
    """(the text outside valid call blocks, unstripped, and OpenAI tool_calls). A block that is not a JSON
    object naming an offered function is left in the text, so nothing the model wrote is lost."""
    names = {f.name for f in functions}
    calls: list[dict[str, Any]] = []
    kept: list[str] = []
    last = 0
    for match in _BLOCK.finditer(text):
        call = _call(match.group(1), names)
        if call is None:
            continue
        kept.append(text[last:match.start()])
        last = match.end()
        calls.append(call)
    kept.append(text[last:])
    return "".join(kept), calls


def _call(body: str, names: set[str]) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("name") not in names:
        return None
    arguments = data.get("arguments", {})
    if isinstance(arguments, str):  # some models write the arguments as a JSON string already
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    if not isinstance(arguments, dict):
        return None
    return {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": data["name"], "arguments": json.dumps(arguments, ensure_ascii=False)}}


class ToolCallStream:
    """Streams answer text until a `<tool_call>` may begin, then holds the rest; `finish` parses it. Text
    before the first block goes out as it comes, so plain answers stream exactly as without tools."""

    def __init__(self, functions: list[FunctionSpec]) -> None:
        self.functions = functions
        self._held = ""
        self._holding = False

    def feed(self, text: str) -> str:
        if self._holding:
            self._held += text
            return ""
        text = self._held + text
        at = text.find(TOOL_CALL_OPEN)
        if at >= 0:
            self._holding, self._held = True, text[at:]
            return text[:at]
        keep = longest_suffix_prefix(text, [TOOL_CALL_OPEN])
        self._held = text[len(text) - keep:] if keep else ""
        return text[: len(text) - keep]

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        """(text still to send, tool calls)."""
        held, self._held = self._held, ""
        return parse_tool_calls(held, self.functions) if self._holding else (held, [])


def call_schema(function: FunctionSpec) -> dict[str, Any]:
    """The JSON Schema of one call block's body for `function`."""
    return {"type": "object", "properties": {"name": {"const": function.name}, "arguments": function.parameters},
            "required": ["name", "arguments"], "additionalProperties": False}
