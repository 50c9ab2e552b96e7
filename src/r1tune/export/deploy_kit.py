"""`r1tune deploy kit RUN --out DIR`: what it takes to run a run's model as a service.

- `Dockerfile.cpu`: r1tune's own server (builtin engine), the run's adapter or weights inside the image.
- `Dockerfile.cuda`: vLLM's OpenAI server over the folder `r1tune export --format vllm` writes.
- `compose.yaml`: the CPU server with PostgreSQL as the completion and feedback store.
- `k8s/`: Deployment (readiness and liveness on `/health`), Service, PersistentVolumeClaim (the store when
  it is SQLite), Secret (API keys), and a HorizontalPodAutoscaler on the queue depth that `/metrics`
  exports (`r1tune_waiting_requests`), which reaches the HPA through prometheus-adapter (its rule is
  `k8s/prometheus-adapter-rules.yaml`). Tests validate every manifest against the Kubernetes schemas.

Only the run's trained result, config and run.json go into the image: never its data.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from r1tune.errors import R1TuneError
from r1tune.rundir import RunDir

PORT = 8000
RUN_IN_IMAGE = "/srv/run"
VLLM_IMAGE_TAG = "v0.34.0"  # the newest vLLM release on PyPI on 2026-12-03; it takes `--max-model-len auto`
QUEUE_METRIC = "r1tune_waiting_requests"


def write_kit(run: RunDir, out: Path, name: str, image: str) -> list[Path]:
    """Write the kit into `out` (created); returns the files written."""
    if not (run.whole_model if run.trains_whole_model else run.adapter).is_dir():
        raise R1TuneError(f"{run.path} has no trained result to deploy", hint="run `r1tune train` first")
    if out.exists() and any(out.iterdir()):
        raise R1TuneError(f"{out} is not empty", hint="choose a new --out folder")
    _copy_run(run, out / "run")
    files = {"Dockerfile.cpu": _dockerfile_cpu(), "Dockerfile.cuda": _dockerfile_cuda(name),
             "compose.yaml": _yaml(_compose(image)), "build.sh": _build_script(image),
             **{f"k8s/{kind}.yaml": _yaml(doc) for kind, doc in manifests(name, image).items()}}
    for relative, text in files.items():
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_text(text, encoding="utf-8")
    (out / "build.sh").chmod(0o755)
    return [out / relative for relative in files]


def _copy_run(run: RunDir, dest: Path) -> None:
    """The run as `r1tune serve` reads it, minus data, checkpoints and reports."""
    dest.mkdir(parents=True)
    for name in ("config.yaml", "run.json"):
        shutil.copy2(run.path / name, dest / name)
    result = run.whole_model if run.trains_whole_model else run.adapter
    shutil.copytree(result, dest / result.relative_to(run.path))


def _yaml(doc: Any) -> str:
    import yaml

    docs = doc if isinstance(doc, list) else [doc]
    return "---\n".join(yaml.safe_dump(d, sort_keys=False, allow_unicode=True) for d in docs)


def _dockerfile_cpu() -> str:
    return f"""# r1tune's server on CPU. Build with ./build.sh (it puts r1tune's wheel in wheels/).
FROM python:3.11-slim
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY wheels/ /tmp/wheels/
RUN pip install --no-cache-dir /tmp/wheels/*.whl 'psycopg[binary]>=3.1,<4' && rm -rf /tmp/wheels
COPY run/ {RUN_IN_IMAGE}/
RUN useradd --create-home r1tune && mkdir -p /data && chown r1tune /data
USER r1tune
EXPOSE {PORT}
# API keys come from R1TUNE_API_KEYS (a Secret); the store from serve.database_url, else SQLite under /data.
CMD ["r1tune", "serve", "{RUN_IN_IMAGE}", "--host", "0.0.0.0", "--port", "{PORT}", "project.runs_dir=/data"]
"""


def _dockerfile_cuda(name: str) -> str:
    return f"""# vLLM on CUDA over `r1tune export RUN --format vllm --out vllm` (put that folder beside this file).
# A pinned release, so a rebuild gets the same vLLM; `--max-model-len auto` (vLLM 0.14+) is the longest
# context whose KV cache fits the GPU: an R1 distill's 128k window may not, and vLLM refuses to start then.
FROM vllm/vllm-openai:{VLLM_IMAGE_TAG}
COPY vllm/ /srv/model/
WORKDIR /srv/model
EXPOSE {PORT}
ENTRYPOINT ["sh", "./vllm-serve.sh", "--host", "0.0.0.0", "--port", "{PORT}", "--served-model-name", "{name}", \
            "--max-model-len", "auto"]
"""


def _build_script(image: str) -> str:
    return f"""#!/bin/sh
# Build the CPU image: r1tune's wheel from its source tree (R1TUNE_SOURCE), then the image.
set -eu
cd "$(dirname "$0")"
python -m pip wheel --no-deps -w wheels "${{R1TUNE_SOURCE:?set R1TUNE_SOURCE to r1tune's source folder}}"
docker build -f Dockerfile.cpu -t {image} .
"""


def _compose(image: str) -> dict[str, Any]:
    database = "postgresql+psycopg://r1tune:${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}@db:5432/r1tune"
    return {"services": {
        "r1tune": {"image": image, "build": {"context": ".", "dockerfile": "Dockerfile.cpu"},
                   "command": ["r1tune", "serve", RUN_IN_IMAGE, "--host", "0.0.0.0", "--port", str(PORT),
                               f"serve.database_url={database}"],
                   "environment": {"R1TUNE_API_KEYS": "${R1TUNE_API_KEYS:?set R1TUNE_API_KEYS}"},
                   "ports": [f"{PORT}:{PORT}"], "depends_on": {"db": {"condition": "service_healthy"}}},
        "db": {"image": "postgres:16", "environment": {"POSTGRES_USER": "r1tune", "POSTGRES_DB": "r1tune",
                                                       "POSTGRES_PASSWORD": "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"},
               "volumes": ["pgdata:/var/lib/postgresql/data"],
               "healthcheck": {"test": ["CMD", "pg_isready", "-U", "r1tune"], "interval": "5s", "retries": 10}}},
        "volumes": {"pgdata": {}}}


def manifests(name: str, image: str) -> dict[str, Any]:
    """The Kubernetes objects, by file name."""
    labels = {"app.kubernetes.io/name": name}
    probe = {"httpGet": {"path": "/health", "port": PORT}, "periodSeconds": 10}
    container = {
        "name": "r1tune", "image": image, "ports": [{"containerPort": PORT, "name": "http"}],
        "env": [{"name": "R1TUNE_API_KEYS", "valueFrom": {"secretKeyRef": {"name": f"{name}-keys", "key": "api-keys"}}}],
        "readinessProbe": {**probe, "initialDelaySeconds": 10},
        "livenessProbe": {**probe, "initialDelaySeconds": 60, "failureThreshold": 3},
        "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}},
        "volumeMounts": [{"name": "store", "mountPath": "/data"}]}
    return {
        "deployment": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
                       "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                                "template": {"metadata": {"labels": labels, "annotations": {
                                    "prometheus.io/scrape": "true", "prometheus.io/port": str(PORT)}},
                                    "spec": {"containers": [container], "volumes": [
                                        {"name": "store", "persistentVolumeClaim": {"claimName": f"{name}-store"}}]}}}},
        "service": {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
                    "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": PORT, "name": "http"}]}},
        "pvc": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": f"{name}-store"},
                # SQLite store: one writer, so scale past one replica with serve.database_url on PostgreSQL
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}},
        "secret": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{name}-keys"}, "type": "Opaque",
                   "stringData": {"api-keys": "REPLACE-with-comma-separated-keys-of-32-or-more-characters"}},
        "hpa": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                         "minReplicas": 1, "maxReplicas": 8,
                         "metrics": [{"type": "Pods", "pods": {"metric": {"name": QUEUE_METRIC},
                                                                "target": {"type": "AverageValue", "averageValue": "4"}}}]}},
        "prometheus-adapter-rules": {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "prometheus-adapter-r1tune", "namespace": "monitoring"},
                                     "data": {"config.yaml": _adapter_rule()}},
    }


def _adapter_rule() -> str:
    """prometheus-adapter's rule exposing the queue gauge as a per-pod custom metric for the HPA."""
    return (f'rules:\n- seriesQuery: \'{QUEUE_METRIC}{{namespace!="",pod!=""}}\'\n'
            '  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}\n'
            f'  name: {{matches: "{QUEUE_METRIC}", as: "{QUEUE_METRIC}"}}\n'
            f"  metricsQuery: 'avg(<<.Series>>{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'\n")
