"""Erasure of a data subject by key (admin only): every dataset version, the prediction
log and labels lose the matching rows; see ``appliance.privacy.erasure``.

The values travel in the request body only (never in a URL, where access logs would
keep them) and are kept nowhere: the answer and the list carry column names and counts.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from appliance.api.deps import Admin, App
from appliance.domain.privacy import ErasureEntry, ErasureReport, ErasureRequest

router = APIRouter(prefix="/api/v1/erasures", tags=["erasures"])


@router.post("", status_code=201)
def erase(body: ErasureRequest, app: App, who: Admin) -> ErasureReport:
    return app.erasure.erase(body, by=who)


@router.get("")
def list_erasures(app: App, _: Admin,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[ErasureEntry]:
    return app.erasure.erasures(limit=limit)
