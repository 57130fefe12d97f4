"""Processes: light child processes of this package; deferring a cancel to a safe point."""
