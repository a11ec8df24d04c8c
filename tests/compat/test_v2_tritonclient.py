"""The real ``tritonclient.http`` against a live ``appliance serve``: liveness, metadata,
infer with JSON and with binary tensors; its outputs equal the predict route's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from appliance_test_support import ServerProcess, start_server
from served_model import churn_records, serve_churn

tritonclient_http = pytest.importorskip("tritonclient.http")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """One live server with churn v1 as champion, and an admin token."""
    proc = start_server(Path(tmp_path_factory.mktemp("v2-live")) / "home")
    try:
        token = proc.client().token
        assert token
        with httpx.Client(base_url=proc.url, timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as c:
            serve_churn(c)
        yield proc, token
    finally:
        proc.stop()


@pytest.fixture
def triton(server: tuple[ServerProcess, str]) -> Iterator[Any]:
    client = tritonclient_http.InferenceServerClient(f"127.0.0.1:{server[0].port}")
    yield client
    client.close()


def auth(server: tuple[ServerProcess, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {server[1]}"}


def inputs_for(rows: list[dict[str, Any]], metadata: dict[str, Any], *, binary: bool) -> list[Any]:
    out = []
    for spec in metadata["inputs"]:
        values = [r[spec["name"]] for r in rows]
        if spec["datatype"] == "BYTES":
            array = np.array(values, dtype=object).reshape(-1, 1)
        else:
            array = np.array([np.nan if v is None else v for v in values],
                             dtype=np.float32).reshape(-1, 1)
        tensor = tritonclient_http.InferInput(spec["name"], list(array.shape), spec["datatype"])
        tensor.set_data_from_numpy(array, binary_data=binary)
        out.append(tensor)
    return out


def test_tritonclient_sees_the_server_live_and_ready(triton: Any,
                                                     server: tuple[ServerProcess, str]) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("churn", headers=auth(server))
    assert triton.is_model_ready("churn", "1", headers=auth(server))
    assert not triton.is_model_ready("ghost", headers=auth(server))
    meta = triton.get_server_metadata(headers=auth(server))
    assert "binary_tensor_data" in meta["extensions"]


def test_tritonclient_reads_model_metadata(triton: Any, server: tuple[ServerProcess, str]) -> None:
    meta = triton.get_model_metadata("churn", headers=auth(server))
    assert meta["name"] == "churn" and meta["versions"] == ["1"]
    assert {"plan", "age", "monthly_charges"} <= {i["name"] for i in meta["inputs"]}


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_infer_equals_the_predict_route(triton: Any, server: tuple[ServerProcess, str],
                                                     binary: bool) -> None:
    meta = triton.get_model_metadata("churn", headers=auth(server))
    rows = churn_records(25, seed=3)
    outputs = None if binary else [
        tritonclient_http.InferRequestedOutput(name, binary_data=False)
        for name in ("predictions", "probabilities", "request_id")]
    result = triton.infer("churn", inputs_for(rows, meta, binary=binary), outputs=outputs,
                          headers=auth(server), request_id="t-1")
    assert result.get_response()["model_version"] == "1"
    assert result.get_response()["id"] == "t-1"
    native = httpx.post(f"{server[0].url}/api/v1/models/churn/predict", json=rows,
                        headers=auth(server), timeout=30).json()
    assert result.as_numpy("predictions").tolist() == native["predictions"]
    proba = result.as_numpy("probabilities")
    assert proba.shape == (25, 2)
    assert np.allclose(proba[:, 1], [p["1"] for p in native["probabilities"]], atol=1e-6)
    assert len(result.as_numpy("request_id")) == 25


def test_tritonclient_gets_the_servers_errors(triton: Any, server: tuple[ServerProcess, str]) -> None:
    from tritonclient.utils import InferenceServerException

    meta = triton.get_model_metadata("churn", headers=auth(server))
    tensors = inputs_for(churn_records(1), meta, binary=True)
    with pytest.raises(InferenceServerException) as unauth:
        triton.infer("churn", tensors)
    assert unauth.value.status() == "401"
    with pytest.raises(InferenceServerException) as missing:
        triton.infer("ghost", tensors, headers=auth(server))
    assert missing.value.status() == "404" and "ghost" in missing.value.message()
    with pytest.raises(InferenceServerException) as bad:
        triton.infer("churn", tensors[1:], headers=auth(server))
    assert bad.value.status() == "400" and "missing field 'age'" in bad.value.message()
