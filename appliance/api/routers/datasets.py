"""Datasets, versions, contracts, uploads and the ingest ledger."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from appliance.api.deps import App, Operator, Viewer
from appliance.domain.datasets import Contract, Dataset, Version, VersionDetail, VersionRows
from appliance.domain.ingest import Ingest
from appliance.errors import InvalidInput, TooLarge

router = APIRouter(prefix="/api/v1", tags=["datasets"])


class ContractBody(BaseModel):
    yaml: str


@router.get("/datasets")
def list_datasets(app: App, _: Viewer) -> list[Dataset]:
    return app.datasets.list_datasets()


@router.get("/datasets/{name}")
def show_dataset(app: App, _: Viewer, name: str) -> Dataset:
    return app.datasets.show(name)


@router.post("/datasets/{name}/files", status_code=201)
async def upload_file(
    app: App, who: Operator, name: str, request: Request,
    filename: str | None = Query(default=None, description="Name of a raw-body upload"),
) -> Ingest:
    """Upload a file (raw body with ``?filename=``, or multipart ``file``): same path as the inbox."""
    limit = app.settings.max_file_bytes
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit + 64 * 1024:
        raise TooLarge(f"the file is larger than the {limit} byte limit",
                       detail={"limit_bytes": limit})
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInput("send the file as the multipart field 'file'")
        sink = app.ingest.open_upload(file_name=upload.filename or "", dataset=name)
        try:
            while chunk := await upload.read(4 * 1024 * 1024):
                sink.write(chunk)
            claim = sink.commit()
        finally:
            sink.discard()
    else:
        if not filename:
            raise InvalidInput("a raw upload needs ?filename=")
        sink = app.ingest.open_upload(file_name=filename, dataset=name)
        try:
            async for chunk in request.stream():
                sink.write(chunk)
            claim = sink.commit()
        finally:
            sink.discard()
    return await run_in_threadpool(app.ingest.ingest_claim, claim, who=who)


@router.get("/datasets/{name}/versions")
def list_versions(app: App, _: Viewer, name: str) -> list[Version]:
    return app.datasets.versions(name)


@router.get("/datasets/{name}/versions/{number}")
def show_version(app: App, _: Viewer, name: str, number: int) -> VersionDetail:
    return app.datasets.version(name, number)


@router.get("/datasets/{name}/versions/{number}/rows")
def version_rows(
    app: App, _: Viewer, name: str, number: int,
    limit: int = Query(default=20, ge=1, le=1000, description="How many rows"),
    sample: bool = Query(default=False, description="A seeded sample over the whole version "
                                                    "instead of the first rows"),
    seed: int = Query(default=0, ge=0, description="The sample's seed"),
) -> VersionRows:
    """A few rows of a version, read a batch at a time (never the whole version)."""
    return app.datasets.rows(name, number, limit=limit, sample=sample, seed=seed)


@router.post("/datasets/{name}/versions/{number}/validate")
def revalidate_version(app: App, who: Operator, name: str, number: int) -> VersionDetail:
    return app.datasets.revalidate(name, number, by=who)


@router.get("/datasets/{name}/contract")
def show_contract(app: App, _: Viewer, name: str, version: int | None = None) -> Contract:
    return app.datasets.contract(name, version)


@router.get("/datasets/{name}/contracts")
def list_contracts(app: App, _: Viewer, name: str) -> list[Contract]:
    return app.datasets.contracts(name)


@router.put("/datasets/{name}/contract")
def set_contract(app: App, who: Operator, name: str, body: ContractBody) -> Contract:
    return app.datasets.set_contract(name, body.yaml, by=who)


@router.get("/ingests", tags=["ingest"])
def list_ingests(
    app: App, _: Viewer, dataset: str | None = None, limit: int = Query(50, ge=1, le=1000)
) -> list[Ingest]:
    return app.ingest.recent(dataset=dataset, limit=limit)
