"""The project schema: defaults, readable errors with YAML paths and lines, overrides, reference docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1tune.config import R1TuneConfig
from r1tune.configdocs import config_reference_markdown
from r1tune.configfile import load_config
from r1tune.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r1tune.yaml"
    path.write_text(text)
    return path


def test_minimal_config_gets_documented_defaults(tmp_path):
    cfg = load_config(_write(tmp_path, "data:\n  sources: [{path: d.jsonl}]\n"))
    assert cfg.model.name == "smollm2-135m-instruct"
    assert cfg.train.method == "lora" and cfg.train.lr == 2e-4
    assert cfg.data.sources[0].path == (tmp_path / "d.jsonl").resolve()  # relative to the config file
    assert cfg.project.runs_dir == (tmp_path / "runs").resolve()


def test_every_field_is_documented():
    def walk(model):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            for arg in getattr(field.annotation, "__args__", (field.annotation,)):
                if isinstance(arg, type) and hasattr(arg, "model_fields"):
                    walk(arg)
    walk(R1TuneConfig)


def test_errors_name_path_line_value_and_allowed(tmp_path):
    path = _write(tmp_path, "data:\n  sources:\n    - path: d.jsonl\n      formatt: csv\ntrain:\n  lr: fast\n"
                            "  method: magic\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert str(path) in text
    assert "data.sources.0.formatt (line 4): unknown key; allowed here: columns, dataset, " in text
    assert ", format, label_column, min_agreement, path, prompt_template, " in text
    assert "train.lr (line 6): got 'fast'" in text and "valid number" in text
    assert "train.method (line 7): got 'magic'" in text and "'lora'" in text


def test_missing_section_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="data: required field is missing"):
        load_config(_write(tmp_path, "project: {name: x}\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "data: [unclosed\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(_write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_dotted_overrides(tmp_path):
    path = _write(tmp_path, "data:\n  sources: [{path: d.jsonl}]\n")
    cfg = load_config(path, ["train.lr=1e-4", "train.epochs=3", "data.sources.0.format=alpaca", "eval.compare_base=false"])
    assert cfg.train.lr == 1e-4 and cfg.train.epochs == 3
    assert cfg.data.sources[0].format == "alpaca" and cfg.eval.compare_base is False
    with pytest.raises(ConfigError, match="train.batch_size.*greater than 0"):
        load_config(path, ["train.batch_size=0"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(path, ["train.lr"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(path, ["train.learning_rate=1"])


def test_a_bad_override_is_reported_as_coming_from_the_command_line(tmp_path):
    path = _write(tmp_path, "data:\n  sources: [{path: d.jsonl}]\ntrain:\n  lr: 0.001\n  epochs: 2\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, ["train.epochs=-1"])
    assert "train.epochs (from the command line: `train.epochs=-1`)" in err.value.message
    assert "(line " not in err.value.message  # not the file's line 5
    with pytest.raises(ConfigError) as err:  # a mistake in the file itself still points at its line
        load_config(_write(tmp_path, "data:\n  sources: [{path: d.jsonl}]\ntrain:\n  epochs: -1\n"), ["train.lr=1e-4"])
    assert "train.epochs (line 4)" in err.value.message
    with pytest.raises(ConfigError, match="command-line override 'train.lr=\\[1': the value is not valid YAML"):
        load_config(path, ["train.lr=[1"])


def test_bundled_example_config_is_valid():
    cfg = load_config(REPO / "examples" / "ecommerce" / "r1tune.yaml")
    assert all(source.path.is_file() for source in cfg.data.sources + cfg.data.test_sources)


def test_readme_config_reference_is_generated_from_the_schema():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"
    assert start in readme and end in readme
    body = readme.split(start, 1)[1].split(end, 1)[0]
    assert body == config_reference_markdown(), "README is stale: run `r1tune config docs` and paste it"
