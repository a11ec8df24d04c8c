"""The engine-specific SQL: one place for what DuckDB and PostgreSQL spell differently.

Everything else in ``appliance.store`` is portable SQL. A query module asks
``of(session)`` for the engine behind a session and splices the fragment it
needs (``arg_max``, ``epoch``, a JSON field as text, percentiles, ...) into its
statement, or calls the engine's bulk append. ``Duck`` holds the spellings the
embedded store has always used, unchanged; ``Postgres`` holds their
PostgreSQL 13+ equivalents (docs/scale-out.md, "What differs").
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Double, String, cast, func, literal, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

# The key of the advisory lock that serialises the allocations and appends a
# single writer used to serialise (audit chain, version numbers, names), and of
# the one that serialises migrators. Any 64-bit constants will do; fixed forever.
WRITERS_LOCK = 0x617070_5F7772  # "app_wr"
MIGRATIONS_LOCK = 0x617070_5F6D67  # "app_mg"
PARTS_LOCK = 0x617070_5F7074  # "app_pt": compactions and rewrites of the log parts


class Duck:
    """The embedded store: DuckDB, one writer process."""

    name = "duckdb"
    shared = False  # one writer process: in-process locks suffice
    schema = "'main'"

    # -- fragments for text() SQL ------------------------------------------------

    def json_scalar(self, expr: str) -> str:
        """A JSON scalar as text (a string unquoted, a number as written)."""
        return f"json_extract_string({expr}, '$')"

    def json_key(self, expr: str, key_sql: str) -> str:
        """The text of field ``key_sql`` (a SQL string expression) of a JSON object."""
        return f"json_extract_string({expr}, '$.\"' || {key_sql} || '\"')"

    def json_path(self, expr: str, param: str) -> str:
        """A field by a bound parameter made by :meth:`json_path_value`."""
        return f"json_extract_string({expr}, :{param})"

    def json_path_value(self, key: str) -> str:
        import json

        return "$." + json.dumps(key)  # JSONPath with a quoted key

    def not_float(self, expr: str) -> str:
        """True when a JSON value is no floating-point number (a class label)."""
        return f"json_type({expr}) <> 'DOUBLE'"

    def try_double(self, expr: str) -> str:
        return f"TRY_CAST({expr} AS DOUBLE)"

    def arg_max(self, value: str, by: str) -> str:
        return f"arg_max({value}, {by})"

    def first_distinct(self, expr: str, n: int) -> str:
        return f"list(DISTINCT {expr})[1:{n}]"

    def epoch(self, expr: str) -> str:
        return f"epoch({expr})"

    def percentiles(self, expr: str, qs: tuple[float, ...]) -> str:
        return f"quantile_cont({expr}, [{', '.join(map(str, qs))}])"

    def hash(self, expr: str) -> str:
        return f"hash({expr})"

    def in_list(self, expr: str, param: str) -> str:
        return f"list_contains(:{param}, {expr})"

    # -- SQLAlchemy expressions ----------------------------------------------------

    def json_text(self, column: Any, key: str) -> ColumnElement[Any]:
        """``column``'s field ``key`` as text (the key was checked: no quote in it)."""
        return func.json_extract_string(column, f'$."{key}"')

    def json_double(self, column: Any, key: str) -> ColumnElement[Any]:
        return cast(self.json_text(column, key), Double)

    # -- statements ------------------------------------------------------------------

    checkpoint: str | None = "CHECKPOINT"

    def serialize_writers(self, s: Session) -> None:
        """Hold off other writers until this transaction ends (one process: nothing to do)."""

    def append(self, s: Session, table: str, batch: Any,
               constants: dict[str, tuple[str, str]] | None = None) -> None:
        """Append an Arrow table in one statement (DuckDB scans it in place).

        ``constants``: column -> (SQL literal, type) filled for every row.
        """
        conn: Any = s.connection().connection.driver_connection
        name = f"batch_{uuid.uuid4().hex}"
        conn.register(name, batch)
        try:
            extra = constants or {}
            columns = ", ".join([*extra, *batch.column_names])
            values = ", ".join([*(f"{lit}::{typ}" for lit, typ in extra.values()),
                                *batch.column_names])
            conn.execute(f"INSERT INTO {table} ({columns}) SELECT {values} FROM {name}")
        finally:
            conn.unregister(name)


class Postgres(Duck):
    """Metadata on PostgreSQL: several appliance processes write at once."""

    name = "postgresql"
    shared = True
    schema = "current_schema()"
    checkpoint = None  # PostgreSQL checkpoints on its own

    def json_scalar(self, expr: str) -> str:
        return f"({expr} #>> '{{}}')"

    def json_key(self, expr: str, key_sql: str) -> str:
        return f"({expr} ->> {key_sql})"

    def json_path(self, expr: str, param: str) -> str:
        return f"({expr} ->> CAST(:{param} AS TEXT))"

    def json_path_value(self, key: str) -> str:
        return key

    def not_float(self, expr: str) -> str:
        # DuckDB's json_type tells DOUBLE from BIGINT; here a number with a '.' or an exponent
        return f"NOT (json_typeof({expr}) = 'number' AND ({expr} #>> '{{}}') ~ '[.eE]')"

    def try_double(self, expr: str) -> str:
        return (f"(CASE WHEN {expr} ~ '^\\s*[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?\\s*$' "
                f"THEN CAST({expr} AS DOUBLE PRECISION) END)")

    def arg_max(self, value: str, by: str) -> str:
        return f"(array_agg({value} ORDER BY {by} DESC))[1]"

    def first_distinct(self, expr: str, n: int) -> str:
        return f"(array_agg(DISTINCT {expr}))[1:{n}]"

    def epoch(self, expr: str) -> str:
        return f"extract(epoch FROM {expr})"

    def percentiles(self, expr: str, qs: tuple[float, ...]) -> str:
        return f"percentile_cont(ARRAY[{', '.join(map(str, qs))}]) WITHIN GROUP (ORDER BY {expr})"

    def hash(self, expr: str) -> str:
        return f"md5({expr})"

    def in_list(self, expr: str, param: str) -> str:
        return f"{expr} = ANY(:{param})"

    def json_text(self, column: Any, key: str) -> ColumnElement[Any]:
        return column.op("->>", return_type=String)(literal(key, String))  # type: ignore[no-any-return]

    def serialize_writers(self, s: Session) -> None:
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITERS_LOCK})

    def append(self, s: Session, table: str, batch: Any,
               constants: dict[str, tuple[str, str]] | None = None) -> None:
        """Append through ``COPY ... FROM STDIN`` (one round trip per batch)."""
        conn: Any = s.connection().connection.driver_connection
        extra = {k: lit.strip("'") for k, (lit, _typ) in (constants or {}).items()}
        columns = [*extra, *batch.column_names]
        fixed = tuple(extra.values())
        with conn.cursor() as cur, cur.copy(
                f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in zip(*(batch.column(c).to_pylist() for c in batch.column_names),
                           strict=True):
                copy.write_row(fixed + row)


DUCK = Duck()
POSTGRES = Postgres()


def of(s: Session | Connection) -> Duck:
    """The engine behind a session or connection."""
    bind = s.get_bind() if isinstance(s, Session) else s
    return POSTGRES if bind.dialect.name == "postgresql" else DUCK


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgresql://", "postgresql+psycopg://",
                                              "postgres://"))


def sqlalchemy_url(url: str) -> str:
    """A PostgreSQL URL for SQLAlchemy with the psycopg (3) driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    raise ValueError(f"not a PostgreSQL URL: {url}")
