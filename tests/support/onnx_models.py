"""Tiny hand-built ONNX models for tests that need a servable model without training."""

from __future__ import annotations


def servable_onnx(offset: float) -> bytes:
    """A single-file ONNX regressor that serving can feed: y = x + offset on one float column
    ``x`` (the API answers ``{"x": 1.0}`` with ``1.0 + offset``)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "offset"], ["y"])],
        "ui_serve_add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        initializer=[helper.make_tensor("offset", TensorProto.FLOAT, [1], [offset])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    out: bytes = model.SerializeToString()
    return out
