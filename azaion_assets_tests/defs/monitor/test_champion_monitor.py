"""The champion on new data, end to end: a real tiny champion, real data trees, a real instance.

The champion learnt on summer scenes (dark fields). New summer frames score about as its test
split did; new winter frames (snow) score far below, and the retraining sensor, reading only the
instance, then requests a retraining and says it was the degradation rule.
"""

import json
import re
import shutil

import pytest
from dagster import AssetKey, DagsterInstance, RunRequest, build_sensor_context, materialize

from azaion_assets.defs.monitor.champion_monitor import champion_monitor
from azaion_assets.defs.release.champion import champion
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.defs.training.retraining_sensor import build_retraining_sensor
from azaion_assets.dev.synthetic import write_samples
from azaion_assets.lib.champion.files import publish_pair
from azaion_assets.lib.dataset.forming import form_dataset
from azaion_assets.lib.evaluation.champion_gate import evaluate, judge, write_evaluation
from azaion_assets.lib.evaluation.frame_errors import rule, worst
from azaion_assets.lib.evaluation.new_data import new_annotations
from azaion_assets.lib.evaluation.onnx_eval import score_frames
from azaion_assets.lib.ingest.day_totals import weather_mode
from azaion_assets.lib.labels.classes import load_classes, slot_names
from azaion_assets_tests.tiny_detector import IMAGES, PARTITION, tiny_detector

SENSOR_RESOURCES = {"azaion_settings": AzaionSettingsResource()}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, runtime_dir):
    """Built before the test's own data tree is configured (it forms one of its own)."""
    return tiny_detector(tmp_path_factory, runtime_dir)


def _score(instance: DagsterInstance) -> dict:
    result = materialize(
        [champion_monitor],
        instance=instance,
        resources={"azaion_settings": AzaionSettingsResource()},
    )
    assert result.success
    event = instance.get_latest_materialization_event(AssetKey("champion_monitor"))
    assert event is not None and event.asset_materialization is not None
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def test_a_summer_champion_falls_behind_on_winter_and_retraining_names_the_rule(
    tiny, tree, instance, monkeypatch
):
    write_samples(tree.data, IMAGES, seed=5)  # what the tiny champion was formed from
    names = slot_names(load_classes(tree.classes_file))
    dataset_dir = form_dataset(tree, PARTITION, (70, 20, 10), names).path
    weights = tree.model_dir(PARTITION) / "weights" / "best.pt"
    weights.parent.mkdir(parents=True)
    shutil.copyfile(tiny.pt, weights)
    test = evaluate(tiny.onnx, dataset_dir, names)  # as the gate judged it
    write_evaluation(tree.model_dir(PARTITION), judge(test, None, None, 0.005))
    publish_pair([(weights, tree.champion), (tiny.onnx, tree.champion_onnx)], PARTITION)
    materialize(
        [champion], instance=instance, resources={"azaion_settings": AzaionSettingsResource()}
    )

    # Nothing validated since its dataset: nothing to score, no materialisation.
    assert materialize(
        [champion_monitor],
        instance=instance,
        resources={"azaion_settings": AzaionSettingsResource()},
    ).success
    assert instance.get_latest_materialization_event(AssetKey("champion_monitor")) is None

    write_samples(tree.data, 40, seed=21, prefix="later")  # more of the same summer
    summer = _score(instance)
    assert summer["champion"] == PARTITION and summer["new_images"] == 40
    assert summer["champion_test_mAP50-95"] == test.map50_95
    assert summer["new_data_mAP50-95"] > 0.1, summer  # it still finds things

    write_samples(tree.data, 60, seed=22, prefix="snow", scene="winter")
    winter = _score(instance)
    assert winter["new_images"] == 100 and winter["new_annotations"] == 100
    assert winter["new_data_mAP50-95"] < summer["new_data_mAP50-95"] - 0.1, (summer, winter)
    assert winter["gap_mAP50-95"] == round(test.map50_95 - winter["new_data_mAP50-95"], 4)
    assert {"new_data_mAP50-95 Norm", "new_data_mAP50-95 Wint"} <= set(winter)
    rows = {r.data["class"]: r.data for r in winter["by_class"].records}
    assert set(rows) == {names[s] for s in (0, 1, 6, 20)}  # the classes the scenes hold
    assert rows[names[20]]["mode"] == "Wint" and rows[names[0]]["mode"] == "Norm"
    assert {r["name"]: r["ap50_95"] for r in test.per_class} == {
        name: row["test_ap50_95"] for name, row in rows.items() if row["test_ap50_95"] >= 0
    }
    # Scored twice within PICTURES_EVERY_MINUTES: the second points to the first's pictures.
    assert summer["worst_frames"].count("data:image/jpeg;base64,") >= 1
    assert "data:image" not in winter["worst_frames"]
    assert "drawn at" in winter["worst_frames"] and summer["pictures_run"] in winter["worst_frames"]
    assert winter["pictures_run"] == summer["pictures_run"]
    monkeypatch.setenv("PICTURES_EVERY_MINUTES", "0")  # every score draws
    winter = _score(instance)
    # The gallery: the new frames it does worst on, by the rule it states, mostly snow.
    new = sorted(tree.data.images / f for f in new_annotations(tree.data, dataset_dir).values())
    rescored = score_frames(tree.champion_onnx, new, tree.data.labels, names, 0.25)
    picked = [f.image.name for f in worst(rescored.frames, 8)]
    assert winter["gallery"] == {"rule": rule("worst"), "score_threshold": 0.25, "frames": picked}
    assert len(picked) == 8 and sum(name.startswith("snow") for name in picked) >= 6, picked
    assert winter["worst_frames"].count("data:image/jpeg;base64,") == 8
    titles = re.findall(r"\*\*([^*]+)\*\*", winter["worst_frames"])
    assert [t.split(":")[0] for t in titles] == picked
    assert all("; video unknown; weather " in t for t in titles)  # no stream: no source
    for title, name in zip(titles, picked, strict=True):  # each frame's modes, by its boxes
        label = tree.data.labels / f"{name.rsplit('.', 1)[0]}.txt"
        modes = sorted(
            {weather_mode(int(line.split()[0])) for line in label.read_text().split("\n") if line}
        )
        assert title.endswith(f"; weather {'/'.join(modes)}"), (title, modes)
    assert any("Wint" in t for t in titles), titles  # snow's own class is among them
    report = tree.model_dir(PARTITION) / "report"
    assert len(list(report.glob("monitor_frame_*.jpg"))) == 8

    monkeypatch.setenv("RETRAIN_MIN_NEW_VALIDATED", "1000")
    monkeypatch.setenv("RETRAIN_DEGRADATION_MIN_IMAGES", "50")
    context = build_sensor_context(resources=SENSOR_RESOURCES, instance=instance)
    request = build_retraining_sensor(60)(context)
    assert isinstance(request, RunRequest), request
    assert request.tags["azaion/retrain_rule"] == "degradation"
    shown = json.loads(context.cursor or "{}")["last_decision"]  # what the sensor's page shows
    assert shown == (
        f"degradation: champion {PARTITION} mAP50-95 {winter['new_data_mAP50-95']:.3f} on "
        f"100 new images vs {test.map50_95:.3f} test, {winter['gap_mAP50-95']:.3f} behind > "
        "margin 0.05: retraining"
    )
