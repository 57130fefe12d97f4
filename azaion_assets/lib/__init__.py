"""The Dagster-free library of azaion-assets, one package per concern, in layers.

Every rule of the pipeline lives here, tested directly and reused from the CLI; ``defs/`` only
wraps it in assets, checks, sensors and jobs. Nothing here imports dagster or ``dev/``. The
packages import downwards only (``pyproject.toml``'s import-linter layers, ``lint-imports``):
housekeeping, release, champion, evaluation, training, dataset, ingest, stream, config, fsio,
then labels, proc and text at the bottom.
"""
