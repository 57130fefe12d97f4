"""Annotation events applied to the data tree, idempotent and crash-safe, partition by partition."""
