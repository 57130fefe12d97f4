"""Training with Ultralytics, offline, resumable, and the policy that asks for it."""
