"""The code location: every asset, check and resource of azaion-assets."""

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from azaion_assets import dataset, model, onnx_model
from azaion_assets.annotations import annotations
from azaion_assets.resources import AzaionSettingsResource

_modules = [dataset, model, onnx_model]

defs = Definitions(
    # annotations is a spec (external until the stream ingest lands): the module loader skips those
    assets=[annotations, *load_assets_from_modules(_modules)],
    asset_checks=load_asset_checks_from_modules(_modules),
    resources={"settings": AzaionSettingsResource()},
)
