"""The code location: every asset, check and resource of azaion-assets."""

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from azaion_assets import annotations, dataset, model, onnx_model
from azaion_assets.resources import AzaionSettingsResource

_modules = [annotations, dataset, model, onnx_model]

defs = Definitions(
    assets=load_assets_from_modules(_modules),
    asset_checks=load_asset_checks_from_modules(_modules),
    resources={"settings": AzaionSettingsResource()},
)
