"""The root of the graph: annotations from the Azaion stream.

Until the stream ingest lands (issue 3), ``annotations`` is an external asset: a view over the
annotations that the Azaion handler writes into ``data/``. Its key and its partitioning, offset
ranges of the stream, are final; the ingest will materialise the same asset.
"""

from dagster import AssetSpec

from azaion_assets.partitions import annotation_batches

annotations = AssetSpec(
    key="annotations",
    description=(
        "Annotation events from the RabbitMQ stream, applied to the data tree "
        "(data/, data-seed/, data_deleted/). Partitions are stream offset ranges. "
        "Temporarily external: written by the Azaion handler until the stream ingest lands."
    ),
    group_name="annotations",
    partitions_def=annotation_batches,
    kinds={"rabbitmq"},
)
