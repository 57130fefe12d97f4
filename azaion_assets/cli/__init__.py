"""``azaion-assets``, the command line."""
