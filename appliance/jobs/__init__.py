"""Scheduled jobs: job files, the run ledger, and the continuous-training loop."""
