"""The object store: one interface for the files hosts share (issue 13 §3).

Dataset snapshots, ONNX and run artifacts live under keys (``datasets/<name>/<sha>.parquet``,
``artifacts/ab/cd/<sha>``); :func:`open_object_store` picks where those keys live from the
settings: the home folder (the default, exactly today's paths) or an S3-compatible bucket
(``APPLIANCE_OBJECT_STORE=s3://bucket/prefix``), read through a bounded local cache.
"""

from __future__ import annotations

from appliance.objects.base import ObjectInfo, ObjectStore, Stored, check_key, sha256_file
from appliance.objects.factory import open_object_store
from appliance.objects.local import LocalObjectStore

__all__ = ["LocalObjectStore", "ObjectInfo", "ObjectStore", "Stored", "check_key",
           "open_object_store", "sha256_file"]
