"""Stage 2: ``dataset`` and ``model``, and the sensor and job that retrain."""
