"""The graph's assets and checks as the code location builds them, for tests that materialise
them directly: dated partitions from a fixed early start, so the tests' days all exist."""

from datetime import date

from dagster import AssetChecksDefinition, AssetsDefinition

from azaion_assets.defs.location import graph

START = date(2026, 1, 1)
_assets, _checks = graph(START)
_by_name: dict[str, AssetsDefinition] = {a.key.to_user_string(): a for a in _assets}
_checks_by_name: dict[str, AssetChecksDefinition] = {
    next(iter(c.check_keys)).name: c for c in _checks
}

daily_arrivals = _by_name["daily_arrivals"]
dataset = _by_name["dataset"]
model = _by_name["model"]
onnx_model = _by_name["onnx_model"]
champion = _by_name["champion"]
model_release = _by_name["model_release"]
dataset_splits_non_empty = _checks_by_name["dataset_splits_non_empty"]
dataset_labels_valid = _checks_by_name["dataset_labels_valid"]
dataset_no_video_across_train_and_test = _checks_by_name["dataset_no_video_across_train_and_test"]
