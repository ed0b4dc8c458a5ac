"""deploy/ without a cluster or a Docker engine: the Dockerfiles say what they must, the Helm values use only
keys Dagster's chart accepts, and the GPU assets' `dagster-k8s/config` tag becomes a GPU pod on a GPU node
when dagster-k8s builds the step's Kubernetes Job.

`helm` is not installable here (no Debian or PyPI package), so the Helm values are checked against the keys
of the chart's schema (dagster/dagster 1.13, `helm/dagster/schema` in the Dagster repository), written out
below for the sections these values use; the chart's pydantic models forbid unknown keys in them too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"

# Keys of Dagster's Helm chart (values.schema.json of dagster/dagster 1.13) for the sections used here.
CHART_TOP_LEVEL = {
    "dagsterWebserver", "dagster-user-deployments", "postgresql", "generatePostgresqlPasswordSecret",
    "generateCeleryConfigSecret", "rabbitmq", "redis", "flower", "ingress", "imagePullSecrets",
    "computeLogManager", "scheduler", "runLauncher", "pythonLogs", "dagsterDaemon", "busybox", "migrate",
    "telemetry", "serviceAccount", "global", "retention", "concurrency", "additionalInstanceConfig",
    "nameOverride", "fullnameOverride", "rbacEnabled", "extraManifests",
}
USER_DEPLOYMENT_KEYS = {
    "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns",
    "deploymentNamespace", "port", "env", "envConfigMaps", "envSecrets", "annotations", "nodeSelector",
    "affinity", "tolerations", "podSecurityContext", "securityContext", "resources", "livenessProbe",
    "readinessProbe", "startupProbe", "labels", "volumeMounts", "volumes", "schedulerName", "initContainers",
    "sidecarContainers", "deploymentStrategy", "replicaCount", "service",
}
K8S_RUN_LAUNCHER_KEYS = {
    "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile", "envConfigMaps",
    "envSecrets", "envVars", "volumeMounts", "volumes", "labels", "failPodOnRunFailure", "resources",
    "schedulerName", "securityContext", "runK8sConfig",
}
RUN_K8S_CONFIG_KEYS = {"containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata"}
DAEMON_KEYS = {
    "enabled", "image", "runCoordinator", "heartbeatTolerance", "env", "envConfigMaps", "envSecrets",
    "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations", "podSecurityContext",
    "securityContext", "resources", "livenessProbe", "readinessProbe", "startupProbe", "annotations",
    "runMonitoring", "runRetries", "sensors", "schedules", "schedulerName", "volumeMounts", "volumes",
}
QUEUED_RUN_COORDINATOR_KEYS = {
    "maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds", "dequeueNumWorkers", "dequeueUseThreads",
}


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with `\\` continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def _dagster_version() -> tuple[int, int, int]:
    pin = re.search(r"^dagster==(\d+)\.(\d+)\.(\d+)$", (REPO / "constraints.txt").read_text(), re.M)
    assert pin, "constraints.txt pins dagster"
    return tuple(int(x) for x in pin.groups())


@pytest.mark.parametrize("variant", ["cpu", "cuda"])
def test_dockerfile_builds_the_tested_environment(variant):
    steps = _instructions(DEPLOY / f"Dockerfile.{variant}")
    known = {"FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "EXPOSE", "CMD", "ENTRYPOINT", "USER", "LABEL"}
    assert {word for word, _ in steps} <= known
    assert steps[0][0] == "FROM" and "python:3.11" in steps[0][1]
    runs = [args for word, args in steps if word == "RUN"]
    torch = [r for r in runs if "torch==2.13.0" in r]
    assert len(torch) == 1, "torch is installed once, pinned to the tested 2.13.0"
    cpu_index = "download.pytorch.org/whl/cpu" in torch[0]
    assert cpu_index == (variant == "cpu"), "the CPU image takes the CPU wheel, the CUDA image PyPI's CUDA build"
    install = next(r for r in runs if "-c constraints.txt" in r)
    major, minor, patch = _dagster_version()  # dagster 1.N.p goes with its libraries 0.(N+16).p
    assert f"dagster-k8s==0.{minor + 16}.{patch}" in install and f"dagster-postgres==0.{minor + 16}.{patch}" in install
    copied = " ".join(args for word, args in steps if word == "COPY")
    for path in ("pyproject.toml", "constraints.txt", "wavefin_core", "wavefin_assets"):
        assert path in copied
    cmd = next(json.loads(args) for word, args in steps if word == "CMD")
    assert cmd[:3] == ["dagster", "code-server", "start"] and "wavefin_assets.definitions" in cmd


def _values() -> dict:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


def test_helm_values_use_only_keys_of_dagsters_chart():
    values = _values()
    assert set(values) <= CHART_TOP_LEVEL
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert values["dagster-user-deployments"]["enabled"] is True
    assert set(deployment) <= USER_DEPLOYMENT_KEYS
    assert {"repository", "tag", "pullPolicy"} >= set(deployment["image"]) >= {"repository", "pullPolicy"}
    assert deployment["image"]["pullPolicy"] in {"Always", "IfNotPresent", "Never"}
    assert deployment["codeServerArgs"] == ["-m", "wavefin_assets.definitions"]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher" and set(launcher["config"]) == {"k8sRunLauncher"}
    k8s = launcher["config"]["k8sRunLauncher"]
    assert set(k8s) <= K8S_RUN_LAUNCHER_KEYS and set(k8s["runK8sConfig"]) <= RUN_K8S_CONFIG_KEYS
    daemon = values["dagsterDaemon"]
    assert set(daemon) <= DAEMON_KEYS
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert set(daemon["runCoordinator"]["config"]["queuedRunCoordinator"]) <= QUEUED_RUN_COORDINATOR_KEYS


def test_helm_values_point_storage_tracking_and_executor_at_the_cluster():
    (deployment,) = _values()["dagster-user-deployments"]["deployments"]
    env = {item["name"]: item.get("value") for item in deployment["env"]}
    assert env["MLFLOW_TRACKING_URI"].startswith("http")  # a tracking server, not a local sqlite file
    assert "://" in env["WAVEFIN_STORAGE"] and not env["WAVEFIN_STORAGE"].startswith("file")
    assert env["WAVEFIN_EXECUTOR"] == "k8s"
    assert all(set(s) == {"name"} for s in deployment["envSecrets"])


def test_deploy_readme_names_every_file_and_the_switches():
    text = (DEPLOY / "README.md").read_text()
    for needle in ("Dockerfile.cpu", "Dockerfile.cuda", "helm/values.yaml", "MLFLOW_TRACKING_URI",
                   "WAVEFIN_STORAGE", "WAVEFIN_EXECUTOR", "k8s_job_executor", "K8sRunLauncher", "nvidia.com/gpu"):
        assert needle in text, needle


def test_gpu_steps_become_gpu_pods_on_gpu_nodes():
    """dagster-k8s's own code turns each asset's op tags into the step's Kubernetes Job, as k8s_job_executor
    does for a step pod: the GPU assets get one `nvidia.com/gpu`, the GPU node selector and toleration; the
    data assets get none of them."""
    job_module = pytest.importorskip("dagster_k8s.job", reason="dagster-k8s (the deploy images' extra) missing")
    from wavefin_assets.definitions import defs

    def step_pod(asset: str):
        tags = defs.resolve_assets_def(asset).op.tags
        config = job_module.get_user_defined_k8s_config(tags)
        job = job_module.construct_dagster_k8s_job(
            job_module.DagsterK8sJobConfig(job_image="wavefin:cuda", dagster_home="/opt/dagster/dagster_home"),
            ["dagster", "api", "execute_step"], f"wavefin-{asset.replace('_', '-')}", config,
        )
        return job.spec.template.spec

    for asset in ("diffusion_model", "synthetic_series", "forecasters"):
        spec = step_pod(asset)
        assert spec.containers[0].resources.limits == {"nvidia.com/gpu": "1"}, asset
        assert spec.node_selector == {"nvidia.com/gpu.present": "true"}, asset
        assert [(t.key, t.operator, t.effect) for t in spec.tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]
    data = step_pod("raw_prices")
    assert not data.node_selector and not data.tolerations
    assert not (data.containers[0].resources and data.containers[0].resources.limits)
