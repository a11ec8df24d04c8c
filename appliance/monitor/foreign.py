"""Quiet imports of foreign frameworks (alibi-detect and what it pulls in).

alibi-detect imports transformers, and through it may touch TensorFlow, torch,
numba...; each announces itself on import ("None of PyTorch, TensorFlow >= 2.0,
or Flax have been found...") on the server's stderr, where an operator reads it
as a problem of the appliance. The silence is scoped to the import itself and to
those libraries' loggers: nothing else in the process is muted.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

# Loggers of the frameworks alibi-detect pulls in; on import they announce themselves
# ("None of PyTorch, TensorFlow >= 2.0, or Flax have been found...") on the server's stderr.
_FOREIGN_LOGGERS = ("transformers", "tensorflow", "absl", "torch", "numba", "h5py",
                    "alibi_detect", "jax")
# Warnings raised from these modules while the import runs (and from the import machinery
# on their behalf) are dropped; a warning from anywhere else still shows.
_FOREIGN_MODULES = (r"(alibi_detect|transformers|tensorflow|tensorboard|keras|absl|torch|jax|"
                    r"flax|numba|llvmlite|h5py|sklearn|scipy|skimage|cv2|huggingface_hub|"
                    r"tokenizers|safetensors|importlib\._bootstrap.*)(\..*)?")


class _Drop(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextlib.contextmanager
def quiet_import() -> Iterator[None]:
    """Import alibi-detect without the framework chatter it brings (its own business, not
    the operator's): their warnings and log records below ERROR are dropped while the
    import runs. Errors still show."""
    import os
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up lines
    drop = _Drop()
    loggers = [logging.getLogger(name) for name in _FOREIGN_LOGGERS]
    for logger in loggers:
        logger.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=_FOREIGN_MODULES)
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(drop)
