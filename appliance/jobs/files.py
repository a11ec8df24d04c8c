"""Job files on disk: read, fingerprint and validate every ``*.yaml``/``*.yml`` in the jobs folder.

An invalid file is reported (path, line, message), never fatal; a changed
fingerprint (size, mtime, sha256) is what makes the scheduler reload a file.
A valid file is parsed here, once: its ``JobSpec`` is what the scheduler, the
loop and the training service carry from then on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.domain.jobs import JobFile, JobFileError
from appliance.errors import ApplianceError

if TYPE_CHECKING:
    from appliance.train.spec import JobSpec

MAX_JOB_FILE_BYTES = 1_000_000


@dataclass
class LoadedFile:
    """One job file as the scheduler last read it."""

    path: Path
    stat: str  # size and mtime: a cheap "did it change?"
    digest: str = ""  # sha256 of the bytes: "did the content change?"
    text: str = ""
    spec: JobSpec | None = None  # parsed once, when valid
    error: JobFileError | None = None
    jobs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def public(self) -> JobFile:
        return JobFile(path=str(self.path), name=self.path.name, ok=self.ok, error=self.error,
                       jobs=list(self.jobs))


def scan(folder: Path) -> dict[Path, str]:
    """Every job file in ``folder`` (not recursive, no hidden files) -> a cheap fingerprint."""
    out: dict[Path, str] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix not in (".yaml", ".yml"):
            continue
        try:
            st = path.stat()
        except OSError:
            continue
        if path.is_file():
            out[path] = f"{st.st_size}:{st.st_mtime_ns}"
    return out


def load(path: Path, stat: str) -> LoadedFile:
    """Read and validate one job file; the error (if any) names the line and field."""
    from appliance.train.spec import parse_job

    job = LoadedFile(path=path, stat=stat)
    try:
        if path.is_symlink() or not path.is_file():
            raise _refusal("a job file must be a regular file, not a link")
        data = path.read_bytes()
        if len(data) > MAX_JOB_FILE_BYTES:
            raise _refusal("a job file is at most 1 MB")
        job.text = data.decode("utf-8")
        job.digest = hashlib.sha256(data).hexdigest()
        job.spec = parse_job(job.text, check_params=False)
    except UnicodeDecodeError:
        job.error = JobFileError(message="a job file must be UTF-8 text", line=None, field=None)
    except ApplianceError as exc:
        detail = exc.detail if isinstance(exc.detail, dict) else {}
        job.error = JobFileError(message=exc.message, line=detail.get("line"),
                                 field=detail.get("field"))
    except OSError as exc:
        job.error = JobFileError(message=f"cannot read the file: {exc.strerror}", line=None,
                                 field=None)
    return job


def _refusal(message: str) -> ApplianceError:
    from appliance.errors import InvalidInput

    return InvalidInput(message)
