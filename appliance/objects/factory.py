"""Choosing the object store from the settings (``APPLIANCE_OBJECT_STORE``)."""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from appliance.config import Settings
from appliance.errors import InvalidInput
from appliance.objects.base import ObjectStore, check_key
from appliance.objects.cache import ObjectCache
from appliance.objects.local import LocalObjectStore

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` as (bucket, prefix); refused with the reason otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not _BUCKET.fullmatch(parts.netloc or ""):
        raise InvalidInput(f"APPLIANCE_OBJECT_STORE must be s3://bucket/prefix, got {url[:100]!r}",
                           detail={"field": "object_store"})
    if parts.query or parts.fragment or "@" in url:
        raise InvalidInput("APPLIANCE_OBJECT_STORE takes no credentials, query or fragment: "
                           "use APPLIANCE_S3_ACCESS_KEY_ID / APPLIANCE_S3_SECRET_ACCESS_KEY",
                           detail={"field": "object_store"})
    prefix = parts.path.strip("/")
    if prefix:
        check_key(prefix)
    return parts.netloc, prefix


def open_object_store(settings: Settings) -> ObjectStore:
    """The home folder (no setting), or the S3-compatible bucket it names."""
    if not settings.object_store:
        return LocalObjectStore(settings.home)
    import pyarrow.fs as pafs

    from appliance.objects.s3 import S3ObjectStore

    bucket, prefix = parse_s3_url(settings.object_store)
    endpoint = settings.s3_endpoint
    kwargs: dict[str, object] = {"region": settings.s3_region or os.environ.get(
        "AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))}
    if endpoint:
        split = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs.update(endpoint_override=split.netloc, scheme=split.scheme)
        # A private S3-compatible server: never ask the EC2 metadata service for anything.
        os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    if settings.s3_access_key_id and settings.s3_secret_access_key:
        kwargs.update(access_key=settings.s3_access_key_id,
                      secret_key=settings.s3_secret_access_key.get_secret_value())
    fs = pafs.S3FileSystem(**kwargs)  # type: ignore[arg-type]
    cache_dir = settings.object_cache_dir or settings.home / "cache" / "objects"
    cache = ObjectCache(cache_dir, max_bytes=settings.object_cache_mb * 1024 * 1024,
                        namespace=settings.object_store)
    return S3ObjectStore(fs, bucket, prefix, cache, endpoint=endpoint)
