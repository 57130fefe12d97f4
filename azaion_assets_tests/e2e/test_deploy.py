"""The deployments: three Dagster instances (host processes, Docker, Kubernetes), the compose
stack and the image.

There is no Docker engine, GPU or cluster here, so each config is checked by the real code that
reads it: instance files against Dagster's instance schema, with their run launcher and run
coordinator constructed from them by the installed integrations; container arguments through
docker-py; Kubernetes run pods built by dagster-k8s; the compose file by docker-compose itself.
The PostgreSQL storage of the Docker instance runs a real materialisation.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
import psycopg2
import pytest
import yaml
from dagster import AssetKey, DagsterInstance, materialize
from dagster._config import process_config
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.instance.config import dagster_instance_config
from dagster._core.launcher import DefaultRunLauncher, RunLauncher
from dagster._core.run_coordinator import QueuedRunCoordinator, RunCoordinator
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.utils import parse_env_var
from dagster._serdes.config_class import ConfigurableClassData
from dagster_docker import DockerRunLauncher
from dagster_k8s import K8sRunLauncher
from dagster_k8s.job import construct_dagster_k8s_job
from dagster_postgres import DagsterPostgresStorage
from docker.models import containers as docker_containers

from azaion_assets.cli.code_server_command import wait_serving
from azaion_assets.cli.main import build_parser
from azaion_assets.defs.annotations.annotations import annotations
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.dev import hostservices
from azaion_assets.dev.localbroker import free_port
from azaion_assets.dev.synthetic import write_samples
from azaion_assets.lib.config.deployenv import DEPLOY_VARS
from azaion_assets.lib.config.envfile import render_env_example
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.training.retrain_policy import training_run_tags
from azaion_assets_tests.dated import (
    dataset,
    dataset_labels_valid,
    dataset_splits_non_empty,
)

REPO = Path(__file__).resolve().parents[2]
ROOT_INSTANCE = REPO / "dagster.yaml"
DOCKER_INSTANCE = REPO / "deploy" / "docker" / "dagster.yaml"
HELM_VALUES = REPO / "deploy" / "k8s" / "values.yaml"
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"

# Keys of the chart's K8sRunLauncherConfig and RunK8sConfig (helm/dagster/schema/schema/charts/
# dagster/subschema/run_launcher.py; both `extra="forbid"`). The chart's JSON schema is not
# available offline; a key outside these would fail `helm install`.
CHART_K8S_RUN_LAUNCHER_KEYS = {
    "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
    "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
    "failPodOnRunFailure", "resources", "schedulerName", "securityContext", "runK8sConfig",
}  # fmt: skip
CHART_RUN_K8S_CONFIG_KEYS = {
    "containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata",
}  # fmt: skip
CHART_QUEUED_COORDINATOR_KEYS = {
    "maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds", "dequeueNumWorkers",
    "dequeueUseThreads", "blockOpConcurrencyLimitedRuns",
}  # fmt: skip

GPU_LIMIT = {"key": "azaion/gpu", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
INGEST_LIMIT = {"key": "azaion/stage", "value": "ingest", "limit": 1}
RELEASE_LIMIT = {"key": "azaion/stage", "value": "release", "limit": 1}
SECRETS = {"RABBITMQ_PASSWORD", "DAGSTER_POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD"}


def _yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text("utf-8"))


def _env_example() -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in render_env_example().splitlines()
        if line and not line.startswith("#")
    )


def _filled_env() -> dict[str, str]:
    """A .env as an operator writes it: a copy of .env.example with the secrets filled in."""
    env = _env_example()
    env.update({name: f"test-{name.lower()}-value" for name in SECRETS})
    return env


# --- the Helm chart's rendering of the instance, from the chart's templates -------------------


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def render_helm_instance(values: Mapping[str, Any], kubeconfig: Path | None) -> dict[str, Any]:
    """The dagster.yaml the chart renders from ``values`` (templates/helpers/instance/
    _run-launcher.tpl, _run-coordinator.tpl, _postgresql.tpl and the daemon's run monitoring and
    retries), for release `dagster` in namespace `dagster`. With ``kubeconfig``, the launcher
    reads that file instead of the in-cluster service account (there is no cluster here).
    """
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    launcher: dict[str, Any] = {
        "load_incluster_config": k8s["loadInclusterConfig"],
        "job_namespace": k8s.get("jobNamespace") or "dagster",
        "image_pull_policy": k8s["imagePullPolicy"],
        "service_account_name": "dagster",
        "dagster_home": "/opt/dagster/dagster_home",
        "instance_config_map": "dagster-instance",
        "postgres_password_secret": "dagster-postgresql-secret",
    }
    for key in ("envConfigMaps", "envSecrets"):
        if k8s.get(key):
            launcher[_snake(key)] = [item["name"] for item in k8s[key] if "name" in item]
    for key in ("envVars", "volumeMounts", "volumes", "labels", "resources", "securityContext"):
        if k8s.get(key):
            launcher[_snake(key)] = k8s[key]
    if k8s.get("runK8sConfig"):
        launcher["run_k8s_config"] = {_snake(k): v for k, v in k8s["runK8sConfig"].items() if v}
    if kubeconfig is not None:
        launcher.update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))

    daemon = values["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    coordinator = {_snake(k): v for k, v in queued.items() if v is not None}
    pg = values["postgresql"]
    return {
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
        "storage": {
            "postgres": {
                "postgres_db": {
                    "username": pg["postgresqlUsername"],
                    "password": {"env": "DAGSTER_PG_PASSWORD"},
                    "hostname": pg["postgresqlHost"],
                    "db_name": pg["postgresqlDatabase"],
                    "port": pg["service"]["port"],
                    **({"scheme": pg["postgresqlScheme"]} if pg.get("postgresqlScheme") else {}),
                }
            }
        },
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": coordinator,
        },
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": launcher},
        "run_monitoring": {_snake(k): v for k, v in daemon["runMonitoring"].items()},
        "run_retries": {_snake(k): v for k, v in daemon["runRetries"].items()},
        **_retention(values.get("retention") or {}),
    }


def _retention(values: Mapping[str, Any]) -> dict[str, Any]:
    """templates/configmap-instance.yaml's ``retention`` block: written only when enabled."""
    if not values.get("enabled"):
        return {}
    kinds = {"sensor": "sensor", "schedule": "schedule", "autoMaterialize": "auto_materialize"}
    return {
        "retention": {
            name: {"purge_after_days": values[key]["purgeAfterDays"]}
            for key, name in kinds.items()
            if values.get(key)
        }
    }


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig for a cluster that is never contacted: building pods needs no API call."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "unused"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


# --- every instance ---------------------------------------------------------------------------

INSTANCES = ["host", "docker", "k8s"]


@pytest.fixture
def instance_file(request: pytest.FixtureRequest, tmp_path: Path, kubeconfig: Path) -> Path:
    if request.param == "host":
        return ROOT_INSTANCE
    if request.param == "docker":
        return DOCKER_INSTANCE
    path = tmp_path / "k8s" / "dagster.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(render_helm_instance(_yaml(HELM_VALUES), kubeconfig)))
    return path


def _validated(path: Path) -> dict[str, Any]:
    config, custom_class = dagster_instance_config(str(path.parent), path.name)
    assert custom_class is None
    return dict(config)


def _construct(block: Mapping[str, Any], as_type: type) -> Any:
    data = ConfigurableClassData(
        block["module"], block["class"], yaml.safe_dump(block.get("config") or {})
    )
    return data.rehydrate(as_type=as_type)


@pytest.mark.parametrize("instance_file", INSTANCES, indirect=True)
def test_instance_config_matches_dagsters_schema_and_builds_its_classes(
    instance_file: Path, monkeypatch: pytest.MonkeyPatch
):
    for key, value in _filled_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "unused")
    config = _validated(instance_file)

    coordinator = _construct(config["run_coordinator"], RunCoordinator)
    assert isinstance(coordinator, QueuedRunCoordinator)
    expected = {ROOT_INSTANCE: DefaultRunLauncher, DOCKER_INSTANCE: DockerRunLauncher}
    launcher = _construct(config["run_launcher"], RunLauncher)
    assert isinstance(launcher, expected.get(instance_file, K8sRunLauncher))
    if instance_file == ROOT_INSTANCE:
        assert "storage" not in config  # SQLite under DAGSTER_HOME
    else:
        storage = process_config(
            DagsterPostgresStorage.config_type(), config["storage"]["postgres"]
        )
        assert storage.success, storage.errors
    assert config["telemetry"] == {"enabled": False}


@pytest.mark.parametrize("instance_file", INSTANCES, indirect=True)
def test_every_instance_queues_one_run_per_gpu_one_ingest_and_retries(instance_file: Path):
    config = _validated(instance_file)
    limits = _run_limits(config)
    assert GPU_LIMIT in limits, f"{instance_file}: no azaion/gpu limit of 1 per unique value"
    assert INGEST_LIMIT in limits, f"{instance_file}: no azaion/stage=ingest limit of 1"
    assert RELEASE_LIMIT in limits, f"{instance_file}: no azaion/stage=release limit of 1"
    assert config["run_retries"]["enabled"] is True
    assert config["run_monitoring"]["enabled"] is True
    # A new annotation's run leaves the queue within a second, not Dagster's default 5 s.
    queue = config["run_coordinator"]["config"]
    assert queue["dequeue_interval_seconds"] == 1
    if instance_file in (ROOT_INSTANCE, DOCKER_INSTANCE):  # the chart has no such key
        # A code server that is briefly unreachable re-queues the run instead of failing it.
        assert queue["max_user_code_failure_retries"] >= 1


def _run_limits(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Tag limits, from ``concurrency.runs`` or (the Helm chart's form) the coordinator config."""
    runs = config.get("concurrency", {}).get("runs")
    if runs is not None:
        return runs["tag_concurrency_limits"]
    return config["run_coordinator"]["config"]["tag_concurrency_limits"]


@pytest.mark.parametrize("instance_file", ["host", "docker"], indirect=True)
def test_host_and_docker_instances_give_the_model_step_one_gpu_slot(instance_file: Path):
    pools = _validated(instance_file)["concurrency"]["pools"]
    assert pools == {"default_limit": 1, "granularity": "op"}


@pytest.mark.parametrize("instance_file", INSTANCES, indirect=True)
def test_every_instance_purges_skipped_ticks_after_a_week_and_the_rest_in_a_quarter(
    instance_file: Path, tmp_path: Path
):
    """What Dagster's daemon reads: every tick status has a limit (Dagster's default keeps a
    sensor's successful and failed ticks for ever)."""
    config = _validated(instance_file)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump({"retention": config["retention"]}))
    with DagsterInstance.from_config(str(home)) as instance:
        sensor = instance.get_tick_retention_settings(InstigatorType.SENSOR)
        schedule = instance.get_tick_retention_settings(InstigatorType.SCHEDULE)
    assert {s.value: d for s, d in sensor.items()} == {
        "STARTED": 90,
        "SKIPPED": 7,
        "SUCCESS": 90,
        "FAILURE": 90,
    }
    assert set(schedule.values()) == {90}


# --- Docker -----------------------------------------------------------------------------------


def _docker_launcher(monkeypatch: pytest.MonkeyPatch) -> DockerRunLauncher:
    for key, value in _filled_env().items():
        monkeypatch.setenv(key, value)
    return _construct(_validated(DOCKER_INSTANCE)["run_launcher"], RunLauncher)


def _container_create_args(launcher: DockerRunLauncher, run: DagsterRun) -> dict[str, Any]:
    """What DockerRunLauncher hands docker-py's containers.create for ``run``, converted the way
    docker-py converts it (unknown or malformed arguments raise here as they would there)."""
    context = launcher.get_container_context(run)
    environment = dict(parse_env_var(name) for name in context.env_vars)  # as the launcher
    kwargs = {k: v for k, v in context.container_kwargs.items() if k != "stop_timeout"}
    # containers.create's own conversion (private in docker-py, absent from its stubs).
    convert = getattr(docker_containers, "_create_container_args")  # noqa: B009
    return convert(
        {
            "image": "azaion-assets:test",
            "command": ["dagster", "api", "execute_run"],
            "detach": True,
            "environment": environment,
            "network": context.networks[0],
            "labels": {"dagster/run_id": run.run_id},
            "version": "1.44",
            **kwargs,
        }
    )


def test_docker_runs_get_the_gpus_shared_memory_the_data_tree_and_the_logs(monkeypatch):
    args = _container_create_args(_docker_launcher(monkeypatch), DagsterRun(job_name="j"))
    host = args["host_config"]
    assert host["DeviceRequests"] == [
        {"Driver": "nvidia", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}
    ]
    assert host["ShmSize"] >= 8 << 30
    assert "azaion-data:/azaion:rw" in host["Binds"]
    assert "azaion-dagster-logs:/opt/dagster/logs:rw" in host["Binds"]
    assert host["NetworkMode"] == "azaion-assets"
    compute_logs = _validated(DOCKER_INSTANCE)["compute_logs"]["config"]["base_dir"]
    assert compute_logs == "/opt/dagster/logs"
    # Terminate waits this long before SIGKILL: a training's time to checkpoint.
    launcher = _docker_launcher(monkeypatch)
    assert (
        launcher.get_container_context(DagsterRun(job_name="j")).container_kwargs["stop_timeout"]
        == 120
    )


def test_docker_runs_get_every_setting_and_the_instance_database(monkeypatch):
    """A copy of .env.example sets every variable the launcher passes on (a missing one would
    fail each launch), and the launcher passes on every setting."""
    args = _container_create_args(_docker_launcher(monkeypatch), DagsterRun(job_name="j"))
    passed = set(args["environment"])  # docker-py passes the mapping on as it is
    wanted = {name.upper() for name in Settings.model_fields} | {
        v.name for v in DEPLOY_VARS if v.name.startswith("DAGSTER_POSTGRES_")
    }
    assert wanted - passed == set(), "add these to env_vars in deploy/docker/dagster.yaml"


# --- Kubernetes -------------------------------------------------------------------------------


def test_helm_values_use_only_keys_the_chart_accepts():
    values = _yaml(HELM_VALUES)
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert set(k8s) <= CHART_K8S_RUN_LAUNCHER_KEYS, set(k8s) - CHART_K8S_RUN_LAUNCHER_KEYS
    assert set(k8s.get("runK8sConfig", {})) <= CHART_RUN_K8S_CONFIG_KEYS
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] is True and coordinator["type"] == "QueuedRunCoordinator"
    assert set(coordinator["config"]["queuedRunCoordinator"]) <= CHART_QUEUED_COORDINATOR_KEYS
    assert values["generatePostgresqlPasswordSecret"] is False  # no password in the values
    assert "postgresqlPassword" not in values["postgresql"]


def _run_pod(kubeconfig: Path, tags: dict[str, str]):
    """The pod spec K8sRunLauncher builds for a run with ``tags`` (run tags: the launcher reads
    `dagster-k8s/config` from the run, not from ops)."""
    config = render_helm_instance(_yaml(HELM_VALUES), kubeconfig)
    launcher = _construct(config["run_launcher"], RunLauncher)
    run = DagsterRun(job_name="retraining_job", tags=tags)
    context = launcher.get_container_context_for_run(run)
    job = construct_dagster_k8s_job(
        job_config=context.get_k8s_job_config(
            job_image="azaion-assets:0.1.0", run_launcher=launcher
        ),
        args=["dagster", "api", "execute_run"],
        job_name=f"dagster-run-{run.run_id}",
        pod_name=f"dagster-run-{run.run_id}",
        component="run_worker",
        user_defined_k8s_config=context.run_k8s_config,
    )
    assert job.spec is not None
    return job.spec.template.spec


def _code_server_settings() -> Settings:
    """The settings of the chart's code server: its ``env`` entries, which win over the .env
    secret (``envFrom``), on top of .env.example's defaults."""
    (deployment,) = _yaml(HELM_VALUES)["dagster-user-deployments"]["deployments"]
    return Settings(**{item["name"]: item["value"] for item in deployment["env"]})


def test_training_runs_get_a_gpu_and_a_gpu_node_other_runs_neither(kubeconfig: Path):
    # The tags every training run carries, as the chart's code server builds them.
    settings = _code_server_settings()
    assert settings.k8s_run_launcher, "set K8S_RUN_LAUNCHER=true for the code server"
    assert "dagster-k8s/config" not in training_run_tags(Settings())  # host and Docker
    training = _run_pod(kubeconfig, training_run_tags(settings))
    (container,) = training.containers
    assert container.resources.limits == {"nvidia.com/gpu": "1"}
    assert training.node_selector == {"nvidia.com/gpu.present": "true"}
    assert training.termination_grace_period_seconds == 120  # time to checkpoint on cancel

    ingest = _run_pod(kubeconfig, {"azaion/stage": "ingest"})
    (container,) = ingest.containers
    assert not (container.resources and container.resources.limits)
    assert not ingest.node_selector

    for pod in (training, ingest):
        (container,) = pod.containers
        mounts = {m.mount_path: m.name for m in container.volume_mounts}
        assert mounts["/azaion"] == "azaion-data" and mounts["/dev/shm"] == "dshm"
        volumes = {v.name: v for v in pod.volumes}
        assert volumes["azaion-data"].persistent_volume_claim.claim_name == "azaion-data"
        assert volumes["dshm"].empty_dir.medium == "Memory"


# --- docker-compose.yml -----------------------------------------------------------------------

COMPOSE_BIN = shutil.which("docker-compose")


def _compose(tmp_path: Path, env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess:
    """docker-compose on a copy of the file, next to a .env holding ``env`` (it reads .env both
    for ${...} and for the services' env_file)."""
    if COMPOSE_BIN is None:  # a missing validator fails loudly, never skips
        pytest.fail("docker-compose is not installed (make system-deps installs it)")
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    clean = {k: v for k, v in os.environ.items() if k not in env and k != "COMPOSE_FILE"}
    return subprocess.run(
        [str(COMPOSE_BIN), "-f", "docker-compose.yml", *args],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_file_is_valid_and_wires_the_stack(tmp_path: Path):
    env = _filled_env()
    checked = _compose(tmp_path, env, "config", "-q")
    assert checked.returncode == 0, checked.stderr
    out = _compose(tmp_path, env, "config")
    assert out.returncode == 0, out.stderr
    stack = yaml.safe_load(out.stdout)
    services = stack["services"]
    assert set(services) >= {
        "rabbitmq", "postgres", "minio", "code", "dagster-webserver", "dagster-daemon",
    }  # fmt: skip
    for name, service in services.items():
        if "tools" not in service.get("profiles", []):
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"

    assert "rabbitmq_stream" in services["rabbitmq"]["command"]
    assert (
        "advertised_host rabbitmq"
        in services["rabbitmq"]["environment"]["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
    )
    # The code server names the image its runs start in; the webserver and the daemon load it.
    code = services["code"]
    assert code["environment"]["DAGSTER_CONTAINER_IMAGE"] == env["AZAION_IMAGE"]
    assert _yaml(REPO / "deploy" / "docker" / "workspace.yaml")["load_from"] == [
        {"grpc_server": {"host": "code", "port": 4000, "location_name": "azaion_assets"}}
    ]
    assert "4000" in code["command"] and "azaion_assets.definitions" in code["command"]
    # Runs get the daemon's environment: the stack's host names, not .env's host defaults.
    daemon = services["dagster-daemon"]["environment"]
    assert daemon["RABBITMQ_HOST"] == "rabbitmq" and daemon["DAGSTER_POSTGRES_HOST"] == "postgres"
    assert daemon["AZAION_ROOT_DIR"] == "/azaion"
    for name in ("dagster-webserver", "dagster-daemon"):
        assert "/var/run/docker.sock:/var/run/docker.sock:rw" in services[name]["volumes"]

    # What the run launcher refers to by name exists under that name.
    launcher = _validated(DOCKER_INSTANCE)["run_launcher"]["config"]
    assert launcher["networks"] == [stack["networks"]["default"]["name"]]
    for volume in launcher["container_kwargs"]["volumes"]:
        assert stack["volumes"][volume]["name"] == volume
    data = stack["volumes"]["azaion-data"]
    assert data["driver_opts"] == {"type": "none", "o": "bind", "device": env["AZAION_HOST_ROOT"]}
    gpu = services["gpu-check"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(tmp_path: Path, secret: str):
    env = _filled_env()
    env[secret] = ""
    result = _compose(tmp_path, env, "config", "-q")
    assert result.returncode != 0
    assert f"set {secret} in .env" in result.stderr


def test_env_example_covers_every_compose_variable_and_secrets_have_no_default():
    text = COMPOSE.read_text("utf-8")
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    assert used - set(_env_example()) == set(), "add these to azaion_assets/lib/config/deployenv.py"
    for secret in SECRETS:
        assert _env_example()[secret] == ""
        assert re.search(rf"\$\{{{secret}:\?", text), f"{secret} must use ${{{secret}:?...}}"
        assert not re.search(rf"\$\{{{secret}:-", text), f"{secret} must not have a default"


# --- Dockerfile -------------------------------------------------------------------------------


def _dockerfile_instructions() -> list[str]:
    """One line per instruction, as Docker reads them: comment lines dropped, continuations
    joined."""
    lines = DOCKERFILE.read_text("utf-8").splitlines()
    kept = "\n".join(line for line in lines if not line.strip().startswith("#"))
    return kept.replace("\\\n", " ").splitlines()


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in _dockerfile_instructions():
        if line.startswith("ENV "):
            env.update(re.findall(r"([A-Z_]+)=(\S+)", line))
    return env


def test_dockerfile_installs_the_pinned_torch_and_keeps_ultralytics_offline(monkeypatch):
    text = "\n".join(_dockerfile_instructions())
    pyproject = (REPO / "pyproject.toml").read_text("utf-8")
    for package in ("torch", "torchvision"):
        pin = re.search(rf'"{package}==([^"]+)"', pyproject)
        assert pin is not None
        assert f"{package}=={pin.group(1)}" in text
    env = _dockerfile_env()
    assert env["YOLO_OFFLINE"] == "1" and env["YOLO_AUTOINSTALL"] == "0"
    # The config dir the steps themselves select (prepare_ultralytics) for the image's root.
    monkeypatch.delenv("AZAION_RUNTIME_DIR")
    settings = Settings(azaion_root_dir=Path(env["AZAION_ROOT_DIR"]))
    assert env["YOLO_CONFIG_DIR"] == str(settings.runtime_dir / "ultralytics")
    home = env["DAGSTER_HOME"]
    assert "COPY deploy/docker/dagster.yaml ${DAGSTER_HOME}/dagster.yaml" in text
    assert home == "/opt/dagster/home"
    for line in _dockerfile_instructions():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"Dockerfile copies missing {source}"


def test_the_image_installs_the_package_without_extras():
    """The image gets the runtime dependencies only: no [dev] (pytest, linters), no [demo]
    (moto), and so no dev stand-ins (the wheel leaves them out; test_packaging)."""
    installs = [
        line.split("pip install", 1)[1].split("&&")[0].split()  # up to the next command
        for line in _dockerfile_instructions()
        if line.startswith("RUN ") and "pip install" in line
    ]
    assert ["."] in installs
    words = [word for args in installs for word in args]
    assert not [w for w in words if "[" in w or w.startswith(("-e", "--editable"))], words
    assert not {"pytest", "moto", "ruff", "pyright"} & {re.split(r"[=<>\[]", w)[0] for w in words}


def _click_command(argv: list[str]) -> click.Command:
    """Parse ``argv`` with the real CLI's options (an unknown option or command raises)."""
    return _click_context(argv).command


def _click_context(argv: list[str]) -> click.Context:
    """``argv`` parsed by the real CLI: the command and its parameters' values."""
    if argv[0] == "dagster":
        from dagster._cli import cli as command
    elif argv[0] == "dagster-webserver":
        from dagster_webserver.cli import cli as command
    else:
        assert argv[0] == "dagster-daemon", argv
        from dagster._daemon.cli import cli as command
    name, args, parent = argv[0], list(argv[1:]), None
    while isinstance(command, click.Group):  # no group-level options in these commands
        parent = click.Context(command, info_name=name, parent=parent)
        sub = command.get_command(parent, args[0])
        assert sub is not None, f"no command {args[0]!r} in {argv}"
        name, args, command = args[0], args[1:], sub
    return command.make_context(name, args, parent=parent)


def test_every_dagster_command_of_the_stack_parses(tmp_path: Path):
    # In the image's working directory, where the Dockerfile puts workspace.yaml (cwd: tmp_path).
    shutil.copy(REPO / "deploy" / "docker" / "workspace.yaml", tmp_path / "workspace.yaml")
    compose = _yaml(COMPOSE)
    commands = []
    for service in compose["services"].values():
        for argv in (service.get("command"), service.get("healthcheck", {}).get("test")):
            if isinstance(argv, list):
                argv = argv[1:] if argv[0] in ("CMD", "CMD-SHELL") else argv
                if argv[0] in ("dagster", "dagster-webserver", "dagster-daemon"):
                    commands.append(argv)
    (cmd,) = [line for line in _dockerfile_instructions() if line.startswith("CMD ")]
    commands.append(json.loads(cmd.removeprefix("CMD ")))
    assert len(commands) >= 6
    for argv in commands:
        _click_command(argv)
    with pytest.raises(click.UsageError):
        _click_command(["dagster", "code-server", "start", "--no-such-option"])


# --- a real materialisation on PostgreSQL -----------------------------------------------------

PG_ADMIN = os.environ.get("AZAION_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def postgres_db() -> Iterator[dict[str, str]]:
    """A throwaway database on the PostgreSQL at AZAION_TEST_POSTGRES (default: 127.0.0.1:5432,
    user postgres), as the DAGSTER_POSTGRES_* variables; dropped afterwards."""
    name = f"azaion_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg2.connect(PG_ADMIN, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"no PostgreSQL at {PG_ADMIN} (set AZAION_TEST_POSTGRES): {exc}")
    admin.autocommit = True
    dsn = admin.get_dsn_parameters()
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield {
            "DAGSTER_POSTGRES_HOST": dsn["host"],
            "DAGSTER_POSTGRES_PORT": dsn["port"],
            "DAGSTER_POSTGRES_DB": name,
            "DAGSTER_POSTGRES_USER": dsn["user"],
            "DAGSTER_POSTGRES_PASSWORD": admin.info.password or "",
        }
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_a_materialisation_is_recorded_in_the_docker_instances_postgresql(
    postgres_db: dict[str, str], tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The Docker instance's storage block, as it is, on a real PostgreSQL database."""
    for key, value in postgres_db.items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    storage = _yaml(DOCKER_INSTANCE)["storage"]
    (home / "dagster.yaml").write_text(
        yaml.safe_dump({"storage": storage, "telemetry": {"enabled": False}})
    )
    write_samples(tree.data, 12, seed=3)
    partition = "2026-11-24"

    with DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__module__.startswith("dagster_postgres")
        result = materialize(
            [annotations, dataset, dataset_splits_non_empty, dataset_labels_valid],
            selection=[dataset],
            instance=instance,
            partition_key=partition,
            resources={"azaion_settings": AzaionSettingsResource()},
        )
        assert result.success
        event = instance.get_latest_materialization_event(AssetKey("dataset"))
        assert event is not None and event.asset_materialization is not None
        assert event.asset_materialization.partition == partition

    with (
        psycopg2.connect(dbname=postgres_db["DAGSTER_POSTGRES_DB"], **_pg(postgres_db)) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(
            "SELECT partition FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
            " AND asset_key = %s",
            (AssetKey("dataset").to_string(),),
        )
        assert cur.fetchall() == [(partition,)]
        cur.execute("SELECT status FROM runs WHERE run_id = %s", (result.run_id,))
        assert cur.fetchall() == [("SUCCESS",)]
    conn.close()


def _pg(env: Mapping[str, str]) -> dict[str, Any]:
    return {
        "host": env["DAGSTER_POSTGRES_HOST"],
        "port": env["DAGSTER_POSTGRES_PORT"],
        "user": env["DAGSTER_POSTGRES_USER"],
        "password": env["DAGSTER_POSTGRES_PASSWORD"],
    }


# --- systemd units (host processes) -----------------------------------------------------------

SYSTEMD = REPO / "deploy" / "systemd"
CHECKOUT = Path("/opt/azaion-assets")  # where the units expect this repository
DAGSTER_CLIS = ("dagster", "dagster-daemon", "dagster-webserver")


def _unit(name: str) -> hostservices.Unit:
    return hostservices.read_unit(SYSTEMD / name)


def _service(name: str, key: str) -> str | None:
    return hostservices.setting(_unit(name), "Service", key)


def test_systemd_units_run_the_dagster_stack_from_the_checkouts_venv(tmp_path: Path):
    # In the units' working directory, which holds workspace.yaml (cwd: tmp_path).
    shutil.copy(SYSTEMD / "workspace.yaml", tmp_path / "workspace.yaml")
    assert str(CHECKOUT / ".venv" / "bin") == hostservices.UNIT_VENV_BIN
    assert sorted(p.name for p in SYSTEMD.glob("*.service")) == sorted(hostservices.UNITS)
    programs = []
    for name in hostservices.UNITS:
        unit = _unit(name)
        assert set(unit) == {"Unit", "Service", "Install"}, name
        argv = _unit_argv(name)  # one ExecStart, from the venv
        assert argv[0] in DAGSTER_CLIS, name
        _click_command(argv)
        programs.append(argv[0])
        assert _service(name, "Type") == "simple"
        assert _service(name, "Restart") == "on-failure"
        assert int(_service(name, "RestartSec") or 0) > 0
        assert int(_service(name, "TimeoutStopSec") or 0) >= 30
        assert unit["Install"]["WantedBy"] == ["multi-user.target"]
        assert _service(name, "User") == _service(name, "Group") == "azaion", name
        workdir = Path(_service(name, "WorkingDirectory") or "")
        assert workdir.is_absolute(), name
    assert programs == ["dagster", "dagster-daemon", "dagster-webserver"]
    with pytest.raises(click.UsageError):  # the parse above would notice a wrong option
        _click_command(["dagster-daemon", "run", "-w", "workspace.yaml", "--no-such-option"])


def _unit_argv(name: str) -> list[str]:
    """The unit's ExecStart, with the program by its name (as the CLI parser expects)."""
    argv = hostservices.service_argv(SYSTEMD / name)
    return [Path(argv[0]).name, *argv[1:]]


def test_systemd_daemon_and_webserver_load_the_code_server_the_unit_starts(tmp_path: Path):
    shutil.copy(SYSTEMD / "workspace.yaml", tmp_path / "workspace.yaml")  # cwd: tmp_path
    (location,) = _yaml(SYSTEMD / "workspace.yaml")["load_from"]
    grpc = location["grpc_server"]
    code = _click_context(_unit_argv(hostservices.CODE_SERVER)).params
    assert (code["host"], code["port"]) == (grpc["host"], grpc["port"]) == ("127.0.0.1", 4000)
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["tool"]["dagster"]
    assert code["location_name"] == grpc["location_name"] == project["code_location_name"]
    assert code["module_name"] == project["module_name"]
    for name in (hostservices.DAEMON, hostservices.WEBSERVER):
        assert _click_context(_unit_argv(name)).params["workspace"] == ("workspace.yaml",)
        # ... this directory's workspace.yaml, in the checkout.
        workdir = Path(_service(name, "WorkingDirectory") or "")
        assert workdir / "workspace.yaml" == CHECKOUT / "deploy" / "systemd" / "workspace.yaml"
        unit = _unit(name)["Unit"]
        assert hostservices.CODE_SERVER in " ".join(unit["After"]).split(), name
        assert hostservices.CODE_SERVER in " ".join(unit["Wants"]).split(), name
        # No run is in the daemon's or the webserver's cgroup: the default control-group stop
        # leaves runs alone and no stray process behind.
        assert _service(name, "KillMode") is None, name
    webserver = _click_context(_unit_argv(hostservices.WEBSERVER)).params
    assert webserver["host"] == "127.0.0.1"  # the UI has no authentication of its own


def test_systemd_code_server_counts_as_started_once_it_serves():
    """Its ExecStartPost= waits for the server the workspace names, within the start timeout:
    the daemon, ordered after it, never meets a code server that does not answer yet."""
    (location,) = _yaml(SYSTEMD / "workspace.yaml")["load_from"]
    grpc = location["grpc_server"]
    (post,) = hostservices.service_commands(SYSTEMD / hostservices.CODE_SERVER, "ExecStartPost")
    assert Path(post[0]).name == "azaion-assets"
    args = build_parser().parse_args(post[1:])
    assert (args.command, args.host, args.port) == ("wait-code-server", grpc["host"], grpc["port"])
    assert 0 < args.timeout < int(_service(hostservices.CODE_SERVER, "TimeoutStartSec") or 90)
    for name in (hostservices.DAEMON, hostservices.WEBSERVER):
        assert not hostservices.service_commands(SYSTEMD / name, "ExecStartPost"), name
    # Nothing listens on a fresh port: the wait gives up, and the unit's start fails.
    started = time.monotonic()
    assert not wait_serving("127.0.0.1", free_port(), timeout=1)
    assert time.monotonic() - started < 10


def test_systemd_code_server_restart_leaves_its_run_workers_running():
    """The run workers are the code server's grandchildren: stopping the unit must signal its
    main process only (docs/host-processes.md)."""
    assert _service(hostservices.CODE_SERVER, "KillMode") == "process"
    assert _service(hostservices.CODE_SERVER, "KillSignal") in (None, "SIGTERM", "SIGINT")
    assert _service(hostservices.CODE_SERVER, "SendSIGKILL") in (None, "yes")


def test_systemd_units_share_the_settings_and_the_instance():
    env_files = {_service(name, "EnvironmentFile") for name in hostservices.UNITS}
    assert env_files == {"/etc/azaion-assets/azaion-assets.env"}  # a missing one fails the unit
    homes = {hostservices.environment(_unit(n)).get("DAGSTER_HOME") for n in hostservices.UNITS}
    assert homes == {"/var/lib/azaion-assets/dagster"}
    # DAGSTER_HOME lies in the state directory systemd creates for the service's user.
    state = _service(hostservices.CODE_SERVER, "StateDirectory")
    assert Path("/var/lib", state or "-") in Path(homes.pop() or "").parents
    # The env file is a copy of .env.example: every line of it reads the same under systemd.
    example = hostservices.read_env_file(REPO / ".env.example")
    assert example == _env_example()
    assert "DAGSTER_HOME" not in example  # set by the units, so one file serves all three


def test_systemd_unit_reader_refuses_what_systemd_would_expand(tmp_path: Path):
    unit = tmp_path / "x.service"
    unit.write_text("[Service]\nExecStart=/opt/azaion-assets/.venv/bin/dagster-daemon run -w %h\n")
    with pytest.raises(hostservices.UnitError, match="specifiers"):
        hostservices.service_argv(unit)
    venv = hostservices.UNIT_VENV_BIN
    unit.write_text(f"[Service]\nExecStart={venv}/dagster-daemon run\nExecStart={venv}/dagster\n")
    with pytest.raises(hostservices.UnitError, match="one ExecStart"):
        hostservices.service_argv(unit)
    unit.write_text("[Service]\nExecStart=/usr/bin/dagster-daemon run\n")
    with pytest.raises(hostservices.UnitError, match="does not run from"):
        hostservices.service_argv(unit)
    unit.write_text("[Service]\nKillMode=process\nKillMode=\n# c\nExecStart=/a \\\n  b\n")
    parsed = hostservices.read_unit(unit)
    assert parsed["Service"]["KillMode"] == []  # an empty assignment resets
    assert hostservices.exec_argv(parsed["Service"]["ExecStart"][0]) == ["/a", "b"]


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def test_systemd_analyze_verifies_the_units(tmp_path: Path):
    """systemd's own parser: an unknown key or a bad value is a warning there, so any output
    fails. The venv path is pointed at this venv (verify checks that the programs exist)."""
    if SYSTEMD_ANALYZE is None:  # a missing validator fails loudly, never skips
        pytest.fail("systemd-analyze is not installed (make system-deps installs it)")
    bin_dir = Path(sys.executable).parent
    for name in hostservices.UNITS:
        text = (SYSTEMD / name).read_text("utf-8")
        (tmp_path / name).write_text(text.replace(hostservices.UNIT_VENV_BIN, str(bin_dir)))
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", *(str(tmp_path / n) for n in hostservices.UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
