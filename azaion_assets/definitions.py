"""The code location: every asset, check, job, sensor and resource of azaion-assets.

Loads ``defs/``, one package per pipeline stage, and nothing else.
"""

from dagster import Definitions, definitions

from azaion_assets.defs.location import build_definitions


@definitions
def defs() -> Definitions:
    return build_definitions()
