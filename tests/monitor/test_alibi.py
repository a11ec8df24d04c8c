"""alibi-detect's detectors load without its package __init__ and its heavy requirements."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import json
import sys
import numpy as np
from appliance.monitor.alibi import classifier_drift, detectors

d = detectors()
classifier = classifier_drift()  # the multivariate detector's scikit-learn backend
rng = np.random.default_rng(0)
ks = d.KSDrift(rng.normal(size=(300, 1)), p_val=0.05).predict(rng.normal(1.0, size=(300, 1)),
                                                              return_p_val=True)
chi = d.ChiSquareDrift(rng.integers(0, 3, (300, 1)), p_val=0.05, categories_per_feature={0: 3}).predict(
    rng.integers(0, 3, (300, 1)), return_p_val=True)
_, threshold = d.fdr(np.array([0.001, 0.2, 0.5]), q_val=0.05)
heavy = sorted({m.split(".")[0] for m in sys.modules} & {
    "transformers", "numba", "llvmlite", "tokenizers", "huggingface_hub", "cv2", "skimage",
    "matplotlib", "PIL", "torch", "tensorflow"})
print(json.dumps({"ks": int(ks["data"]["is_drift"]), "chi2": int(chi["data"]["is_drift"]),
                  "classifier": classifier.__name__,
                  "threshold": float(threshold), "heavy": heavy}))
"""


def test_detectors_work_without_importing_alibi_detects_heavy_requirements() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.splitlines()[-1])
    assert found["ks"] == 1 and found["chi2"] == 0  # a shifted normal drifts; the same categories do not
    assert 0 < found["threshold"] <= 0.05
    assert found["heavy"] == []
    assert found["classifier"] == "ClassifierDriftSklearn"


def test_detectors_reuse_an_alibi_detect_already_imported() -> None:
    from appliance.monitor.alibi import detectors

    first, second = detectors(), detectors()
    assert first.KSDrift is second.KSDrift
    assert first.KSDrift.__module__ == "alibi_detect.cd.ks"
