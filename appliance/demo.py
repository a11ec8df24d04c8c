"""Demo data: a deterministic synthetic customer-churn table and an inbox feeder.

``appliance init --demo`` (and ``up --demo``) calls :func:`seed_home`, which
copies the example jobs, writes ``samples/customers.csv`` and drops a first
batch of customers into the inbox once. ``up --demo`` then runs a
:class:`DemoFeeder` that drops a new batch into ``inbox/customers/`` every so
often, the way an upstream system would. Files are written under a hidden
``.part`` name and renamed into place, so the inbox watcher never sees half a
file.

Only the standard library, numpy and polars are imported at module level.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from appliance.durable import fsync_dir

if TYPE_CHECKING:
    from appliance.config import Settings

log = logging.getLogger(__name__)

PLANS = ("basic", "plus", "pro")
REGIONS = ("north", "south", "east", "west")
GENDERS = ("female", "male")

# Monthly charge band per plan: (low, high) before noise.
_PLAN_CHARGES = {"basic": (20.0, 45.0), "plus": (45.0, 75.0), "pro": (75.0, 115.0)}
_TOTAL_NULL_RATE = 0.02
# customer_id = 1 + (seq * _ID_MULTIPLIER + _ID_OFFSET) mod _ID_PRIME: a bijection on
# [0, _ID_PRIME), so distinct sequence numbers give distinct 7-digit ids.
_ID_PRIME = 9_999_991
_ID_MULTIPLIER = 7_368_787
_ID_OFFSET = 1_234_567

SAMPLE_ROWS = 1000
SAMPLE_SEED = 7

SCHEMA: dict[str, type[pl.DataType]] = {
    "customer_id": pl.Int64,
    "age": pl.Int64,
    "tenure_months": pl.Int64,
    "monthly_charges": pl.Float64,
    "total_charges": pl.Float64,
    "plan": pl.String,
    "region": pl.String,
    "gender": pl.String,
    "churned": pl.Int64,
}


def customer_ids(start_id: int, n: int) -> np.ndarray:
    """The ids of customers ``start_id .. start_id + n - 1`` (sequence numbers).

    Ids are scattered over 1..9,999,991 rather than counted up: a contract
    inferred from the first file gets ``in_range(0, ~2 * max)`` on
    ``customer_id``, which every later customer then passes; sequential ids
    would outgrow the range after a couple of batches.
    """
    if start_id < 0 or start_id + n > _ID_PRIME:
        raise ValueError(f"sequence numbers must lie in [0, {_ID_PRIME})")
    seq = np.arange(start_id, start_id + n, dtype=np.int64)
    return 1 + (seq * _ID_MULTIPLIER + _ID_OFFSET) % _ID_PRIME


def make_customers(n: int, *, seed: int, start_id: int = 1) -> pl.DataFrame:
    """``n`` synthetic customers; the same ``(n, seed, start_id)`` gives the same frame.

    ``start_id`` is the sequence number of the first customer; ``customer_id``
    is derived from it by :func:`customer_ids`, so frames with disjoint
    sequence ranges have disjoint ids. ``churned`` (0/1) is more likely for
    short tenure, high monthly charges and the ``basic`` plan, so a model has
    something to learn. ``total_charges`` is null for about 2% of rows, as a
    real billing export would be.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)

    age = rng.integers(18, 91, size=n)
    tenure = rng.integers(0, 73, size=n)
    plan_idx = rng.choice(len(PLANS), size=n, p=[0.5, 0.3, 0.2])
    lows = np.array([_PLAN_CHARGES[p][0] for p in PLANS])[plan_idx]
    highs = np.array([_PLAN_CHARGES[p][1] for p in PLANS])[plan_idx]
    monthly = np.round(lows + rng.random(n) * (highs - lows), 2)
    # Past bills vary a little around today's price.
    total = np.round(monthly * tenure * rng.uniform(0.95, 1.05, size=n), 2)
    total_missing = rng.random(n) < _TOTAL_NULL_RATE
    region_idx = rng.integers(0, len(REGIONS), size=n)
    gender_idx = rng.integers(0, len(GENDERS), size=n)

    logit = (
        0.4
        - 0.06 * tenure
        + 0.035 * (monthly - 60.0)
        + 0.5 * (plan_idx == 0)
        - 0.01 * (age - 50)
        + rng.normal(0.0, 0.5, size=n)
    )
    churned = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    frame = pl.DataFrame(
        {
            "customer_id": customer_ids(start_id, n),
            "age": age.astype(np.int64),
            "tenure_months": tenure.astype(np.int64),
            "monthly_charges": monthly.astype(np.float64),
            "total_charges": total.astype(np.float64),
            "plan": np.array(PLANS)[plan_idx].tolist(),
            "region": np.array(REGIONS)[region_idx].tolist(),
            "gender": np.array(GENDERS)[gender_idx].tolist(),
            "churned": churned,
        },
        schema=SCHEMA,
    )
    return frame.with_columns(
        pl.when(pl.Series(total_missing))
        .then(None)
        .otherwise(pl.col("total_charges"))
        .alias("total_charges")
    )


def write_demo_file(
    inbox: Path, dataset: str, df: pl.DataFrame, *, name: str | None = None
) -> Path:
    """Drop ``df`` as CSV into ``inbox/<dataset>/`` atomically and return the final path.

    The bytes go to a hidden ``.<name>.csv.part`` file (which the watcher
    ignores), are fsynced, then renamed into place: a reader sees either no
    file or the whole file. ``name`` (without ``.csv``) defaults to the
    dataset and a UTC timestamp.
    """
    from appliance.domain.names import check_dataset_name, check_file_name

    check_dataset_name(dataset)
    stem = name if name is not None else f"{dataset}-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
    final_name = check_file_name(f"{stem}.csv")
    folder = inbox / dataset
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / final_name
    if final.exists():
        raise FileExistsError(f"{final} already exists")
    tmp = folder / f".{final_name}.part"
    try:
        with tmp.open("wb") as fh:
            df.write_csv(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(folder)
    return final




def example_jobs_dir() -> Path | None:
    """The shipped example jobs: ``appliance/_jobs`` in the wheel, ``jobs/`` in a checkout."""
    pkg = Path(__file__).resolve().parent
    for candidate in (pkg / "_jobs", pkg.parent / "jobs"):
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    return None


def seed_home(settings: Settings, *, demo: bool) -> Iterator[str]:
    """Prepare ``settings.home``; with ``demo``, seed it. Yields one line per step.

    Idempotent: example jobs and the sample are only written where missing (a
    user's edits stay), and the first demo batch is dropped into the inbox
    only once (``.demo-seeded`` in the home records it). The first batch is
    not ``samples/customers.csv`` itself, so dropping the sample by hand, as
    the README's tour does, makes a new version rather than a duplicate.
    """
    settings.ensure_dirs()
    yield f"home: {settings.home.resolve()}"
    if not demo:
        return

    jobs_dir = settings.resolved_jobs_dir
    examples = example_jobs_dir()
    if examples is None:
        yield "jobs: no example jobs are installed; skipped"
    else:
        jobs_dir.mkdir(parents=True, exist_ok=True)
        for src in sorted(examples.glob("*.yaml")):
            dst = jobs_dir / src.name
            if dst.exists():
                yield f"jobs: {dst} already exists; kept"
            else:
                shutil.copyfile(src, dst)
                yield f"jobs: wrote {dst}"

    sample = settings.home / "samples" / "customers.csv"
    if sample.exists():
        yield f"sample: {sample} already exists; kept"
    else:
        sample.parent.mkdir(parents=True, exist_ok=True)
        df = make_customers(SAMPLE_ROWS, seed=SAMPLE_SEED)
        write_demo_file(settings.home, "samples", df, name="customers")
        yield f"sample: wrote {sample}"

    marker = settings.home / ".demo-seeded"
    if marker.exists():
        yield "demo data: already seeded"
        return
    first = write_demo_file(
        settings.inbox_dir,
        "customers",
        make_customers(SAMPLE_ROWS, seed=1, start_id=10_000),
        name="customers-initial",
    )
    marker.write_text(f"{datetime.now(UTC).isoformat()}\n")
    yield f"demo data: dropped {first}"


DEMO_BATCHES = 6          # then the stream stops: the tour's rollback and promotes stay put
DEMO_INTERVAL_S = 30.0


class DemoFeeder:
    """A daemon thread that drops ``batch_rows`` new customers every ``interval_s``, for
    ``max_batches`` batches in all (None: for ever).

    The stream is bounded on purpose: each batch retrains the demo job and may move the
    champion, which a person walking the README tour (rolling back, promoting by hand,
    acknowledging alerts) should not have to race. A restarted demo carries on from the
    batch it reached, so a home that had its batches gets no more.

    Batch ``k`` is ``make_customers(batch_rows, seed=seed + k, start_id=start_id
    + k * batch_rows)`` written as ``<dataset>-batch<k>.csv``: customer ids
    never repeat and the same batch number always gives the same bytes. The
    next batch number is kept in a hidden ``inbox/.demo-feeder-<dataset>.json``
    (the watcher skips hidden entries), so a restarted demo carries on instead
    of re-dropping batches the store would quarantine as duplicates;
    ``first_batch`` overrides it. A failed drop is logged and the next tick
    moves on to the next batch; the thread never dies of it.
    """

    def __init__(
        self,
        inbox: Path,
        *,
        dataset: str = "customers",
        interval_s: float = DEMO_INTERVAL_S,
        batch_rows: int = 500,
        seed: int = 1000,
        start_id: int = 100_000,
        first_batch: int | None = None,
        max_batches: int | None = DEMO_BATCHES,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if max_batches is not None and max_batches < 0:
            raise ValueError(f"max_batches must be >= 0, got {max_batches}")
        self.max_batches = max_batches
        self.inbox = inbox
        self.dataset = dataset
        self.interval_s = interval_s
        self.batch_rows = batch_rows
        self.seed = seed
        self.start_id = start_id
        self.state_file = inbox / f".demo-feeder-{dataset}.json"
        self.next_batch = first_batch if first_batch is not None else self._load_state()
        self.dropped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("DemoFeeder already started")
        self._thread = threading.Thread(target=self._loop, name="demo-feeder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def drop_once(self) -> Path:
        """Write the next batch now and return its path."""
        k = self.next_batch
        # Advance first: a batch that fails (its name taken, say) is skipped, not retried forever.
        self.next_batch = k + 1
        self._save_state()
        df = make_customers(
            self.batch_rows, seed=self.seed + k, start_id=self.start_id + k * self.batch_rows
        )
        path = write_demo_file(self.inbox, self.dataset, df, name=f"{self.dataset}-batch{k:05d}")
        self.dropped += 1
        return path

    def _load_state(self) -> int:
        try:
            value = json.loads(self.state_file.read_text())["next_batch"]
        except (OSError, ValueError, KeyError, TypeError):
            return 0
        return value if isinstance(value, int) and value >= 0 else 0

    def _save_state(self) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        tmp.write_text(json.dumps({"next_batch": self.next_batch}))
        os.replace(tmp, self.state_file)

    @property
    def exhausted(self) -> bool:
        """Every batch of the bounded stream has been dropped."""
        return self.max_batches is not None and self.next_batch >= self.max_batches

    def _loop(self) -> None:
        if self.exhausted:
            log.info("demo feeder: all %d batches were dropped before; no more demo data",
                     self.max_batches)
            return
        while not self._stop.wait(self.interval_s):
            try:
                path = self.drop_once()
            except Exception:
                log.exception("demo feeder could not drop a batch into %s", self.inbox)
            else:
                log.info("demo feeder dropped %s", path.name)
            if self.exhausted:
                log.info("demo feeder: dropped its %d batches; the demo data stops here",
                         self.max_batches)
                return
