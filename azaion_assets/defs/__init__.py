"""The Dagster layer, one package per pipeline stage; ``location.py`` merges them."""
