"""The stages' definitions merged into one code location.

Built when the location loads, not at import, because sensor intervals and the training run
tags are settings.
"""

import logging

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from azaion_assets.defs.annotations import (
    annotations,
    stranded_partitions,
)
from azaion_assets.defs.annotations.annotation_stream_sensor import (
    build_annotation_stream_sensor,
)
from azaion_assets.defs.annotations.ingest_job import ingest_job
from azaion_assets.defs.release import model_release, onnx_model
from azaion_assets.defs.release.champion import champion, promote_model
from azaion_assets.defs.release.model_release import model_release_job
from azaion_assets.defs.release.model_release_sensor import build_model_release_sensor
from azaion_assets.defs.resources import AzaionApiResource, AzaionSettingsResource
from azaion_assets.defs.training import dataset, model
from azaion_assets.defs.training.retraining_job import build_retraining_job
from azaion_assets.defs.training.retraining_sensor import build_retraining_sensor
from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.settings import Settings
from azaion_assets.lib.config.sources import load_settings

log = logging.getLogger(__name__)
_modules = [annotations, dataset, model, onnx_model, model_release]
_check_modules = [*_modules, stranded_partitions]


def location_settings() -> Settings:
    """The values the location itself reads (sensor intervals, training run tags). Never
    raises: an invalid value takes its default here and fails the sensor or step whose scope
    it belongs to, which names it; an unreadable config file leaves every default."""
    try:
        return load_settings(scopes=())
    except ConfigError as exc:
        log.warning("the code location loads with default settings: %s", exc)
        return Settings.model_construct()


def build_definitions() -> Definitions:
    settings = location_settings()
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
