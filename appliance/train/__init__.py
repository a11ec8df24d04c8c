"""Training: one job file in, a tracked run and a registered ONNX model version out.

Two sides, in two processes:

* **server side**, :mod:`.service` (``TrainingService``): runs inside ``appliance
  serve``, checks a job against its dataset, records the run, starts the child,
  reads its answer, registers the model version and applies the promotion gate;
* **child side**, the :mod:`.child` package: runs inside ``python -m
  appliance.train.child.worker`` with a memory cap, fits, scores, exports and
  checks ONNX parity. It never opens the store.

:mod:`.spec` (the parsed job file, ``JobSpec``) is what travels between them.
"""
