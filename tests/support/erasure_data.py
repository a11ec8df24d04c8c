"""A home holding one data subject's rows in dataset versions, archived sources, the
prediction log and labels, and a model trained on one of the versions: the erasure tests'
data (tests/privacy)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path
from typing import Any

from appliance_test_support import tiny_onnx

from appliance.domain.principal import SYSTEM
from appliance.store import predictions as pq

KEY = "cust-7731"  # a value that appears nowhere else, so a text scan is meaningful


def csv_of(ids: list[str], *, extra: str = "") -> bytes:
    rows = "".join(f"{c},{i},{i * 1.5},{'ab'[i % 2]}\n" for i, c in enumerate(ids))
    return ("customer_id,n,x,kind\n" + rows + extra).encode()


def ingest(app: Any, name: str, body: bytes, dataset: str = "customers") -> Any:
    """The real ingest path (parser child, contract, summary): seconds, so slow tests only."""
    out = app.ingest.ingest_stream(io.BytesIO(body), file_name=name, dataset=dataset, who=SYSTEM)
    app.ingest._summaries.submit(lambda: None).result()
    return out


def add_version(app: Any, name: str, body: bytes, dataset: str = "customers") -> int:
    """A version as ingest leaves it (Parquet named by the source's sha256, the source in
    the archive, a row in the store), without the parser child: fast."""
    import polars as pl

    from appliance.store import datasets as dq
    from appliance.store.tables import DatasetVersionRow

    home = home_of(app)
    sha = hashlib.sha256(body).hexdigest()
    rel = Path("datasets") / dataset / f"{sha}.parquet"
    (home / rel).parent.mkdir(parents=True, exist_ok=True)
    frame = pl.read_csv(io.BytesIO(body))
    frame.write_parquet(home / rel)
    (home / "archive" / dataset).mkdir(parents=True, exist_ok=True)
    (home / "archive" / dataset / name).write_bytes(body)
    with app.store.write() as s:
        ds = dq.get_or_create_dataset(s, dataset)
        number = dq.next_version_number(s, ds.id)
        s.add(DatasetVersionRow(
            dataset_id=ds.id, number=number, status="accepted", sha256=sha,
            size_bytes=len(body), rows=frame.height,
            columns=[{"name": c, "dtype": str(t)} for c, t in frame.schema.items()],
            parquet_path=str(rel), source_file=name, claim_id=sha[:32],
            report={"passed": True, "failures": []}))
    return number


def log_predictions(app: Any, rows: list[tuple[str, dict[str, Any]]], at: dt.datetime) -> None:
    # the store's tables, or its log parts in scale-out (tests/store/test_parts.py)
    pq.log_predictions(app.store, [(rid, "churn", 1, inputs, 1, None, 1.0, at, "primary")
                                   for rid, inputs in rows])
    pq.log_labels(app.store, "churn", [(rid, 1) for rid, _ in rows], "api", at)


def home_of(app: Any) -> Path:
    return Path(app.settings.home)


def populate(app: Any) -> Any:
    add_version(app, "a.csv", csv_of(["c1", KEY, "c3", "c4"]))
    add_version(app, "b.csv", csv_of(["c5", KEY, KEY, "c8", "c9"]))
    add_version(app, "c.csv", csv_of(["c10", "c11"]))  # holds no matching row
    at = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    log_predictions(app, [("r1", {"customer_id": KEY, "n": 1}), ("r2", {"customer_id": "c1", "n": 2}),
               ("r3", {"customer_id": KEY, "n": 3})], at)
    app.registry.register(model="churn", onnx_bytes=tiny_onnx(), flavor="onnx", by=SYSTEM,
                          dataset="customers", dataset_version=2)
    return app
