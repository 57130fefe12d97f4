"""What an operator sees in the Dagster UI, in a real browser, on a materialised instance.

Once per module: synthetic annotations are published to a stream of the test broker,
``ingest_job`` carries them into the data tree (which also records today's ``daily_arrivals``),
and ``retraining_job`` trains, exports and promotes today's model, both as the code location
defines them, in-process on a SQLite instance. ``dagster-webserver`` then serves that instance
and headless Chromium reads its pages: the asset graph, the champion, today's arrivals, the
sensors and the training run. Each test reads one page's text.

``AZAION_SCREENSHOTS=docs/screenshots`` also saves each page as a PNG (docs/operator-ui.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.scheduler.instigation import TickStatus
from selenium import webdriver
from selenium.webdriver.common.by import By

from azaion_assets.defs.annotations.ingest_job import INGEST_JOB
from azaion_assets.defs.location import build_definitions
from azaion_assets.defs.monitor.champion_monitor import MONITOR_JOB
from azaion_assets.defs.partitions import ANNOTATION_BATCHES
from azaion_assets.defs.training.retraining_job import RETRAINING_JOB
from azaion_assets.dev.demo import demo_messages
from azaion_assets.dev.localdaemon import local_daemon
from azaion_assets.dev.messages import Author, synthetic
from azaion_assets.lib.config.datatree import DataTree
from azaion_assets.lib.config.sources import load_settings
from azaion_assets.lib.evaluation.champion_gate import evaluate_frames, read_evaluation
from azaion_assets.lib.evaluation.frame_errors import worst
from azaion_assets.lib.evaluation.new_data import new_annotations
from azaion_assets.lib.evaluation.onnx_eval import score_frames
from azaion_assets.lib.labels.classes import load_classes, slot_names
from azaion_assets.lib.stream.client import probe_tail, publish
from azaion_assets.lib.stream.events import Role
from azaion_assets.lib.stream.offsets import OffsetRange
from azaion_assets.lib.stream.stream_connection import StreamTarget
from azaion_assets_tests.browser import (
    PROJECT,
    chromium,
    close_dialog,
    markdown_images,
    open_page,
    screenshot,
    wait_for_text,
    webserver,
    write_workspace,
)
from azaion_assets_tests.conftest import TINY_PROFILE, clear_config_env

ASSETS = (
    "annotations",
    "daily_arrivals",
    "dataset",
    "model",
    "onnx_model",
    "champion",
    "champion_monitor",
    "model_release",
)
SENSORS = (
    "annotation_stream_sensor",
    "retraining_sensor",
    "model_release_sensor",
    "health_sensor",
    "champion_monitor_sensor",
)
VALIDATOR = Author(Role.VALIDATOR, "validator@azaion.local")
TRAINING_STEPS = ("dataset", "model", "onnx_model", "champion")
# Telemetry off, as in the project's dagster.yaml, and no newsletter dialog (Dagster shows one
# on a first visit from localhost, over whatever page is open).
INSTANCE_YAML = "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"


@dataclass(frozen=True)
class Published:
    messages: int
    validated: int
    quarantined: int
    partitions: int


@dataclass(frozen=True)
class Tick:
    skip_reason: str  # empty: no skip
    cursor: str


@dataclass
class Operator:
    """The browser on the webserver, and what the instance was given."""

    url: str
    driver: webdriver.Chrome
    tree: DataTree
    today: str
    published: Published
    training_run: str
    sensor_descriptions: dict[str, str]
    ticks: dict[str, Tick]  # each sensor's first tick, as the daemon recorded it

    def open(self, path: str, *texts: str) -> str:
        return open_page(self.driver, self.url + path, *texts)


def _ingest(instance: DagsterInstance, defs, target: StreamTarget, batch: list) -> None:
    before = asyncio.run(probe_tail(target))
    first = 0 if before is None else before + 1
    asyncio.run(publish(target, batch))
    tail = asyncio.run(probe_tail(target))
    assert tail is not None and tail == first + len(batch) - 1
    key = OffsetRange(first, tail).key
    instance.add_dynamic_partitions(ANNOTATION_BATCHES, [key])
    result = defs.resolve_job_def(INGEST_JOB).execute_in_process(
        instance=instance, partition_key=key
    )
    assert result.success


@pytest.fixture(scope="module")
def operator(
    tmp_path_factory: pytest.TempPathFactory, runtime_dir: Path, broker: StreamTarget
) -> Iterator[Operator]:
    base = tmp_path_factory.mktemp("ui")
    home = base / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    target = dataclasses.replace(broker, stream=f"ui-{uuid.uuid4().hex[:12]}")
    with pytest.MonkeyPatch.context() as mp:
        clear_config_env(mp)
        settings = {
            **TINY_PROFILE,
            **target.as_env(),
            "AZAION_ROOT_DIR": str(base / "azaion"),
            "AZAION_RUNTIME_DIR": str(runtime_dir),
        }
        for key, value in settings.items():
            mp.setenv(key, value)
        env = dict(os.environ)
        today = datetime.now(UTC).date().isoformat()
        defs = build_definitions()
        with DagsterInstance.from_config(str(home)) as instance:
            batch, validated = demo_messages(24, seed=0)  # 12 videos: every split gets some
            _ingest(instance, defs, target, batch)
            training = defs.resolve_job_def(RETRAINING_JOB).execute_in_process(
                instance=instance, partition_key=today
            )
            assert training.success
            # A second batch, winter frames of new videos: the champion is scored on them.
            winter = list(synthetic(12, VALIDATOR, 7, "winter", videos=3, scene="winter"))
            _ingest(instance, defs, target, winter)
            published = Published(len(batch) + 12, validated + 12, quarantined=2, partitions=2)
            scored = defs.resolve_job_def(MONITOR_JOB).execute_in_process(instance=instance)
            assert scored.success
            # The ingest redraws the day's pictures hourly; the operator draws them now.
            arrivals = materialize(
                [defs.resolve_assets_def("daily_arrivals")], instance=instance, partition_key=today
            )
            assert arrivals.success
        tree = DataTree.from_settings(load_settings())
    descriptions = {s.name: s.description or "" for s in defs.sensors or ()}
    # The daemon ticks every sensor once, as on a live instance. Without the broker password its
    # stream sensor skips, so it requests no ingest run of offsets the test already ingested.
    daemon_env = {**env, "DAGSTER_HOME": str(home), "PYTHONPATH": str(PROJECT)}
    daemon_env.pop("RABBITMQ_PASSWORD")
    log = base / "daemon.log"
    with (
        local_daemon(write_workspace(base), base, daemon_env, log),
        DagsterInstance.from_config(str(home)) as instance,
    ):
        skips = _first_ticks(instance, log)
    with webserver(home, env, base) as server, chromium() as driver:
        yield Operator(
            server.url,
            driver,
            tree,
            today,
            published,
            training.run_id,
            descriptions,
            skips,
        )


def _first_ticks(instance: DagsterInstance, log: Path, timeout: float = 180) -> dict[str, Tick]:
    """Wait until the daemon has ticked every sensor; each one's first tick."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ticks = {}
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
            found = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
            if (
                found and found[0].status != TickStatus.STARTED
            ):  # a tick still running: no cursor yet
                tick = found[0]
                ticks[state.instigator_name] = Tick(tick.skip_reason or "", tick.cursor or "")
        if set(ticks) >= set(SENSORS):
            return ticks
        time.sleep(1)
    raise AssertionError(
        f"the daemon did not tick every sensor in {timeout:.0f}s:\n"
        + log.read_text(errors="replace")[-3000:]
    )


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shown(value: object) -> str:
    """A number as the UI prints it (JavaScript's: 0.0 is "0")."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _words(text: str) -> str:
    return " ".join(text.split())


def test_the_asset_graph_shows_every_asset(operator: Operator):
    groups = ",".join(f"global@global:{g}" for g in ("annotations", "training", "release"))
    names = (f"\n{name}\n" for name in ASSETS)  # whole lines: "model" is in "onnx_model" too
    operator.open(f"/asset-groups?expanded={groups}", "Global asset lineage", *names)
    screenshot(operator.driver, "asset-graph")


def test_the_champion_page_shows_the_promoted_files_and_their_sha256(operator: Operator):
    # The events view lists the latest materialisation's metadata as key, then value.
    text = operator.open(
        "/assets/champion?view=events", f"Materialized in run {operator.training_run[:8]}"
    )
    assert text.count("Materialized in run") == 1  # one promotion so far
    tree = operator.tree
    evaluation = read_evaluation(tree.model_dir(operator.today))
    assert evaluation is not None
    rows = {
        "partition": operator.today,
        "promotion": "automatic",
        "pt_path": tree.champion,
        "pt_sha256": _file_sha256(tree.champion),
        "pt_record": f"matches the file ({operator.today})",
        "onnx_path": tree.champion_onnx,
        "onnx_sha256": _file_sha256(tree.champion_onnx),
        "onnx_record": f"matches the file ({operator.today})",
        "test_mAP50-95": _shown(evaluation["challenger"]["map50_95"]),
    }
    wait_for_text(operator.driver, *(f"\n{key}\n{value}\n" for key, value in rows.items()))
    screenshot(operator.driver, "champion")


def test_the_champion_monitor_plots_the_score_on_new_data_beside_the_test_score(
    operator: Operator,
):
    text = operator.open(
        "/assets/champion_monitor?view=events",
        f"\nchampion\n{operator.today}\n",
        "\nnew_images\n12\n",
        "\nnew_data_mAP50-95\n",
        "\nchampion_test_mAP50-95\n",
    )
    assert "gap_mAP50-95" in text and "by_class" in text
    screenshot(operator.driver, "champion-monitor")
    # The overview's metadata turns into one plot per number, over the materialisations.
    operator.open("/assets/champion_monitor?view=overview", "Table", "Plots")
    operator.driver.find_element(By.XPATH, "//*[normalize-space(text())='Plots']").click()
    wait_for_text(operator.driver, "new_data_mAP50-95", "champion_test_mAP50-95")
    screenshot(operator.driver, "champion-monitor-plots")


def test_the_health_checks_show_their_verdicts_on_the_asset_pages(operator: Operator):
    verdicts = json.loads(operator.ticks["health_sensor"].cursor)
    assert set(verdicts) == {"annotations_arriving", "champion_released", "training_recent"}
    for check, asset in (("champion_released", "champion"), ("training_recent", "model")):
        why = verdicts[check]["why"]
        assert verdicts[check]["passed"], why  # just trained and promoted: all fresh
        operator.open(f"/assets/{asset}?view=checks", check, why)
    screenshot(operator.driver, "model-checks")


def test_todays_arrivals_show_the_counts_and_the_summary(operator: Operator):
    day, sent = operator.today, operator.published
    operator.open(
        f"/assets/daily_arrivals?view=partitions&partition={day}",
        f"\nmessages\n{sent.messages}\n",
        f"\nvalidated\n{sent.validated}\n",
        f"\nquarantined\n{sent.quarantined}\n",
        f"{sent.messages} messages in {sent.partitions} ingest segments on {day}",
        f"{sent.validated} validated annotations reached data/",
        f"{sent.quarantined} quarantined: ",
        "undecodable msgpack (1)",
        "invalid box (1)",
        "\npictures_run\n",  # drawn by the operator's rebuild of the day, after the ingest runs
    )
    screenshot(operator.driver, "daily-arrivals")


def test_the_sensors_are_listed_and_each_page_says_what_it_does(operator: Operator):
    operator.open("/automation", *(f"\n{name}\n" for name in SENSORS))
    screenshot(operator.driver, "sensors")
    assert set(operator.sensor_descriptions) == set(SENSORS)
    for name in SENSORS:
        description = operator.sensor_descriptions[name]
        assert description
        text = operator.open(f"/locations/azaion_assets/sensors/{name}", name, "Description")
        assert _words(description) in _words(text), f"{name}'s page lacks its description"
        if name == "retraining_sensor":
            # Why the last retraining did not start, on the page itself (its cursor), not only
            # in the dialog of its tick.
            reason = operator.ticks[name].skip_reason
            assert reason.startswith("dataset ") and "already formed" in reason, reason
            wait_for_text(operator.driver, "Target\nretraining_job", "last_decision", reason)
            screenshot(operator.driver, "sensor-retraining")


def test_the_training_run_shows_its_steps_and_epochs(operator: Operator):
    run = f"/runs/{operator.training_run}"
    finished = [f'Finished execution of step "{step}"' for step in TRAINING_STEPS]
    operator.open(f"{run}?logs=type:STEP_SUCCESS", "\nSuccess\nRun of\nretraining_job", *finished)
    epochs = int(TINY_PROFILE["TRAINING_EPOCHS"])
    lines = [f"epoch {n}/{epochs} " for n in range(1, epochs + 1)]
    text = operator.open(f"{run}?logs=epoch", *lines, "box_loss", "mAP50")
    assert f"epoch {epochs + 1}/" not in text
    screenshot(operator.driver, "training-run")


def _pictures(operator: Operator, asset: str, key: str, shot: str, *texts: str) -> list[str]:
    """The titles of the pictures in ``asset``'s Markdown entry ``key`` on today's
    materialisation, each checked to have rendered (a natural width above zero)."""
    partition = "" if asset == "champion_monitor" else f"&partition={operator.today}"
    operator.open(f"/assets/{asset}?view=events{partition}", f"\n{key}\n", *texts)
    images = markdown_images(operator.driver, key)
    assert images, f"{asset}: no picture in {key}"
    assert all(width > 0 for _, width in images), images
    screenshot(operator.driver, shot)
    if asset == "onnx_model" and len(images) > 2:  # and the gallery, below the charts
        operator.driver.execute_script(
            "[...document.querySelectorAll('[role=dialog] img')][2].scrollIntoView()"
        )
        screenshot(operator.driver, f"{shot}-gallery")
    close_dialog(operator.driver)
    return [title for title, _ in images]


def test_the_gate_shows_curves_confusion_and_the_frames_its_rule_picks(operator: Operator):
    titles = _pictures(operator, "onnx_model", "pictures", "pictures-onnx-model", "gallery")
    assert titles[:2] == [
        "precision-recall on the test split",
        "challenger: confusion at the edge's threshold",
    ]
    # The first model has no champion to differ from: its own worst test frames.
    tree, day = operator.tree, operator.today
    names = slot_names(load_classes(tree.classes_file))
    onnx = tree.model_dir(day) / "weights" / "best.onnx"
    scored = evaluate_frames(onnx, tree.dataset_dir(day), names, 0.25)
    assert [t.split(":")[0] for t in titles[2:]] == [f.image.name for f in worst(scored.frames, 8)]


def test_the_model_dataset_and_arrivals_pages_show_their_pictures(operator: Operator):
    assert _pictures(operator, "model", "training_curves", "pictures-model") == ["training curves"]
    dataset = _pictures(operator, "dataset", "pictures", "pictures-dataset")
    assert dataset[0] == "boxes per class per split"
    assert [t.split(":")[0] for t in dataset[1:]] == ["train", "valid", "test"]
    arrivals = _pictures(operator, "daily_arrivals", "pictures", "pictures-daily-arrivals")
    assert arrivals[0] == f"the newest 8 annotations of {operator.today}"
    (odd,) = arrivals[1:]  # the message that is not msgpack has no image to show
    assert odd.startswith("quarantined, offset ") and "(odd_0002_000000)" in odd, odd
    assert odd.endswith("invalid box: detection 1: class id 200 outside 0..79"), odd


def test_the_monitor_shows_the_new_frames_the_champion_does_worst_on(operator: Operator):
    titles = _pictures(operator, "champion_monitor", "worst_frames", "pictures-champion-monitor")
    tree = operator.tree
    names = slot_names(load_classes(tree.classes_file))
    dataset_dir = tree.dataset_dir(operator.today)
    new = sorted(tree.data.images / f for f in new_annotations(tree.data, dataset_dir).values())
    scored = score_frames(tree.champion_onnx, new, tree.data.labels, names, 0.25)
    assert [t.split(":")[0] for t in titles] == [f.image.name for f in worst(scored.frames, 8)]
    assert all("; video winter" in t for t in titles), titles  # the source videos are named
