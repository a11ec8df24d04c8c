"""alibi-detect's KSDrift, ChiSquareDrift, fdr and the scikit-learn ClassifierDrift, loaded
without its package ``__init__``.

``import alibi_detect`` runs ``alibi_detect/__init__.py``, which imports every
sub-package: ``saving`` imports transformers (with huggingface-hub, tokenizers
and safetensors), ``cd/__init__`` imports every detector and with them numba
and llvmlite. The three names we use need none of that: their modules import
numpy, scipy and scikit-learn only. So the packages on the way
(``alibi_detect``, ``alibi_detect.cd``, ``alibi_detect.utils``) are registered
from their import specs without running their ``__init__``, then the modules
we use are imported as usual. The locked install (locks/runtime.txt) leaves
those libraries out, about 600 MB; a plain ``pip install`` still has them.

If something in the process already imported ``alibi_detect`` the normal way,
that is used as it is. The package stubs stay registered, so a later plain
``from alibi_detect.cd import MMDDrift`` in the same process would fail:
nothing of ours does that (tests/monitor/test_alibi.py pins the names).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from dataclasses import dataclass
from typing import Any

_PACKAGES = ("alibi_detect", "alibi_detect.cd", "alibi_detect.utils")
_lock = threading.Lock()


@dataclass(frozen=True)
class Detectors:
    KSDrift: Any
    ChiSquareDrift: Any
    fdr: Any


def _register_packages() -> None:
    for name in _PACKAGES:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or spec.submodule_search_locations is None:
            raise ModuleNotFoundError(f"alibi-detect is not installed ({name} not found)", name=name)
        sys.modules[name] = importlib.util.module_from_spec(spec)  # registered, __init__ not run


def classifier_drift() -> Any:
    """``ClassifierDriftSklearn``: its module and ``alibi_detect.cd.sklearn`` (an empty
    ``__init__``) import numpy, scipy and scikit-learn only."""
    with _lock:
        _register_packages()
        return importlib.import_module("alibi_detect.cd.sklearn.classifier").ClassifierDriftSklearn


def detectors() -> Detectors:
    with _lock:
        _register_packages()
        ks = importlib.import_module("alibi_detect.cd.ks")
        chisquare = importlib.import_module("alibi_detect.cd.chisquare")
        statstest = importlib.import_module("alibi_detect.utils.statstest")
    return Detectors(KSDrift=ks.KSDrift, ChiSquareDrift=chisquare.ChiSquareDrift, fdr=statstest.fdr)
