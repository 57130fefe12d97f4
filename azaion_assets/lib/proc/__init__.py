"""Processes: deferring a cancel to a safe point."""
