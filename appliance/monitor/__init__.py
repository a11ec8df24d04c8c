"""Monitoring: drift of features and predictions against the champion's training data."""
