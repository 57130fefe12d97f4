"""Health checks across the stages: freshness alarms an operator sees as failed checks."""
