"""Partitions shared by the stages of the graph.

``daily_partitions`` keys the dated products (dataset, model, ONNX export) by ``YYYY-MM-DD``;
``end_offset=1`` makes today's partition exist, since a dataset is formed during its day.
``annotation_batches`` are offset ranges of the annotation stream, added at run time by the stream
sensor.
"""

from dagster import DailyPartitionsDefinition, DynamicPartitionsDefinition

daily_partitions = DailyPartitionsDefinition(start_date="2025-01-01", end_offset=1, timezone="UTC")

ANNOTATION_BATCHES = "annotation_batches"
annotation_batches = DynamicPartitionsDefinition(name=ANNOTATION_BATCHES)
