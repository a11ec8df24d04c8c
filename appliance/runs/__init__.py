"""Experiment tracking: runs, params, step metrics, tags, artifacts."""
