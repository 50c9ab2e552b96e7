"""The deploy kit: every Kubernetes manifest validates against the Kubernetes schemas (offline, with
kubernetes-validate), the probes and the autoscaler point at what the server really exports, compose wires
PostgreSQL in, and the image gets the run's result and config but never its data."""

from __future__ import annotations

import json

import pytest
import yaml

from r1tune.errors import R1TuneError
from r1tune.export.deploy_kit import QUEUE_METRIC, write_kit
from r1tune.rundir import open_run

KUBERNETES = "1.33.0"


@pytest.fixture
def run_folder(tmp_path):
    run = tmp_path / "runs" / "r1"
    (run / "train" / "adapter").mkdir(parents=True)
    (run / "data").mkdir()
    (run / "config.yaml").write_text("project: {name: shop}\nmodel: {name: smollm2-135m-instruct}\n")
    (run / "run.json").write_text(json.dumps({"status": "done", "result": "adapter"}))
    (run / "train" / "adapter" / "adapter_config.json").write_text("{}")
    (run / "data" / "train.jsonl").write_text('{"messages": []}\n')
    return run


def test_manifests_validate_against_the_kubernetes_schemas(run_folder, tmp_path):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    files = write_kit(open_run(run_folder), tmp_path / "kit", "shop-bot", "registry.local/shop:1")
    manifests = [f for f in files if f.parent.name == "k8s"]
    assert {f.stem for f in manifests} >= {"deployment", "service", "pvc", "secret", "hpa"}
    for path in manifests:
        for doc in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)  # raises on any schema error


def test_probes_autoscaler_and_metric_rule_point_at_what_the_server_exports(run_folder, tmp_path):
    from r1tune.serve.metrics import ServeMetrics

    write_kit(open_run(run_folder), tmp_path / "kit", "shop-bot", "shop:1")
    k8s = tmp_path / "kit" / "k8s"
    container = yaml.safe_load((k8s / "deployment.yaml").read_text())["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health" == container["livenessProbe"]["httpGet"]["path"]
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "shop-bot-keys"
    hpa = yaml.safe_load((k8s / "hpa.yaml").read_text())
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == QUEUE_METRIC
    assert QUEUE_METRIC in (k8s / "prometheus-adapter-rules.yaml").read_text()
    body, _ = ServeMetrics(lambda: 0.0, lambda: 3.0).render()
    assert f"# TYPE {QUEUE_METRIC} gauge" in body.decode()  # the metric the autoscaler reads exists


def test_compose_uses_postgresql_and_the_image_gets_no_data(run_folder, tmp_path):
    write_kit(open_run(run_folder), tmp_path / "kit", "shop-bot", "shop:1")
    compose = yaml.safe_load((tmp_path / "kit" / "compose.yaml").read_text())
    command = " ".join(compose["services"]["r1tune"]["command"])
    assert "serve.database_url=postgresql+psycopg://r1tune:" in command and "@db:5432/r1tune" in command
    assert compose["services"]["db"]["image"].startswith("postgres:")
    copied = sorted(str(p.relative_to(tmp_path / "kit" / "run")) for p in (tmp_path / "kit" / "run").rglob("*"))
    assert copied == ["config.yaml", "run.json", "train", "train/adapter", "train/adapter/adapter_config.json"]
    assert "FROM python:3.11-slim" in (tmp_path / "kit" / "Dockerfile.cpu").read_text()
    cuda = (tmp_path / "kit" / "Dockerfile.cuda").read_text()
    assert "vllm-serve.sh" in cuda and "FROM vllm/vllm-openai:v0." in cuda and ":latest" not in cuda
    assert '"--max-model-len", "auto"]' in cuda  # the context fitted to the GPU, not the model's whole window


def test_an_untrained_run_or_a_used_folder_is_refused(run_folder, tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "file").write_text("x")
    with pytest.raises(R1TuneError, match="is not empty"):
        write_kit(open_run(run_folder), tmp_path / "used", "shop-bot", "shop:1")
    import shutil

    shutil.rmtree(run_folder / "train")
    with pytest.raises(R1TuneError, match="has no trained result to deploy"):
        write_kit(open_run(run_folder), tmp_path / "kit", "shop-bot", "shop:1")
