"""Keeping what the pipeline derives within a policy: the plan (``retention``) and carrying it
out under the pipeline's locks, safe against a crash (``pruning``)."""
