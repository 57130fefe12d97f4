"""Dagster-free core of azaion-assets.

Everything here runs without Dagster: configuration, the data tree, label validation, the
stable split, dataset forming, offline Ultralytics set-up, training and export. The Dagster
modules one level up are thin wrappers that call into this package, so every rule can be tested
directly and reused from the CLI.
"""
