"""The Dagster-free library of azaion-assets, one package per concern.

Every rule of the pipeline lives here, tested directly and reused from the CLI; ``defs/`` only
wraps it in assets, checks, sensors and jobs. Nothing here imports dagster or ``dev/``.
"""
