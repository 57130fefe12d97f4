"""Housekeeping: what the pipeline derives, kept within the KEEP_* policy, daily."""
