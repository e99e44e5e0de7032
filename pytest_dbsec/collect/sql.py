"""Run a read-only SQL query on a SQL warehouse through the Statement Execution API.

One generic runner for every query the tool sends (the audit log today; ``system.information_schema``
next). What it guarantees:

* values are always bound as named parameters (``:name``); principal names and the like are hostile input
  and never become SQL text. Marker names are chosen by our code and must be plain identifiers;
* PENDING/RUNNING statements are polled with backoff within a bounded total time; a statement still
  running then is cancelled (our own statement) and reported;
* every chunk is read and the row count checked against the manifest, so a short answer is never taken
  for a complete one;
* cells (strings or null on the wire) become Python values by the manifest's column type;
* FAILED, CANCELED, CLOSED and time-outs raise :class:`StatementFailed`, whose message names the warehouse,
  the state, the error code and Databricks' message: ``collect.describe_failure`` shows it as the reason.

Calls go through the SDK client, so a section's CallLog records them like every other call.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from databricks.sdk.service.sql import (
    Disposition,
    ExecuteStatementRequestOnWaitTimeout,
    Format,
    StatementParameterListItem,
    StatementState,
)

_MARKER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INTS = {"LONG", "INT", "SHORT", "BYTE"}
_FLOATS = {"DOUBLE", "FLOAT"}
_JSON = {"STRUCT", "MAP", "ARRAY"}
DEFAULT_TIMEOUT_S = 300.0


class StatementFailed(Exception):
    """A statement that did not succeed; the message is the reason shown to the user."""


class InlineLimitExceeded(StatementFailed):
    """The statement's result is over the INLINE disposition's cap (25 MiB): Databricks fails it with
    error_code BAD_REQUEST and "Inline byte limit exceeded. Statements executed with disposition=INLINE can
    have a result size of at most 26214400 bytes. ..." (as users report it, e.g. databrickslabs/ucx#3447,
    #4675). The same statement over fewer rows may succeed."""


def is_inline_limit(message: str) -> bool:
    m = (message or "").lower()
    return "inline byte limit" in m or ("disposition=inline" in m and "result size" in m)


@dataclass(frozen=True)
class Param:
    """A bound value and its SQL type (STRING, BIGINT, TIMESTAMP, ...)."""

    value: Any
    type: str = "STRING"


@dataclass
class QueryResult:
    statement_id: str
    columns: list[dict]  # name, type_name
    rows: list[dict]  # column name -> Python value
    truncated: bool  # row_limit cut the result


def run_query(w, warehouse_id: str, statement: str, params: Mapping[str, Any] | None = None, *,
              row_limit: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
              sleep: Callable[[float], None] = time.sleep) -> QueryResult:
    """Execute ``statement`` on ``warehouse_id`` and return every row. Raise StatementFailed."""
    items = []
    for name, p in (params or {}).items():
        if not _MARKER.match(name):
            raise ValueError(f"parameter marker names are identifiers chosen by our code, not {name!r}")
        p = p if isinstance(p, Param) else Param(p)
        value = None if p.value is None else str(p.value)
        items.append(StatementParameterListItem(name=name, value=value, type=p.type))
    where = f"SQL warehouse {warehouse_id}"
    deadline = time.monotonic() + timeout_s
    api = w.statement_execution
    resp = api.execute_statement(statement=statement, warehouse_id=warehouse_id, parameters=items or None,
                                 disposition=Disposition.INLINE, format=Format.JSON_ARRAY,
                                 wait_timeout="10s", on_wait_timeout=ExecuteStatementRequestOnWaitTimeout.CONTINUE,
                                 row_limit=row_limit)
    sid = resp.statement_id
    delay = 0.05
    while _state(resp) in (StatementState.PENDING, StatementState.RUNNING):
        if time.monotonic() + delay > deadline:
            try:
                api.cancel_execution(sid)
            finally:
                raise StatementFailed(f"{where}: statement {sid} still {_state(resp).value} after {timeout_s:.0f}s; "
                                      "cancelled (the warehouse may be starting or overloaded)")
        sleep(delay)
        delay = min(delay * 2, 2.0)
        resp = api.get_statement(sid)
    state = _state(resp)
    if state != StatementState.SUCCEEDED:
        err = resp.status.error if resp.status else None
        code = err.error_code.value if err and err.error_code else "no error code"
        message = err.message if err and err.message else "no message"
        error = InlineLimitExceeded if state == StatementState.FAILED and is_inline_limit(message) else StatementFailed
        raise error(f"{where}: statement {state.value if state else 'without a state'}: {code}: {message}")
    manifest = resp.manifest
    if manifest is None or manifest.schema is None:
        raise StatementFailed(f"{where}: statement {sid} SUCCEEDED without a result manifest")
    columns = [{"name": c.name, "type_name": c.type_name.value if c.type_name else "STRING"}
               for c in sorted(manifest.schema.columns or [], key=lambda c: c.position or 0)]
    raw: list[list] = []
    chunk = resp.result
    while chunk is not None:
        raw.extend(chunk.data_array or [])
        if chunk.next_chunk_index is None:
            break
        chunk = api.get_statement_result_chunk_n(sid, chunk.next_chunk_index)
    expected = manifest.total_row_count or 0
    if len(raw) != expected:
        raise StatementFailed(f"{where}: statement {sid} returned {len(raw)} rows, its manifest says {expected}")
    rows = [{c["name"]: _value(cell, c["type_name"]) for c, cell in zip(columns, r)} for r in raw]
    return QueryResult(sid, columns, rows, bool(manifest.truncated))


def _state(resp):
    return resp.status.state if resp.status else None


def _value(cell, type_name: str):
    if cell is None:
        return None
    if type_name in _INTS:
        return int(cell)
    if type_name in _FLOATS:
        return float(cell)
    if type_name == "BOOLEAN":
        return cell == "true"
    if type_name in _JSON:
        return json.loads(cell)
    return cell  # STRING, TIMESTAMP, DATE, DECIMAL (kept exact as text), ...
