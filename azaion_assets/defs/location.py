"""The stages' definitions merged into one code location.

Built when the location loads, not at import, because sensor intervals, the training run tags
and the first day of the dated partitions are settings.
"""

import logging
from datetime import date

from dagster import (
    AssetChecksDefinition,
    AssetsDefinition,
    Definitions,
    load_asset_checks_from_modules,
)

from azaion_assets.defs.annotations import stranded_partitions
from azaion_assets.defs.annotations.annotation_stream_sensor import (
    build_annotation_stream_sensor,
)
from azaion_assets.defs.annotations.annotations import annotations
from azaion_assets.defs.annotations.arrivals import build_daily_arrivals
from azaion_assets.defs.annotations.ingest_job import ingest_job
from azaion_assets.defs.health.health_checks import build_health_checks
from azaion_assets.defs.health.health_sensor import build_health_sensor
from azaion_assets.defs.housekeeping.housekeeping_job import housekeeping_job, housekeeping_schedule
from azaion_assets.defs.monitor.champion_monitor import champion_monitor, champion_monitor_job
from azaion_assets.defs.monitor.champion_monitor_sensor import build_champion_monitor_sensor
from azaion_assets.defs.partitions import daily_partitions, partitions_start
from azaion_assets.defs.release.champion import champion, promote_model
from azaion_assets.defs.release.model_release import build_model_release, model_release_job
from azaion_assets.defs.release.model_release_sensor import build_model_release_sensor
from azaion_assets.defs.release.onnx_model import build_onnx_model
from azaion_assets.defs.resources import AzaionApiResource, AzaionSettingsResource
from azaion_assets.defs.training.dataset import build_dataset
from azaion_assets.defs.training.model import build_model
from azaion_assets.defs.training.retraining_job import build_retraining_job
from azaion_assets.defs.training.retraining_sensor import build_retraining_sensor
from azaion_assets.lib.config.config_error import ConfigError
from azaion_assets.lib.config.settings import Settings

log = logging.getLogger(__name__)


def location_settings(azaion_settings: AzaionSettingsResource) -> Settings:
    """The values the location itself reads (sensor intervals, training run tags), through the
    resource that its runs get. Never raises: an invalid value takes its default here and fails
    the sensor or step whose scope it belongs to, which names it; an unreadable config file
    leaves every default."""
    try:
        return azaion_settings.load()
    except ConfigError as exc:
        log.warning("the code location loads with default settings: %s", exc)
        return Settings.model_construct()


def graph(start: date) -> tuple[list[AssetsDefinition], list[AssetChecksDefinition]]:
    """Every asset and asset check, the dated ones on daily partitions from ``start``."""
    days = daily_partitions(start)
    dataset, dataset_checks = build_dataset(days)
    assets = [
        annotations,
        build_daily_arrivals(days),
        dataset,
        build_model(days),
        build_onnx_model(days),
        champion,
        champion_monitor,
        build_model_release(days),
    ]
    checks = [
        *dataset_checks,
        *load_asset_checks_from_modules([stranded_partitions]),
        *build_health_checks(),
    ]
    return assets, checks


def build_definitions() -> Definitions:
    settings = location_settings(AzaionSettingsResource())  # its own: the runs' loads stay fresh
    resource = AzaionSettingsResource()
    assets, checks = graph(partitions_start(settings))
    return Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=[
            ingest_job,
            build_retraining_job(settings),
            promote_model,
            model_release_job,
            champion_monitor_job,
            housekeeping_job,
        ],
        schedules=[housekeeping_schedule],
        sensors=[
            build_annotation_stream_sensor(settings.stream_sensor_interval_seconds),
            build_retraining_sensor(settings.retrain_sensor_interval_seconds),
            build_model_release_sensor(settings.release_sensor_interval_seconds),
            build_health_sensor(settings.health_sensor_interval_seconds),
            build_champion_monitor_sensor(settings.monitor_sensor_interval_seconds),
        ],
        resources={
            "azaion_settings": resource,
            "azaion_api": AzaionApiResource(azaion_settings=resource),
        },
    )
