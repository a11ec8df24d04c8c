"""The child side of training: what runs inside ``python -m appliance.train.child.worker``.

Given one parsed job (:class:`appliance.train.spec.JobSpec`) and an immutable
Parquet snapshot, it fits the pipeline, scores it, exports ONNX and proves
parity, and answers one JSON result. It never opens the store. Heavy libraries
are imported inside the functions that need them.
"""
