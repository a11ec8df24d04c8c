"""Reading a request body with a size cap: refused from the header, or as it streams.

Also the one non-JSON body decoder that needs care: Parquet, checked against
row and size caps before it is decoded.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from appliance.errors import InvalidInput, TooLarge, UnprocessableInput


async def read_capped(request: Request, limit: int, what: str = "the body") -> bytes:
    """The whole body, or 413 (``too_big``) as soon as it passes ``limit`` bytes."""

    def too_big() -> TooLarge:
        return TooLarge(f"{what} is larger than {limit} bytes", detail={"limit_bytes": limit})

    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise too_big()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_big()
    return bytes(body)


PARQUET_MEDIA_TYPES = frozenset({"application/vnd.apache.parquet", "application/x-parquet"})
MAX_PARQUET_EXPANDED_BYTES = 64 * 1024 * 1024


def is_parquet(body: bytes, content_type: str) -> bool:
    """A Parquet media type, or ``application/octet-stream`` whose bytes start with ``PAR1``."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media in PARQUET_MEDIA_TYPES or (
        media == "application/octet-stream" and body[:4] == b"PAR1")


def parquet_records(body: bytes, max_rows: int, *, what: str = "the Parquet body",
                    max_bytes: int = MAX_PARQUET_EXPANDED_BYTES) -> list[dict[str, Any]]:
    """Rows of a Parquet body as records, refused before decoding when too many or too big.

    The footer's row count and uncompressed sizes are checked first (413, like a
    too-big JSON or CSV body); the data is then decoded a batch at a time and
    stopped as soon as it outgrows ``max_bytes``, in case the footer lies.
    Anything pyarrow cannot read is 422.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    def unreadable(exc: Exception) -> UnprocessableInput:
        return UnprocessableInput(f"{what} cannot be read as Parquet: {exc}"[:500],
                                  detail={"reason": "unreadable"})

    def too_many(rows: int) -> TooLarge:
        return TooLarge(f"at most {max_rows} rows a request; score bigger files with "
                        "`appliance predict`", detail={"rows": rows})

    def too_big() -> TooLarge:
        return TooLarge(f"{what} expands to more than {max_bytes} bytes",
                        detail={"limit_bytes": max_bytes})

    try:
        parquet = pq.ParquetFile(pa.BufferReader(body))
        meta = parquet.metadata
        declared = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    except Exception as exc:  # pyarrow raises several kinds for a bad file
        raise unreadable(exc) from exc
    if meta.num_rows > max_rows:
        raise too_many(meta.num_rows)
    if declared > max_bytes:
        raise too_big()
    batches = []
    rows = size = 0
    try:
        for batch in parquet.iter_batches(batch_size=max(1, min(max_rows, 65_536))):
            rows, size = rows + batch.num_rows, size + batch.nbytes
            if rows > max_rows:
                raise too_many(rows)
            if size > max_bytes:
                raise too_big()
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=parquet.schema_arrow)
    except InvalidInput:
        raise
    except Exception as exc:
        raise unreadable(exc) from exc
    records: list[dict[str, Any]] = table.to_pylist()
    return records
