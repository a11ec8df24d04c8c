"""The model registry: ONNX versions, aliases with history, gates, cards."""
