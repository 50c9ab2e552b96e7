"""Record shapes: how one row of a file becomes one or more `Record`s.

Each converter takes a row (dict) and its location and returns records, or raises `DataError` with a
message that names the location and the field (the reader quarantines it). Field names follow
LLaMA-Factory's `columns`/`tags` vocabulary so its `dataset_info.json` entries work unchanged.

Tool use (OpenAI `tool_calls`, ShareGPT `function_call`/`observation`, typed content parts) is written into
plain turns the chat renderers understand: calls as `<tool_call>{json}</tool_call>` in the assistant's
content, results as a user turn wrapped in `<tool_response>`, tool schemas appended to the system prompt.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from r1tune.data.records import Message, Record, messages_from_list
from r1tune.errors import DataError

SHAPES = ("messages", "alpaca", "sharegpt", "preference", "dialogue", "label_studio", "table", "document")
META_KEYS = ("label", "category", "lang", "intent", "meta")
ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "history": "history",
                  "system": "system", "chosen": "chosen", "rejected": "rejected", "kto_tag": "kto_tag"}
SHAREGPT_COLUMNS = {"messages": "conversations", "system": "system", "tools": "tools", "chosen": "chosen",
                    "rejected": "rejected", "kto_tag": "kto_tag"}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "system_tag": "system", "observation_tag": "observation", "function_tag": "function_call"}
DIALOGUE_COLUMNS = {"context": "context", "response": "response", "followup": "followup"}
ROLE_ALIASES = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant", "developer": "system",
                "observation": "tool", "function": "tool", "ipython": "tool", "function_call": "assistant"}


@dataclass
class ShapeContext:
    """What a converter needs besides the row: the source's mappings, system prompt and templates."""

    columns: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    system: str | None = None
    label_column: str | None = None
    target_column: str | None = None
    prompt: Callable[[dict[str, Any]], str] | None = None  # rendered prompt_template
    min_agreement: float | None = None  # Label Studio: quarantine tasks whose annotators agree less

    def column(self, role: str, defaults: dict[str, str]) -> str:
        return self.columns.get(role, defaults.get(role, role))


def detect_shape(row: Any) -> str | None:
    """The shape a row's keys suggest, or None."""
    if not isinstance(row, dict):
        return None
    keys = set(row)
    if "data" in keys and keys & {"annotations", "predictions", "completions"}:
        return "label_studio"
    if {"chosen", "rejected"} <= keys:
        return "preference"
    if "conversations" in keys:
        return "sharegpt"
    if isinstance(row.get("messages"), list):
        first = row["messages"][0] if row["messages"] else {}
        return "sharegpt" if isinstance(first, dict) and "from" in first else "messages"
    if {"instruction", "output"} <= keys:
        return "alpaca"
    if {"context", "response"} <= keys:
        return "dialogue"
    if any(isinstance(row.get(k), str) for k in ("text", "content")) and len(keys) <= 4:
        return "document"
    return None


def to_records(shape: str, row: Any, where: str, ctx: ShapeContext) -> list[Record]:
    """Convert one row; raises DataError (naming `where`) when the row does not fit the shape."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    converter = _CONVERTERS[shape]
    records = converter(row, where, ctx)
    meta = {k: row[k] for k in META_KEYS if k in row and row[k] not in (None, "")}
    if isinstance(meta.get("meta"), dict):  # r1tune's own record format: {"messages", "meta": {...}}
        meta = {**meta.pop("meta"), **meta}
    for record in records:
        if ctx.system and record.messages[0].role != "system":
            record.messages.insert(0, Message("system", ctx.system))
        record.meta = {**meta, **record.meta}
        if ctx.label_column:
            record.meta["label"] = _label(row, record, where, ctx.label_column)
        record.id = record.content_hash()[:16]
    return records


def _label(row: dict, record: Record, where: str, column: str) -> Any:
    """The stratification label: a field of the row (`a.b` looks into nested objects) or of the record's meta."""
    value = record.meta.get(column, _lookup(row, column))
    if value is None and isinstance(row.get("data"), dict):
        value = _lookup(row["data"], column)
    if value is None or value == "":
        raise DataError(f"{where}: label_column {column!r} is missing or empty")
    return value if isinstance(value, str | int | float | bool) else json.dumps(value, ensure_ascii=False)


def _lookup(row: dict, key: str) -> Any:
    """`a.b` looks into nested objects (Label Studio keeps fields under `data`)."""
    value: Any = row
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return row.get(key)
        value = value[part]
    return value


def _text(value: Any, where: str, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise DataError(f"{where}: field `{name}` is missing or not text (got {type(value).__name__})")


def _finish(messages: list[Message], where: str) -> list[Message]:
    """Validate through the shared rules (ends with a non-empty answer, has a user turn, known roles)."""
    return messages_from_list([m.to_dict() for m in messages], where)


# ---------------------------------------------------------------------------------------------------------
# messages (OpenAI) and sharegpt


def _content_text(content: Any, where: str, i: int) -> tuple[str, str | None]:
    """(text, reasoning) of a message content: a string, or a list of typed parts."""
    if content is None:
        return "", None
    if isinstance(content, str):
        return content, None
    if not isinstance(content, list):
        raise DataError(f"{where}: messages[{i}].content must be a string or a list of parts")
    texts: list[str] = []
    reasoning: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            raise DataError(f"{where}: messages[{i}].content has a part that is not an object")
        kind = part.get("type", "text")
        value = part.get("value", part.get("text", part.get(kind)))
        if kind in ("reasoning", "thinking"):
            reasoning.append(_text(value, where, f"messages[{i}].content.{kind}"))
        elif kind in ("tool_call", "function_call"):
            texts.append(_tool_call_text(value))
        elif kind == "text":
            texts.append(_text(value, where, f"messages[{i}].content.text"))
        else:
            raise DataError(f"{where}: messages[{i}] has a {kind!r} part; only text is supported",
                            hint="images, audio and video are not used for text fine-tuning")
    return "".join(texts), ("\n\n".join(reasoning) if reasoning else None)


def _tool_call_text(value: Any) -> str:
    payload = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"<tool_call>\n{payload}\n</tool_call>"


def _tool_response(text: str) -> str:
    return f"<tool_response>\n{text}\n</tool_response>"


def _tools_system(tools: Any) -> str:
    text = tools if isinstance(tools, str) else json.dumps(tools, ensure_ascii=False)
    return f"# Tools\n<tools>\n{text}\n</tools>"


def _add_tools(messages: list[Message], tools: Any) -> list[Message]:
    if not tools or tools in ("[]", "{}"):
        return messages
    block = _tools_system(tools)
    if messages and messages[0].role == "system":
        return [Message("system", f"{messages[0].content}\n\n{block}".strip())] + messages[1:]
    return [Message("system", block)] + messages


def _normalise_turns(raw: Any, where: str, role_key: str, content_key: str, role_map: dict[str, str]
                     ) -> list[Message]:
    """Messages from a list of turn objects in either vocabulary; tool turns become plain turns."""
    if not isinstance(raw, list) or not raw:
        raise DataError(f"{where}: `messages` must be a non-empty list")
    out: list[Message] = []
    for i, turn in enumerate(raw):
        if not isinstance(turn, dict):
            raise DataError(f"{where}: messages[{i}] must be an object with {role_key} and {content_key}")
        raw_role = turn.get(role_key)
        role = role_map.get(raw_role, ROLE_ALIASES.get(raw_role, raw_role))
        text, parts_reasoning = _content_text(turn.get(content_key), where, i)
        reasoning = turn.get("reasoning", turn.get("reasoning_content", parts_reasoning))
        if role == "assistant" and turn.get("tool_calls"):
            calls = [c.get("function", c) if isinstance(c, dict) else c for c in turn["tool_calls"]]
            text = (text + "\n" if text else "") + "\n".join(_tool_call_text(c) for c in calls)
        elif raw_role == role_map.get("__function__", "function_call"):
            text = _tool_call_text(text)
        if role == "tool":
            role, text = "user", _tool_response(text)
        if role not in ("system", "user", "assistant"):
            raise DataError(f"{where}: messages[{i}].{role_key} is {raw_role!r}; "
                            "allowed: system, user, assistant, tool (or human, gpt, observation, function_call)")
        if reasoning is not None and not isinstance(reasoning, str):
            raise DataError(f"{where}: messages[{i}].reasoning must be a string")
        out.append(Message(role, text, reasoning))
    return out


def _messages_shape(row: dict, where: str, ctx: ShapeContext) -> list[Record]:
    raw = row.get(ctx.columns.get("messages", "messages"))
    if raw is not None and not isinstance(raw, list):
        raise DataError(f"{where}: `messages` must be a non-empty list")
    messages = _normalise_turns(raw, where, "role", "content", {})
    messages = _add_tools(messages, row.get(ctx.columns.get("tools", "tools")))
    return [Record(messages=_finish(messages, where), source=where)]


def _sharegpt_role_map(ctx: ShapeContext) -> tuple[str, str, dict[str, str]]:
    tags = {**SHAREGPT_TAGS, **ctx.tags}
    role_map = {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant", tags["system_tag"]: "system",
                tags["observation_tag"]: "tool", tags["function_tag"]: "assistant",
                "__function__": tags["function_tag"]}
    return tags["role_tag"], tags["content_tag"], role_map


def _sharegpt_messages(row: dict, where: str, ctx: ShapeContext) -> list[Message]:
    key = ctx.column("messages", SHAREGPT_COLUMNS)
    if key not in row:
        raise DataError(f"{where}: field `{key}` (the conversation) is missing")
    role_key, content_key, role_map = _sharegpt_role_map(ctx)
    messages = _normalise_turns(row[key], where, role_key, content_key, role_map)
    system = row.get(ctx.column("system", SHAREGPT_COLUMNS))
    if isinstance(system, str) and system.strip() and messages[0].role != "system":
        messages.insert(0, Message("system", system))
    return _add_tools(messages, row.get(ctx.column("tools", SHAREGPT_COLUMNS)))


def _sharegpt_shape(row: dict, where: str, ctx: ShapeContext) -> list[Record]:
    record = Record(messages=_finish(_sharegpt_messages(row, where, ctx), where), source=where)
    _kto(row, record, ctx, SHAREGPT_COLUMNS)
    return [record]


def _kto(row: dict, record: Record, ctx: ShapeContext, defaults: dict[str, str]) -> None:
    tag = row.get(ctx.column("kto_tag", defaults))
    if isinstance(tag, bool):
        record.meta["kto_label"] = tag


# ---------------------------------------------------------------------------------------------------------
# alpaca


def _alpaca_prompt_messages(row: dict, where: str, ctx: ShapeContext) -> list[Message]:
    prompt_key = ctx.column("prompt", ALPACA_COLUMNS)
    prompt = _text(row.get(prompt_key), where, prompt_key)
    query = row.get(ctx.column("query", ALPACA_COLUMNS))
    if isinstance(query, str) and query.strip():
        prompt = f"{prompt}\n\n{query}"
    messages: list[Message] = []
    system = row.get(ctx.column("system", ALPACA_COLUMNS))
    if isinstance(system, str) and system.strip():
        messages.append(Message("system", system))
    history = row.get(ctx.column("history", ALPACA_COLUMNS)) or []
    if not isinstance(history, list):
        raise DataError(f"{where}: `history` must be a list of [prompt, answer] pairs")
    for i, turn in enumerate(history):
        if not (isinstance(turn, list | tuple) and len(turn) == 2):
            raise DataError(f"{where}: history[{i}] must be a [prompt, answer] pair")
        messages += [Message("user", str(turn[0])), Message("assistant", str(turn[1]))]
    return messages + [Message("user", prompt)]


def _alpaca_shape(row: dict, where: str, ctx: ShapeContext) -> list[Record]:
    response_key = ctx.column("response", ALPACA_COLUMNS)
    answer = _text(row.get(response_key), where, response_key)
    messages = _alpaca_prompt_messages(row, where, ctx) + [Message("assistant", answer)]
    record = Record(messages=_finish(messages, where), source=where)
    _kto(row, record, ctx, ALPACA_COLUMNS)
    return [record]


# ---------------------------------------------------------------------------------------------------------
# preference pairs


def _answer_text(value: Any, where: str, name: str) -> str:
    """A chosen/rejected answer: text, a turn object, or a conversation ending in the answer."""
    if isinstance(value, list) and value:
        value = value[-1]
    if isinstance(value, dict):
        for key in ("value", "content", "text"):
            if key in value:
                text, _ = _content_text(value[key], where, 0)
                return text
    return _text(value, where, name)


def _preference_prompt(row: dict, where: str, ctx: ShapeContext) -> list[Message]:
    if ctx.column("messages", SHAREGPT_COLUMNS) in row and "instruction" not in row:
        messages = _sharegpt_messages(row, where, ctx)
    elif ctx.column("prompt", ALPACA_COLUMNS) in row:
        messages = _alpaca_prompt_messages(row, where, ctx)
    elif isinstance(row.get("prompt"), list):
        messages = _normalise_turns(row["prompt"], where, "role", "content", {})
    elif isinstance(row.get("prompt"), str):
        messages = [Message("user", row["prompt"])]
    elif isinstance(row.get("messages"), list):
        messages = _normalise_turns(row["messages"], where, "role", "content", {})
    elif isinstance(row.get("chosen"), list) and len(row["chosen"]) > 1:  # TRL implicit prompt
        messages = _normalise_turns(row["chosen"][:-1], where, "role", "content", {})
    else:
        raise DataError(f"{where}: a preference pair needs a prompt (`prompt`, `instruction`, `conversations`)")
    if messages and messages[-1].role == "assistant":
        raise DataError(f"{where}: the prompt of a preference pair must end with a user turn")
    return messages


def _preference_shape(row: dict, where: str, ctx: ShapeContext) -> list[Record]:
    chosen_key, rejected_key = ctx.column("chosen", ALPACA_COLUMNS), ctx.column("rejected", ALPACA_COLUMNS)
    for key in (chosen_key, rejected_key):
        if key not in row:
            raise DataError(f"{where}: preference field `{key}` is missing")
    chosen = _answer_text(row[chosen_key], where, chosen_key)
    rejected = _answer_text(row[rejected_key], where, rejected_key)
    if not rejected.strip():
        raise DataError(f"{where}: the rejected answer is empty")
    messages = _preference_prompt(row, where, ctx) + [Message("assistant", chosen)]
    return [Record(messages=_finish(messages, where), source=where, meta={"rejected": rejected})]


# ---------------------------------------------------------------------------------------------------------
# dialogue triples


def _dialogue_shape(row: dict, where: str, ctx: ShapeContext) -> list[Record]:
    """(context, response, followup) are three consecutive utterances: two (utterance → reply) turns.

    The first record answers the context with the response; the second answers the response with the
    followup. `context` may also be a list of earlier utterances: they stay as history wherever the roles
    alternate back to a user turn (history never starts with an assistant turn).
    """
    keys = {role: ctx.column(role, DIALOGUE_COLUMNS) for role in DIALOGUE_COLUMNS}
    context = row.get(keys["context"])
    utterances = [str(u) for u in context] if isinstance(context, list) else [_text(context, where, keys["context"])]
    response = _text(row.get(keys["response"]), where, keys["response"])
    records = [Record(messages=_finish(_alternate(utterances + [response]), where), source=where)]
    followup = row.get(keys["followup"])
    if isinstance(followup, str) and followup.strip():
        messages = _finish(_alternate(utterances + [response, followup]), where)
        records.append(Record(messages=messages, source=f"{where}#2", meta={"turn": 2}))
    return records


def _alternate(utterances: list[str]) -> list[Message]:
    """Utterances of two speakers, the last one being the assistant's."""
    roles = ["assistant" if (len(utterances) - 1 - i) % 2 == 0 else "user" for i in range(len(utterances))]
    messages = [Message(role, text) for role, text in zip(roles, utterances, strict=True)]
    if messages[0].role == "assistant":  # the history starts with the assistant: make that a user turn
        messages = messages[1:]
    return messages


# ---------------------------------------------------------------------------------------------------------
# Label Studio exports


def _label_studio_shape(row: dict, where: str, ctx: ShapeContext) -> list[Record]:
    """A task: `data` gives the prompt (template or its single text field), the annotations the answer and
    meta; every annotator's work is kept and adjudicated (see `data/label_studio.py`)."""
    from r1tune.data.label_studio import task_record

    data = row.get("data")
    if not isinstance(data, dict):
        raise DataError(f"{where}: Label Studio task without a `data` object")
    prompt = ctx.prompt(data) if ctx.prompt else _single_text(data, where)
    record = task_record(row, where, ctx.target_column, prompt, ctx.min_agreement)
    record.messages = _finish(record.messages, where)
    if isinstance(data.get("meta"), dict):  # a task r1tune exported: its record's meta comes back
        record.meta = {**data["meta"], **record.meta}
    return [record]


def _single_text(data: dict, where: str) -> str:
    texts = [v for v in data.values() if isinstance(v, str) and v.strip()]
    if len(texts) != 1:
        raise DataError(f"{where}: task data has {len(texts)} text fields {sorted(data)}",
                        hint="set prompt_template to say how they form the prompt, e.g. '{{text}}'")
    return texts[0]


# ---------------------------------------------------------------------------------------------------------
# tables


def _table_shape(row: dict, where: str, ctx: ShapeContext) -> list[Record]:
    target = ctx.target_column or ""
    if target not in row:
        raise DataError(f"{where}: column {target!r} is missing")
    answer = str(row[target] if row[target] is not None else "").strip()
    if not answer:
        raise DataError(f"{where}: empty answer in column {target!r}")
    assert ctx.prompt is not None
    prompt = ctx.prompt(row).strip()
    if not prompt:
        raise DataError(f"{where}: prompt_template renders to an empty prompt for this row")
    return [Record(messages=[Message("user", prompt), Message("assistant", answer)], source=where)]


_CONVERTERS: dict[str, Callable[[dict, str, ShapeContext], list[Record]]] = {
    "messages": _messages_shape,
    "alpaca": _alpaca_shape,
    "sharegpt": _sharegpt_shape,
    "preference": _preference_shape,
    "dialogue": _dialogue_shape,
    "label_studio": _label_studio_shape,
    "table": _table_shape,
}  # "document" rows are chunked by the reader (they need the tokenizer), not converted here
