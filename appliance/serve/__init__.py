"""Serving registry models over REST through onnxruntime, with a prediction log."""
