"""Training: job files, the estimator allowlist, and the ML core run in a child process.

The modules here, except ``service``, run inside ``python -m appliance.train.worker``
(or in tests); heavy libraries are imported inside the functions that need them.
"""
