"""Reading a request body with a size cap: refused from the header, or as it streams."""

from __future__ import annotations

from fastapi import Request

from appliance.errors import InvalidInput


async def read_capped(request: Request, limit: int, what: str = "the body") -> bytes:
    """The whole body, or 413 (``too_big``) as soon as it passes ``limit`` bytes."""

    def too_big() -> InvalidInput:
        return InvalidInput(f"{what} is larger than {limit} bytes",
                            detail={"reason": "too_big", "limit_bytes": limit})

    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise too_big()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_big()
    return bytes(body)
