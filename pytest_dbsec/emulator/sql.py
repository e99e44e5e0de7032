"""Statement Execution API over a small embedded SQL engine (stdlib sqlite3).

Databricks runs SQL on a warehouse; the emulator runs the read-only subset our tool sends on an in-memory
sqlite database holding the *registered tables* (``TABLES``): each is a three-part name, a typed column
list and a function that builds its rows from the tenant for the calling workspace:
``system.access.audit`` (from ``account.audit_log``, here) and the ``system.information_schema`` views
(``information_schema.py``).

The engine translates Databricks SQL to sqlite token by token and refuses anything it does not know how to
translate faithfully: such a statement ends FAILED with a message naming the construct. A wrong answer
would be worse than no answer, so, e.g., ``/`` (double division in Databricks, integer division in sqlite)
and unknown functions are refused, ``LIKE`` is made case-sensitive, and double-quoted text is a string
literal as in Databricks.

Understood: ``SELECT``/``WITH`` queries over registered tables (three-part names, or shorter names with the
request's ``catalog``/``schema``), struct field access on struct columns (``user_identity.email``, stored
as JSON), map access with a string key (``request_params['key']``), named parameter markers (``:name``,
bound by sqlite, never spliced into the text), ``current_timestamp()``, ``current_date()``,
``current_timestamp() - INTERVAL n DAYS|HOURS|MINUTES``, a fixed list of functions, and ``current_user()``
/ ``is_account_group_member(name)`` about the caller.

Statement life cycle (``tenant.sql``): a statement needs ``pending_polls`` GETs in PENDING, then
``running_polls`` GETs in RUNNING, before it is SUCCEEDED; so tests can make a client poll. Results are
split into chunks of ``chunk_rows`` rows; a result over ``inline_limit_bytes`` (25 MiB; a tenant may set it
lower so a test reaches it cheaply; bytes are those of the JSON rows) FAILS, as INLINE results do on
Databricks: state FAILED, ``error_code`` BAD_REQUEST, message "Inline byte limit exceeded. ...".
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
import sqlite3
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import timeparse
from .checker import Checker
from .identity import ACCOUNT_USERS, Directory
from .objects import find_object
from .routes_workspace import _acl
from .routing import ApiError, Ctx, RouteTable, bad_request, not_found

ROUTES = RouteTable()
route = ROUTES.route

# inline_limit_bytes: an INLINE result may hold at most 25 MiB (sdk docstring of StatementExecutionAPI)
SQL_DEFAULTS = {"pending_polls": 0, "running_polls": 0, "chunk_rows": 10000, "inline_limit_bytes": 25 * 1024 * 1024}
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELED", "CLOSED")


class SqlError(Exception):
    """A statement that fails: served as status FAILED with this error code and message."""

    def __init__(self, code: str, message: str, sql_state: str = "42000"):
        super().__init__(message)
        self.code, self.message, self.sql_state = code, message, sql_state


class InlineLimit(Exception):
    """An INLINE result over ``inline_limit_bytes``: FAILED with BAD_REQUEST, "Inline byte limit exceeded"."""

    def __init__(self, limit: int):
        super().__init__(limit)
        self.limit = limit


# ------------------------------------------------------------------------------------ registered tables


@dataclass(frozen=True)
class Column:
    name: str
    type_name: str  # the manifest's type_name: STRING, LONG, INT, TIMESTAMP, DATE, STRUCT, MAP, BOOLEAN
    type_text: str
    fields: Tuple[Tuple[str, str], ...] = ()  # STRUCT: (field, type_name); MAP: (("value", type_name),)


@dataclass(frozen=True)
class Table:
    name: str  # catalog.schema.table, lower case
    columns: Tuple[Column, ...]
    rows: Callable[[Ctx], List[dict]]  # rows visible from the calling workspace (cells in column order)
    check_access: Callable[[Ctx], None]  # raise SqlError when the caller may not read it


TABLES: Dict[str, Table] = {}


def register(table: Table) -> None:
    TABLES[table.name] = table


def _struct(*fields: Tuple[str, str]) -> str:
    return "STRUCT<" + ", ".join(f"{f}: {t}" for f, t in fields) + ">"


_IDENTITY = (("email", "STRING"), ("subject_name", "STRING"))
_RESPONSE = (("status_code", "INT"), ("error_message", "STRING"), ("result", "STRING"))
_IDENTITY_META = (("run_by", "STRING"), ("run_as", "STRING"), ("acting_resource", "STRING"))
AUDIT_COLUMNS = (
    Column("account_id", "STRING", "STRING"),
    Column("workspace_id", "STRING", "STRING"),
    Column("version", "STRING", "STRING"),
    Column("event_time", "TIMESTAMP", "TIMESTAMP"),
    Column("event_date", "DATE", "DATE"),
    Column("source_ip_address", "STRING", "STRING"),
    Column("user_agent", "STRING", "STRING"),
    Column("session_id", "STRING", "STRING"),
    Column("user_identity", "STRUCT", _struct(*_IDENTITY), _IDENTITY),
    Column("service_name", "STRING", "STRING"),
    Column("action_name", "STRING", "STRING"),
    Column("request_id", "STRING", "STRING"),
    Column("request_params", "MAP", "MAP<STRING, STRING>", (("value", "STRING"),)),
    Column("response", "STRUCT", _struct(*_RESPONSE), _RESPONSE),
    Column("audit_level", "STRING", "STRING"),
    Column("event_id", "STRING", "STRING"),
    Column("identity_metadata", "STRUCT", _struct(*_IDENTITY_META), _IDENTITY_META),
)


def ts_text(ms: int) -> str:
    """A TIMESTAMP cell as the JSON_ARRAY format shows it (UTC, millisecond precision, 'Z')."""
    dt = _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}Z"


def _metastore_of(ctx: Ctx) -> Optional[dict]:
    name = ctx.ws.get("metastore")
    return next((m for m in ctx.account.get("metastores") or [] if m["name"] == name), None)


def _system_schema(ctx: Ctx, schema: str) -> dict:
    """The enabled system schema of the workspace's metastore, or TABLE_OR_VIEW_NOT_FOUND as Databricks says
    when the schema does not exist in the caller's metastore."""
    m = _metastore_of(ctx)
    if m is None:
        raise SqlError("TABLE_OR_VIEW_NOT_FOUND", f"The table or view `system`.`{schema}` cannot be found: the "
                       "workspace has no Unity Catalog metastore.", "42P01")
    for s in m.get("system_schemas") or []:
        if s["schema"] == schema and s.get("state") in ("ENABLE_COMPLETED", "MANAGED"):
            return s
    raise SqlError("TABLE_OR_VIEW_NOT_FOUND", f"The schema `system`.`{schema}` cannot be found: it is not enabled "
                   f"on metastore {m['name']} (system schema state "
                   f"{next((s.get('state') for s in m.get('system_schemas') or [] if s['schema'] == schema), 'absent')}).",
                   "42P01")


def _system_readable(schema: str, table: str) -> Callable[[Ctx], None]:
    """Reading system.<schema>.<table> needs USE_SCHEMA and SELECT on the system schema (granted in the tenant
    on the metastore's ``system_schemas`` entry; directly, through a group, or to ``account users``). USE
    CATALOG on ``system`` is taken as held by every account user, as Databricks grants it [verify]."""

    def check(ctx: Ctx) -> None:
        s = _system_schema(ctx, schema)
        p = ctx.principal
        names = {p.name} | {g.name for g in ctx.state.directory.ancestors(p)} | {ACCOUNT_USERS}
        held = set()
        for g in s.get("grants") or []:
            # a grant may name an SP by display name; the directory gives its wire name
            grantee = {q.name for q in ctx.state.directory.lookup(g["principal"])} or {g["principal"]}
            if grantee & names:
                held.update(g["privileges"])
        if "ALL_PRIVILEGES" in held:
            held.update({"USE_SCHEMA", "SELECT"})
        missing = [x for x in ("USE_SCHEMA", "SELECT") if x not in held]
        if missing:
            raise SqlError("INSUFFICIENT_PERMISSIONS", f"Insufficient privileges: User does not have "
                           f"{' and '.join(missing)} on Schema 'system.{schema}' (needed to read "
                           f"system.{schema}.{table}).", "42501")

    return check


def _audit_rows(ctx: Ctx) -> List[dict]:
    """The account's audit events in the region of the caller's metastore, plus account-level events
    (workspace_id 0), which every region's table holds [verify]."""
    m = _metastore_of(ctx)
    region = m.get("region") if m else None
    regions = {}
    for ws in ctx.account["workspaces"]:
        wm = next((x for x in ctx.account.get("metastores") or [] if x["name"] == ws.get("metastore")), None)
        regions[str(ws["id"])] = wm.get("region") if wm else None
    out = []
    for e in ctx.account.get("audit_log") or []:
        row = e["_row"]
        if row["workspace_id"] == "0" or regions.get(row["workspace_id"]) == region:
            out.append(row)
    return out


register(Table("system.access.audit", AUDIT_COLUMNS, _audit_rows, _system_readable("access", "audit")))


# ------------------------------------------------------------------------------------ tenant: audit_log

AUDIT_KEYS = {"event_time", "workspace", "principal", "service_name", "action_name", "request_params",
              "status_code", "error_message", "result", "source_ip_address", "user_agent", "session_id",
              "run_as", "_row"}


def norm_audit_log(acct: dict, ap: tuple, ck: Checker, directory: Directory, ws_names: dict, now: int) -> None:
    """Validate ``account.audit_log`` and build each event's table row (``_row``)."""
    for i, e in enumerate(ck.mappings(acct, "audit_log", ap)):
        ep = ap + ("audit_log", i)
        ck.mapping(e, ep, AUDIT_KEYS)
        try:
            ms = timeparse.parse_time(e.get("event_time"), now)
        except ValueError as err:
            ck.err(ep + ("event_time",), str(err))
        e["event_time"] = ms
        p = directory.resolve(e.get("principal"), ep + ("principal",), ("user", "sp"))
        ws = e.get("workspace")
        if ws is None:
            ws_id, level = "0", "ACCOUNT_LEVEL"
        elif ws in ws_names:
            ws_id, level = str(ws_names[ws]["id"]), "WORKSPACE_LEVEL"
        else:
            ck.err(ep + ("workspace",), f"unknown workspace {ws!r} (omit it for an account-level event)")
        service = ck.string(e, "service_name", ep)
        action = ck.string(e, "action_name", ep)
        params = e.get("request_params") or {}
        ck.mapping(params, ep + ("request_params",))
        params = {str(k): (None if v is None else str(v)) for k, v in params.items()}
        ck.integer(e, "status_code", ep, default=200)
        run_as = e.get("run_as")
        if run_as is not None:
            run_as = directory.resolve(run_as, ep + ("run_as",), ("user", "sp")).name
        seed = f"{acct['id']}|{i}|{ms}|{p.name}|{action}"
        digest = hashlib.sha256(seed.encode()).hexdigest()
        # user_identity.email holds the userName for users and the application id for service principals
        e["_row"] = {
            "account_id": str(acct["id"]),
            "workspace_id": ws_id,
            "version": "2.0",
            "event_time": ts_text(ms),
            "event_date": ts_text(ms)[:10],
            "source_ip_address": e.get("source_ip_address"),
            "user_agent": e.get("user_agent"),
            "session_id": e.get("session_id"),
            "user_identity": json.dumps({"email": p.name, "subject_name": None}),
            "service_name": service,
            "action_name": action,
            "request_id": e.get("request_id") or f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}",
            "request_params": json.dumps(params),
            "response": json.dumps({"status_code": e["status_code"], "error_message": e.get("error_message"),
                                    "result": e.get("result")}),
            "audit_level": level,
            "event_id": digest[:32],
            "identity_metadata": json.dumps({"run_by": p.name, "run_as": run_as or p.name, "acting_resource": None}),
        }


def norm_sql_settings(tenant: dict, ck: Checker) -> None:
    s = tenant.get("sql") or {}
    ck.mapping(s, ("sql",), set(SQL_DEFAULTS))
    for k, d in SQL_DEFAULTS.items():
        ck.integer(s, k, ("sql",), default=d, minimum=1 if k in ("chunk_rows", "inline_limit_bytes") else 0)
    tenant["sql"] = s


# ------------------------------------------------------------------------------------------ translation

_TOKEN = re.compile(
    r"""(?P<ws>\s+|--[^\n]*|/\*.*?\*/)
      |(?P<str>'(?:[^'\\]|\\.|'')*')
      |(?P<dstr>"(?:[^"\\]|\\.)*")
      |(?P<bq>`(?:[^`]|``)+`)
      |(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[lLdD]?)
      |(?P<param>:[A-Za-z_][A-Za-z0-9_]*)
      |(?P<word>[A-Za-z_][A-Za-z0-9_]*)
      |(?P<op><=>|<>|!=|<=|>=|\|\||::|->|[=<>+\-*/%(),.;\[\]!?:&|^~{}])
    """,
    re.VERBOSE | re.DOTALL,
)

# Keywords passed through as they are (same meaning in Databricks SQL and sqlite).
KEYWORDS = {
    "SELECT", "DISTINCT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "BETWEEN", "GROUP",
    "BY", "ORDER", "ASC", "DESC", "LIMIT", "OFFSET", "AS", "WITH", "JOIN", "LEFT", "INNER", "OUTER", "CROSS", "ON",
    "HAVING", "CASE", "WHEN", "THEN", "ELSE", "END", "UNION", "ALL", "NULLS", "FIRST", "LAST", "TRUE", "FALSE",
    "EXISTS", "ESCAPE", "CAST",
}
# Functions: Databricks name -> sqlite name (same semantics for the arguments our tool passes).
FUNCTIONS = {
    "COUNT": "count", "MAX": "max", "MIN": "min", "SUM": "sum", "COALESCE": "coalesce", "LOWER": "lower",
    "UPPER": "upper", "LENGTH": "length", "TRIM": "trim", "NULLIF": "nullif", "SUBSTRING": "substr",
    "SUBSTR": "substr",
    # about the caller: bound per statement in run_query
    "CURRENT_USER": "current_user", "IS_ACCOUNT_GROUP_MEMBER": "is_account_group_member",
}
CAST_TYPES = {"STRING": "TEXT", "BIGINT": "INTEGER", "INT": "INTEGER", "LONG": "INTEGER"}
INTERVAL_UNITS = {"DAY": 86_400_000, "DAYS": 86_400_000, "HOUR": 3_600_000, "HOURS": 3_600_000,
                  "MINUTE": 60_000, "MINUTES": 60_000}


@dataclass
class Tok:
    kind: str
    text: str

    @property
    def up(self) -> str:
        return self.text.upper()


def tokenize(sql: str) -> List[Tok]:
    out: List[Tok] = []
    pos = 0
    while pos < len(sql):
        m = _TOKEN.match(sql, pos)
        if m is None:
            raise SqlError("PARSE_SYNTAX_ERROR", f"Syntax error at or near {sql[pos:pos + 20]!r}.", "42601")
        pos = m.end()
        if m.lastgroup != "ws":
            out.append(Tok(m.lastgroup, m.group()))
    return out


def _unsupported(what: str) -> SqlError:
    return SqlError("UNSUPPORTED_SQL", f"The emulator's SQL engine cannot run this statement faithfully: {what}. "
                    "(Databricks would; the emulator refuses rather than risk a different answer.)", "0A000")


def _ident(t: Tok) -> str:
    return t.text[1:-1].replace("``", "`") if t.kind == "bq" else t.text


def _quote(name: str) -> str:
    # backticks, not double quotes: sqlite reads an unknown "name" as a string literal (a wrong answer)
    return "`" + name.replace("`", "``") + "`"


@dataclass
class Plan:
    sql: str
    tables: Dict[str, Table]  # sqlite name -> table
    params: Dict[str, Any]
    out_types: List[Optional[Column]] = field(default_factory=list)  # per select item when known


class Translator:
    def __init__(self, sql: str, params: Dict[str, Tuple[str, Any]], catalog: Optional[str], schema: Optional[str], now_ms: int):
        self.toks = tokenize(sql)
        self.params = params  # name -> (type, python value)
        self.catalog, self.schema = catalog, schema
        self.now_ms = now_ms
        self.tables: Dict[str, Table] = {}
        self.used_params: Dict[str, Any] = {}

    def translate(self) -> Plan:
        toks = self.toks
        while toks and toks[-1].text == ";":
            toks.pop()
        if not toks:
            raise SqlError("PARSE_EMPTY_STATEMENT", "Syntax error, unexpected empty statement.", "42601")
        if any(t.text == ";" for t in toks):
            raise SqlError("PARSE_SYNTAX_ERROR", "Only one statement may be executed per request.", "42601")
        if toks[0].up not in ("SELECT", "WITH"):
            raise _unsupported(f"only read statements (SELECT or WITH ... SELECT) are executed, not {toks[0].up}")
        self._find_tables()
        out: List[str] = []
        i = 0
        while i < len(toks):
            i = self._emit(i, out)
        return Plan(" ".join(out), self.tables, self.used_params, self._select_types())

    # Tables first: every dotted name after FROM/JOIN is a table; it must be a registered one.
    def _find_tables(self) -> None:
        self.table_spans: Dict[int, Tuple[int, str]] = {}  # start index -> (end index, sqlite name)
        ctes = set()
        toks = self.toks
        for i, t in enumerate(toks):
            if t.kind in ("word", "bq") and i + 1 < len(toks) and toks[i + 1].up == "AS" and i + 2 < len(toks) and toks[i + 2].text == "(":
                ctes.add(_ident(t).lower())
        for i, t in enumerate(toks):
            if t.up not in ("FROM", "JOIN") or i + 1 >= len(toks):
                continue
            j = i + 1
            if toks[j].text == "(":
                continue  # a subquery
            parts, k = self._dotted(j)
            if not parts:
                raise SqlError("PARSE_SYNTAX_ERROR", f"Syntax error at or near {toks[j].text!r}.", "42601")
            if len(parts) == 1 and parts[0].lower() in ctes:
                continue
            full = self._qualify(parts)
            table = TABLES.get(full)
            if table is None:
                raise SqlError("TABLE_OR_VIEW_NOT_FOUND", f"The table or view "
                               f"`{'`.`'.join(full.split('.'))}` cannot be found. Verify the spelling and correctness "
                               "of the schema and catalog.", "42P01")
            self.tables[full] = table
            self.table_spans[j] = (k, full)

    def _qualify(self, parts: List[str]) -> str:
        parts = [p.lower() for p in parts]
        if len(parts) == 3:
            return ".".join(parts)
        if len(parts) == 2 and self.catalog:
            return ".".join([self.catalog.lower()] + parts)
        if len(parts) == 1 and self.catalog and self.schema:
            return ".".join([self.catalog.lower(), self.schema.lower()] + parts)
        return ".".join(parts)

    def _dotted(self, i: int) -> Tuple[List[str], int]:
        toks = self.toks
        parts: List[str] = []
        while i < len(toks) and toks[i].kind in ("word", "bq"):
            parts.append(_ident(toks[i]))
            if i + 2 < len(toks) and toks[i + 1].text == "." and toks[i + 2].kind in ("word", "bq"):
                i += 2
                continue
            i += 1
            break
        return parts, i

    def _columns(self) -> Dict[str, Column]:
        cols: Dict[str, Column] = {}
        for t in self.tables.values():
            for c in t.columns:
                cols.setdefault(c.name, c)
        return cols

    def _emit(self, i: int, out: List[str]) -> int:
        toks = self.toks
        t = toks[i]
        if i in self.table_spans:
            end, full = self.table_spans[i]
            out.append(_quote(full))
            return end
        if t.kind in ("str", "dstr"):  # "text" is a string literal in Databricks SQL too
            text = _unescape(t.text[1:-1], t.text[0])
            out.append("'" + _canonical_time(text).replace("'", "''") + "'")
            return i + 1
        if t.kind == "num":
            if t.text[-1] in "lLdD":
                raise _unsupported(f"typed numeric literal {t.text}")
            out.append(t.text)
            return i + 1
        if t.kind == "param":
            name = t.text[1:]
            if name not in self.params:
                raise SqlError("UNBOUND_SQL_PARAMETER", f"Found the unbound parameter: {name}. "
                               "Please, fix `args` and provide a mapping of the parameter to a SQL literal.", "42P02")
            key = f"p{len(self.used_params)}"
            self.used_params[key] = self.params[name][1]
            out.append(":" + key)
            return i + 1
        if t.kind == "op":
            if t.text == "/":
                raise _unsupported("the '/' operator (Databricks divides as DOUBLE, sqlite as integers)")
            if t.text in ("::", "->", "[", "]", "{", "}", "?", "&", "|", "^", "~", "!", ":", "<=>"):
                raise _unsupported(f"the operator {t.text!r}")
            out.append(t.text)
            return i + 1
        up = t.up
        if t.kind == "word" and up in KEYWORDS:
            if up == "AS" and i + 1 < len(toks) and toks[i + 1].up in CAST_TYPES and self._in_cast(i):
                out.append("AS " + CAST_TYPES[toks[i + 1].up])
                return i + 2
            out.append(up)
            return i + 1
        # function call?
        if t.kind == "word" and i + 1 < len(toks) and toks[i + 1].text == "(":
            if up in ("CURRENT_TIMESTAMP", "NOW", "CURRENT_DATE"):
                if i + 2 >= len(toks) or toks[i + 2].text != ")":
                    raise _unsupported(f"{t.text} with arguments")
                ms, j = self.now_ms, i + 3
                if up != "CURRENT_DATE" and j + 3 < len(toks) + 1 and j < len(toks) and toks[j].text in ("-", "+") \
                        and j + 1 < len(toks) and toks[j + 1].up == "INTERVAL":
                    if j + 3 >= len(toks) + 1 or toks[j + 2].kind != "num" or toks[j + 3].up not in INTERVAL_UNITS:
                        raise _unsupported("INTERVAL other than 'INTERVAL <integer> DAYS|HOURS|MINUTES'")
                    delta = int(float(toks[j + 2].text) * INTERVAL_UNITS[toks[j + 3].up])
                    ms = ms - delta if toks[j].text == "-" else ms + delta
                    j += 4
                out.append("'" + (ts_text(ms)[:10] if up == "CURRENT_DATE" else ts_text(ms)) + "'")
                return j
            if up not in FUNCTIONS:
                raise SqlError("UNRESOLVED_ROUTINE", f"The emulator's SQL engine does not know the "
                               f"function `{t.text}` (it refuses rather than guess).", "42883")
            out.append(FUNCTIONS[up])
            return i + 1
        if t.kind == "word" and up == "INTERVAL":
            raise _unsupported("INTERVAL other than 'current_timestamp() - INTERVAL <integer> DAYS|HOURS|MINUTES'")
        if t.kind in ("word", "bq"):
            return self._column_ref(i, out)
        raise _unsupported(f"the token {t.text!r}")

    def _in_cast(self, i: int) -> bool:
        depth = 0
        for j in range(i - 1, -1, -1):
            tx = self.toks[j].text
            if tx == ")":
                depth += 1
            elif tx == "(":
                if depth == 0:
                    return j > 0 and self.toks[j - 1].up == "CAST"
                depth -= 1
        return False

    def _column_ref(self, i: int, out: List[str]) -> int:
        """a | alias.col | col.field | alias.col.field | col['key']: struct/map access becomes json_extract."""
        parts, j = self._dotted(i)
        cols = self._columns()
        idx = next((k for k, p in enumerate(parts) if p.lower() in cols), None)
        if idx is None:
            if len(parts) > 2:
                raise SqlError("UNRESOLVED_COLUMN", f"A column or function parameter with name "
                               f"`{'`.`'.join(parts)}` cannot be resolved.", "42703")
            out.append(".".join(_quote(p) for p in parts))
            return j
        col = cols[parts[idx].lower()]
        base = ".".join(_quote(p) for p in parts[:idx] + [col.name])
        fields = parts[idx + 1:]
        if fields:
            if col.type_name != "STRUCT" or len(fields) > 1:
                raise SqlError("INVALID_EXTRACT_BASE_FIELD_TYPE", f"Can't extract a value from {col.name}: need a "
                               f"struct column with one level of fields, got {'.'.join(parts)}.", "42000")
            known = {f for f, _ in col.fields}
            if fields[0].lower() not in known:
                raise SqlError("FIELD_NOT_FOUND", f"No such struct field `{fields[0]}` in "
                               f"{', '.join('`' + f + '`' for f, _ in col.fields)}.", "42704")
            out.append(f"json_extract({base}, '$.{fields[0].lower()}')")
            return j
        if j < len(self.toks) and self.toks[j].text == "[":
            if col.type_name != "MAP":
                raise _unsupported(f"subscript on the {col.type_name} column {col.name}")
            if j + 2 >= len(self.toks) or self.toks[j + 1].kind != "str" or self.toks[j + 2].text != "]":
                raise _unsupported("map access with anything but a string literal key")
            key = _unescape(self.toks[j + 1].text[1:-1], "'")
            path = '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
            out.append("json_extract(" + base + ", '" + path.replace("'", "''") + "')")
            return j + 3
        out.append(base)
        return j

    def _select_types(self) -> List[Optional[Column]]:
        """The declared column behind each item of the outermost select list, when it is one (else None)."""
        toks = self.toks
        # the last top-level SELECT (after a WITH clause's CTEs)
        depth, start = 0, None
        for k, t in enumerate(toks):
            if t.text == "(":
                depth += 1
            elif t.text == ")":
                depth -= 1
            elif depth == 0 and t.up == "SELECT":
                start = k + 1
        if start is None:
            return []
        items: List[List[Tok]] = [[]]
        depth = 0
        for t in toks[start:]:
            if t.text == "(":
                depth += 1
            elif t.text == ")":
                depth -= 1
            if depth == 0 and t.up in ("FROM", "WHERE", "GROUP", "ORDER", "LIMIT", "HAVING", "UNION"):
                break
            if depth == 0 and t.text == ",":
                items.append([])
            else:
                items[-1].append(t)
        cols = self._columns()
        out: List[Optional[Column]] = []
        for it in items:
            if len(it) >= 2 and it[-2].up == "AS":
                it = it[:-2]
            elif len(it) >= 2 and it[-1].kind in ("word", "bq") and it[-2].kind in ("word", "bq", "op") and it[-2].text not in (".",):
                if it[-2].text != "(":
                    it = it[:-1]
            if it and it[0].up == "DISTINCT":
                it = it[1:]
            if [x.text for x in it] == ["*"] and len(self.tables) == 1:
                out.extend(next(iter(self.tables.values())).columns)
                continue
            if len(it) >= 3 and it[0].up in ("MAX", "MIN") and it[1].text == "(" and it[-1].text == ")":
                it = it[2:-1]  # max/min keep the column's type
            elif it and it[0].up == "COUNT":
                out.append(Column("count", "LONG", "BIGINT"))
                continue
            words = [x for x in it if x.text != "."]
            if not words or any(x.kind not in ("word", "bq") for x in words):
                out.append(None)
                continue
            names = [_ident(x).lower() for x in words]
            idx = next((k for k, n in enumerate(names) if n in cols), None)
            if idx is None:
                out.append(None)
                continue
            col = cols[names[idx]]
            rest = names[idx + 1:]
            if rest and col.type_name == "STRUCT":
                ft = dict(col.fields).get(rest[0], "STRING")
                out.append(Column(rest[0], ft, "BIGINT" if ft == "LONG" else ft))
            else:
                out.append(col)
        return out


_TS_LITERAL = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)(Z|[+-]00:?00)?$")


def _canonical_time(text: str) -> str:
    """Timestamps are stored as canonical text ('2024-05-01T12:00:00.000Z') and compare as text; a literal
    written '2024-05-01 12:00' is rewritten to that form so the comparison means what Databricks means."""
    m = _TS_LITERAL.match(text)
    if not m:
        return text
    return ts_text(timeparse.parse_time(f"{m.group(1)}T{m.group(2)}Z", 0))


def _unescape(body: str, quote: str) -> str:
    out, k = [], 0
    while k < len(body):
        ch = body[k]
        if ch == "\\" and k + 1 < len(body):
            nxt = body[k + 1]
            out.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(nxt, nxt))
            k += 2
        elif ch == quote and k + 1 < len(body) and body[k + 1] == quote:
            out.append(quote)
            k += 2
        else:
            out.append(ch)
            k += 1
    return "".join(out)


# ---------------------------------------------------------------------------------------------- running


PARAM_TYPES = {"STRING", "INT", "INTEGER", "BIGINT", "LONG", "SMALLINT", "TINYINT", "BOOLEAN", "TIMESTAMP", "DATE",
               "DOUBLE", "FLOAT", "DECIMAL"}


def bind_parameters(items: list, now_ms: int) -> Dict[str, Tuple[str, Any]]:
    """``parameters[]`` of the request -> name -> (type, value for sqlite). Bad input is a 400, as Databricks."""
    out: Dict[str, Tuple[str, Any]] = {}
    for p in items or []:
        if not isinstance(p, dict) or not isinstance(p.get("name"), str) or not p["name"]:
            raise bad_request("Each parameter needs a non-empty 'name'.")
        name, typ, value = p["name"], str(p.get("type") or "STRING").upper(), p.get("value")
        base = typ.split("(")[0].strip()
        if base not in PARAM_TYPES:
            raise bad_request(f"Unsupported parameter type {typ!r} for parameter {name!r}.")
        if value is not None and not isinstance(value, str):
            raise bad_request(f"Parameter {name!r}: 'value' must be a string (or absent for NULL).")
        if name in out:
            raise bad_request(f"Duplicate parameter name {name!r}.")
        out[name] = (base, _convert_param(name, base, value, now_ms))
    return out


def _convert_param(name: str, typ: str, value: Optional[str], now_ms: int):
    if value is None:
        return None
    try:
        if typ in ("INT", "INTEGER", "BIGINT", "LONG", "SMALLINT", "TINYINT"):
            return int(value)
        if typ in ("DOUBLE", "FLOAT", "DECIMAL"):
            return float(value)
        if typ == "BOOLEAN":
            if value.lower() not in ("true", "false"):
                raise ValueError
            return 1 if value.lower() == "true" else 0
        if typ == "TIMESTAMP":
            return ts_text(timeparse.parse_time(value.replace(" ", "T"), now_ms))
        if typ == "DATE":
            return _dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise bad_request(f"Parameter {name!r}: {value!r} is not a valid {typ}.")
    return value


def run_query(ctx: Ctx, statement: str, params: Dict[str, Tuple[str, Any]], catalog, schema, now_ms: int):
    """Return (columns, rows) with every cell a string or None; raise SqlError."""
    plan = Translator(statement, params, catalog, schema, now_ms).translate()
    for t in plan.tables.values():
        t.check_access(ctx)
    con = sqlite3.connect(":memory:")
    try:
        con.execute("PRAGMA case_sensitive_like = ON")  # LIKE is case-sensitive in Databricks
        _bind_caller_functions(con, ctx)
        for name, t in plan.tables.items():
            con.execute(f"CREATE TABLE {_quote(name)} (" + ", ".join(_quote(c.name) for c in t.columns) + ")")
            rows = t.rows(ctx)
            con.executemany(f"INSERT INTO {_quote(name)} VALUES (" + ", ".join("?" * len(t.columns)) + ")",
                            [tuple(r.get(c.name) for c in t.columns) for r in rows])
        try:
            cur = con.execute(plan.sql, plan.params)
            data = cur.fetchall()
        except sqlite3.Error as e:
            msg = str(e)
            if "no such column" in msg:
                raise SqlError("UNRESOLVED_COLUMN", f"A column cannot be resolved: {msg.split(':', 1)[-1].strip()}.", "42703")
            raise SqlError("UNSUPPORTED_SQL", f"The emulator's SQL engine could not run the statement: {msg}.", "0A000")
        names = [d[0] for d in cur.description]
    finally:
        con.close()
    cols = []
    for k, name in enumerate(names):
        known = plan.out_types[k] if k < len(plan.out_types) else None
        if known is not None:
            cols.append({"name": _out_name(name, known), "type_name": known.type_name, "type_text": known.type_text})
        else:
            vals = [r[k] for r in data if r[k] is not None]
            if vals and all(isinstance(v, int) for v in vals):
                cols.append({"name": name, "type_name": "LONG", "type_text": "BIGINT"})
            elif vals and all(isinstance(v, (int, float)) for v in vals):
                cols.append({"name": name, "type_name": "DOUBLE", "type_text": "DOUBLE"})
            else:
                cols.append({"name": name, "type_name": "STRING", "type_text": "STRING"})
    for k, c in enumerate(cols):
        c["position"] = k
    rows = [[_cell(v, cols[k]["type_name"]) for k, v in enumerate(r)] for r in data]
    return cols, rows


def _bind_caller_functions(con, ctx: Ctx) -> None:
    """current_user(): the caller's userName (an SP's applicationId); is_account_group_member(g): whether
    the caller is in account group g, directly or through nested groups."""
    p = ctx.principal
    groups = {g.name for g in ctx.state.directory.ancestors(p)}
    con.create_function("current_user", 0, lambda: p.name, deterministic=True)
    con.create_function("is_account_group_member", 1, lambda g: 1 if g in groups else 0, deterministic=True)


def _out_name(sqlite_name: str, col: Column) -> str:
    # unaliased `user_identity.email` is called `email` in Databricks; sqlite names it by its translation
    return col.name if sqlite_name.startswith("json_extract(") or sqlite_name.startswith("`") else sqlite_name


def _cell(v, type_name: str) -> Optional[str]:
    if v is None:
        return None
    if type_name == "BOOLEAN":
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and type_name in ("LONG", "INT"):
        return str(int(v))
    return str(v)


# ----------------------------------------------------------------------------------------- statements


@dataclass
class Statement:
    id: str
    workspace: str
    principal: Any
    polls_left_pending: int
    polls_left_running: int
    state: str = "PENDING"
    error: Optional[dict] = None
    manifest: Optional[dict] = None
    chunks: List[List[list]] = field(default_factory=list)

    def advance(self) -> None:
        """One status request: count down PENDING, then RUNNING, then finish."""
        if self.state in TERMINAL:
            return
        if self.polls_left_pending > 0:
            self.polls_left_pending -= 1
            self.state = "PENDING"
        elif self.polls_left_running > 0:
            self.polls_left_running -= 1
            self.state = "RUNNING"
        else:
            self.state = "FAILED" if self.error else "SUCCEEDED"


class Statements:
    """Statements submitted to one emulator (kept in memory for its lifetime)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_id: Dict[str, Statement] = {}


def _store(ctx: Ctx) -> Statements:
    return ctx.emulator.statements


def _warehouse(ctx: Ctx, wid) -> dict:
    for w in ctx.ws.get("warehouses") or []:
        if w.get("id") == wid:
            return w
    raise not_found(f"SQL warehouse {wid} does not exist or was deleted.")


def _can_use(ctx: Ctx, w: dict) -> bool:
    """CAN_USE (or more) on the warehouse: its ACL (as the Permissions API serves it), or workspace admin."""
    p = ctx.principal
    if ctx.view.is_admin(p):
        return True
    ref = find_object(ctx.ws, "warehouses", w["id"])
    names = {p.name} | {g.name for g in ctx.view.groups_of(p)} | {"users"}
    for e in _acl(ctx, "warehouses", ref):
        who = e.get("user_name") or e.get("service_principal_name") or e.get("group_name")
        if who in names and any(x["permission_level"] in ("CAN_USE", "CAN_MONITOR", "CAN_MANAGE", "IS_OWNER")
                                for x in e["all_permissions"]):
            return True
    return False


def _json_body(ctx: Ctx) -> dict:
    try:
        body = json.loads(ctx.body or b"{}")
    except ValueError:
        raise bad_request("Request body is not valid JSON.", "MALFORMED_REQUEST")
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object.", "MALFORMED_REQUEST")
    return body


def _wait_seconds(v) -> int:
    m = re.fullmatch(r"(\d+)s", str(v))
    if not m or not (int(m.group(1)) == 0 or 5 <= int(m.group(1)) <= 50):
        raise bad_request(f"wait_timeout must be 0s or between 5s and 50s (e.g. '10s'), got {v!r}.")
    return int(m.group(1))


def _response(st: Statement) -> dict:
    out: Dict[str, Any] = {"statement_id": st.id, "status": {"state": st.state}}
    if st.state == "FAILED" and st.error:
        out["status"]["error"] = {"error_code": st.error["error_code"], "message": st.error["message"]}
        if st.error.get("sql_state"):  # [verify] none known for the INLINE cap: not sent
            out["status"]["sql_state"] = st.error["sql_state"]
    if st.state == "SUCCEEDED":
        out["manifest"] = st.manifest
        if st.chunks:
            out["result"] = _chunk(st, 0)
    return out


def _chunk(st: Statement, n: int) -> dict:
    meta = st.manifest["chunks"][n]
    out = dict(meta)
    out["data_array"] = st.chunks[n]
    if n + 1 < len(st.chunks):
        out["next_chunk_index"] = n + 1
        out["next_chunk_internal_link"] = f"/api/2.0/sql/statements/{st.id}/result/chunks/{n + 1}"
    return out


@route("/api/2.0/sql/statements", methods=("POST",))
def execute(ctx: Ctx):
    body = _json_body(ctx)
    statement = body.get("statement")
    if not isinstance(statement, str) or not statement.strip():
        raise bad_request("Missing required field: statement")
    wid = body.get("warehouse_id")
    if not wid:
        raise bad_request("Missing required field: warehouse_id")
    w = _warehouse(ctx, wid)
    if not _can_use(ctx, w):
        raise ApiError(403, "PERMISSION_DENIED", f"User {ctx.principal.name} does not have CAN_USE permission on "
                       f"SQL warehouse {w.get('name')} ({wid}).")
    disposition = body.get("disposition") or "INLINE"
    fmt = body.get("format") or "JSON_ARRAY"
    if disposition not in ("INLINE", "EXTERNAL_LINKS") or fmt not in ("JSON_ARRAY", "ARROW_STREAM", "CSV"):
        raise bad_request(f"Invalid disposition/format {disposition}/{fmt}.")
    if disposition == "INLINE" and fmt != "JSON_ARRAY":
        raise bad_request(f"The INLINE disposition supports only the JSON_ARRAY format, not {fmt}.")
    if disposition != "INLINE":
        raise ApiError(400, "NOT_IMPLEMENTED", "The emulator serves the INLINE disposition (JSON_ARRAY) only; "
                       "EXTERNAL_LINKS is not emulated.")
    wait = _wait_seconds(body.get("wait_timeout", "10s"))
    on_timeout = body.get("on_wait_timeout") or "CONTINUE"
    if on_timeout not in ("CONTINUE", "CANCEL"):
        raise bad_request(f"on_wait_timeout must be CONTINUE or CANCEL, got {on_timeout!r}.")
    row_limit = body.get("row_limit")
    if row_limit is not None and (not isinstance(row_limit, int) or isinstance(row_limit, bool) or row_limit < 0):
        raise bad_request("row_limit must be a non-negative integer.")
    now_ms = timeparse.now_ms()
    params = bind_parameters(body.get("parameters"), now_ms)
    settings = ctx.tenant.get("sql") or SQL_DEFAULTS
    st = Statement(id=str(uuid.uuid4()).replace("-", "")[:8] + "-" + str(uuid.uuid4())[9:], workspace=ctx.target,
                   principal=ctx.principal, polls_left_pending=int(settings.get("pending_polls", 0)),
                   polls_left_running=int(settings.get("running_polls", 0)))
    try:
        cols, rows = run_query(ctx, statement, params, body.get("catalog"), body.get("schema"), now_ms)
        truncated = row_limit is not None and len(rows) > row_limit
        if truncated:
            rows = rows[:row_limit]
        size = int(settings.get("chunk_rows", SQL_DEFAULTS["chunk_rows"]))
        st.chunks = [rows[k:k + size] for k in range(0, len(rows), size)]
        metas = []
        for n, ch in enumerate(st.chunks):
            metas.append({"chunk_index": n, "row_offset": n * size, "row_count": len(ch),
                          "byte_count": len(json.dumps(ch))})
        limit = int(settings.get("inline_limit_bytes", SQL_DEFAULTS["inline_limit_bytes"]))
        if sum(m["byte_count"] for m in metas) > limit:
            # as Databricks answers it (reported verbatim by users, e.g. databrickslabs/ucx#3447): the
            # statement FAILS with error_code BAD_REQUEST and this message, no error class in brackets
            raise InlineLimit(limit)
        st.manifest = {"format": "JSON_ARRAY", "schema": {"column_count": len(cols), "columns": cols},
                       "total_row_count": len(rows), "total_chunk_count": len(st.chunks),
                       "total_byte_count": sum(m["byte_count"] for m in metas), "truncated": truncated,
                       "chunks": metas}
    except InlineLimit as e:
        st.error = {"error_code": "BAD_REQUEST", "message": (
            f"Inline byte limit exceeded. Statements executed with disposition=INLINE can have a result size of "
            f"at most {e.limit} bytes. Please execute the statement with disposition=EXTERNAL_LINKS if you want "
            "to download the full result.")}
        st.state = "FAILED"
        st.polls_left_pending = st.polls_left_running = 0
    except SqlError as e:
        # analysis errors fail at once, as on Databricks
        # status.error.error_code is a ServiceErrorCode (BAD_REQUEST for analysis errors); the error class
        # is the message's [PREFIX], as Databricks writes it
        st.error = {"error_code": "BAD_REQUEST", "message": f"[{e.code}] {e.message}", "sql_state": e.sql_state}
        st.state = "FAILED"
        st.polls_left_pending = st.polls_left_running = 0
    store = _store(ctx)
    with store.lock:
        store.by_id[st.id] = st
        if st.state not in TERMINAL:
            if st.polls_left_pending == 0 and st.polls_left_running == 0:
                st.state = "FAILED" if st.error else "SUCCEEDED"
            elif wait > 0 and on_timeout == "CANCEL":
                st.state = "CANCELED"  # still running when the wait ended
            else:
                st.state = "PENDING" if st.polls_left_pending else "RUNNING"
        return _response(st)


def _own_statement(ctx: Ctx) -> Statement:
    sid = ctx.params["statement_id"]
    store = _store(ctx)
    with store.lock:
        st = store.by_id.get(sid)
    if st is None or st.workspace != ctx.target or st.principal is not ctx.principal:
        raise not_found(f"The statement {sid} was not found.")
    return st


@route("/api/2.0/sql/statements/{statement_id}")
def get_statement(ctx: Ctx):
    st = _own_statement(ctx)
    with _store(ctx).lock:
        st.advance()
        return _response(st)


@route("/api/2.0/sql/statements/{statement_id}/result/chunks/{chunk_index}")
def get_chunk(ctx: Ctx):
    st = _own_statement(ctx)
    try:
        n = int(ctx.params["chunk_index"])
    except ValueError:
        raise bad_request(f"Invalid chunk index {ctx.params['chunk_index']!r}.")
    if st.state != "SUCCEEDED":
        raise bad_request(f"The statement {st.id} has no result: its state is {st.state}.", "INVALID_STATE")
    if not 0 <= n < len(st.chunks):
        raise bad_request(f"Chunk index {n} is out of range (the result has {len(st.chunks)} chunks).")
    return _chunk(st, n)


@route("/api/2.0/sql/statements/{statement_id}/cancel", methods=("POST",))
def cancel(ctx: Ctx):
    st = _own_statement(ctx)
    with _store(ctx).lock:
        if st.state not in TERMINAL:
            st.state = "CANCELED"
    return {}
