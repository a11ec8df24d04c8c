"""Request ids the server makes: version-4 UUIDs as 32 hex digits, unique, also in bulk."""

from __future__ import annotations

import uuid

import pytest

from appliance.serve.feeds import new_request_ids


@pytest.mark.parametrize("n", [0, 1, 15, 16, 5000])
def test_new_request_ids_are_unique_uuid4_hex(n: int) -> None:
    ids = new_request_ids(n)
    assert len(ids) == n == len(set(ids))
    for rid in ids[:50] + ids[-50:]:
        assert len(rid) == 32 and uuid.UUID(rid).version == 4 and uuid.UUID(rid).hex == rid
