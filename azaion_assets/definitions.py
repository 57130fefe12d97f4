"""The code location: every asset, check, job, sensor and resource of azaion-assets.

Built when the location loads, not at import, because sensor intervals and the training run
tags are settings.
"""

from dagster import (
    Definitions,
    definitions,
    load_asset_checks_from_modules,
    load_assets_from_modules,
)

from azaion_assets import (
    annotations,
    dataset,
    model,
    model_release,
    onnx_model,
    stranded_partitions,
)
from azaion_assets.annotation_stream_sensor import build_annotation_stream_sensor
from azaion_assets.champion import champion, promote_model
from azaion_assets.core.settings import load_settings
from azaion_assets.ingest_job import ingest_job
from azaion_assets.model_release import model_release_job
from azaion_assets.model_release_sensor import build_model_release_sensor
from azaion_assets.resources import AzaionApiResource, AzaionSettingsResource
from azaion_assets.retraining import build_retraining_job
from azaion_assets.retraining_sensor import build_retraining_sensor

_modules = [annotations, dataset, model, onnx_model, model_release]
_check_modules = [*_modules, stranded_partitions]


@definitions
def defs() -> Definitions:
    settings = load_settings()
    resource = AzaionSettingsResource()
    return Definitions(
        assets=[*load_assets_from_modules(_modules), champion],
        asset_checks=load_asset_checks_from_modules(_check_modules),
        jobs=[ingest_job, build_retraining_job(settings), promote_model, model_release_job],
        sensors=[
            build_annotation_stream_sensor(settings.stream_sensor_interval_seconds),
            build_retraining_sensor(settings.retrain_sensor_interval_seconds),
            build_model_release_sensor(settings.release_sensor_interval_seconds),
        ],
        resources={"settings": resource, "azaion_api": AzaionApiResource(settings=resource)},
    )
