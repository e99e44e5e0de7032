"""Unity Catalog data sections (workspace host, /api/2.1/unity-catalog/...).

Sections:

* ``uc``: metastore assignment and summary, catalogs, schemas, tables (with columns, masks, row
  filters), external locations, storage credentials, and the DIRECT grants on each of them (raw
  ``privilege_assignments``, so a privilege the SDK does not know survives as a string).
  Calls: 2 + 1 (catalogs) + 1 per catalog (schemas) + 1 per schema (tables) + 2 + 1 per securable
  (grants), plus pages.
* ``uc_column_tags``: the tags of every column a column mask could protect and does not (unmasked
  columns of tables, materialized views and streaming tables; not views, not the ``system`` or Delta
  Sharing catalogs, where no mask can be set). The API has no bulk read and ``TableInfo`` carries no
  column tags, so this is ONE CALL PER SUCH COLUMN (``entity-tag-assignments/columns/<c.s.t.col>/tags``).
  Masked columns are skipped: whatever their tags say, they are protected.
* ``uc_recipients``: Delta Sharing recipients of the metastore (raw; activation links and sharing
  codes are dropped: they are credentials). 2 calls plus pages. Lists every recipient only for a
  metastore admin; others see the ones they own.
* ``uc_system_schemas``: the metastore's system schemas and their state (``access`` holds the audit
  tables). 2 calls. Needs account admin or metastore admin.

One read per metastore: many workspaces usually share one metastore, and its grants, ownership, schemas,
tables and column tags are the same from each of them; what differs is what a workspace LISTS (a catalog
with ``isolation_mode: ISOLATED`` is listed only by the workspaces it is bound to) and what the caller may
see. So each workspace lists its own catalogs, external locations and storage credentials (and its
metastore assignment), and everything else is read once per metastore and caller in the run
(``Context.once``), whichever workspace gets there first: per catalog, its schemas and tables
(``_catalog_contents``), the grants of the catalog, its schemas and tables (``_unit_grants``) and the tags
of its unmasked columns (``_catalog_tags``); the metastore summary, its own grants and those of each
location and credential, the recipients and the system schemas. A catalog no earlier workspace listed is
read from the workspace that lists it. A read of an ISOLATED securable made by another workspace is
reused only if the bindings API (``/bindings/<type>/<name>``) lists this workspace too (``_shared``):
Databricks denies access to a bound catalog from other workspaces, so it is read here otherwise. So each
workspace's data is exactly what a read from it alone gives. "Same caller" (``share_origin``): a workspace alone on its metastore costs nothing extra; the next
ones ask SCIM ``Me`` on themselves and the earlier ones and share with the first that has the same
``userName`` (nothing, if ``Me`` fails). ``shared_from`` in each section names the parts read through
another workspace (``{"catalog/main": "prod", "metastore": "prod"}``; ``{}`` if none). A failed read is
not shared: ``Context.once`` keeps no failure, the next workspace tries itself.

A workspace with no metastore assigned is a fact, not a read error: every section says so with
``assignment: None`` (UC-01 fails on it, the other UC controls skip).

Two paths read ``uc`` and ``uc_column_tags``: the REST path above (the default), and, with
``--dbsec-uc-via sql --dbsec-warehouse-id ID``, the SQL-warehouse path (``uc_sql.py``): a dozen queries on
``system.information_schema`` instead of one REST call per securable and per column. Both keep the same
fields of each schema, table and column (``schema_record``/``table_record``), so the data is the same
whichever path ran; ``read_via`` says which one did.
"""

from __future__ import annotations

import threading

from databricks.sdk.errors import DatabricksError, NotFound

from . import section
from .workspace import _dicts

# Catalog types whose tables cannot carry a column mask (Databricks manages them, or they are a
# provider's shared data): UC-09 does not judge them, so their column tags are not read.
UNMASKABLE_CATALOG_TYPES = {"SYSTEM_CATALOG", "DELTASHARING_CATALOG"}
# Views compute their columns from other tables; masks live on those base tables.
VIEW_TYPES = {"VIEW", "METRIC_VIEW"}
# Databricks-managed schemas, present in every catalog
SYSTEM_SCHEMAS = {"information_schema"}
# Fields of a recipient (and of its tokens) that are credentials: never stored
_RECIPIENT_SECRETS = ("activation_url", "sharing_code")


def _assignment(w, ctx) -> dict | None:
    """The workspace's metastore assignment, read once per run for all UC sections of the workspace."""

    def read():
        try:
            assignment = w.metastores.current().as_dict()
        except NotFound:
            return None
        return assignment if assignment and assignment.get("metastore_id") else None

    return ctx.once(("metastore assignment", w.config.host), read)


# The fields the inventory keeps of each schema, table and column: what both paths can read (REST objects
# carry more, information_schema less), so the data does not depend on the path.
SCHEMA_FIELDS = ("name", "catalog_name", "full_name", "owner", "comment", "metastore_id")
TABLE_FIELDS = ("name", "catalog_name", "schema_name", "full_name", "owner", "table_type", "comment",
                "metastore_id")
COLUMN_FIELDS = ("name", "position", "type_name", "type_text", "nullable", "comment")


def schema_record(s: dict) -> dict:
    return {k: s[k] for k in SCHEMA_FIELDS if s.get(k) is not None}


def table_record(t: dict) -> dict:
    out = {k: t[k] for k in TABLE_FIELDS if t.get(k) is not None}
    rf = t.get("row_filter") or {}
    if rf.get("function_name"):
        out["row_filter"] = {"function_name": rf["function_name"],
                             "input_column_names": list(rf.get("input_column_names") or [])}
    out["columns"] = [column_record(c) for c in t.get("columns") or []]
    return out


def column_record(c: dict) -> dict:
    out = {k: c[k] for k in COLUMN_FIELDS if c.get(k) is not None}
    mask = c.get("mask") or {}
    if mask.get("function_name"):
        out["mask"] = {"function_name": mask["function_name"],
                       "using_column_names": list(mask.get("using_column_names") or [])}
    return out


def sql_path(ctx) -> bool:
    """``--dbsec-uc-via sql`` (with ``--dbsec-warehouse-id``): read through system.information_schema."""
    return ctx.options.get("uc_via") == "sql" and bool(ctx.options.get("warehouse_id"))


def _sql_reader(w, ctx, assignment: dict):
    """The SQL-warehouse reader (``uc_sql.py``) when the run reads UC through SQL and the warehouse can
    read this workspace's metastore; None when the REST path runs."""
    if not sql_path(ctx):
        return None
    from . import uc_sql  # imports this module

    return uc_sql.reader(w, ctx, assignment)


def empty_uc(assignment=None, read_via="rest") -> dict:
    return {"assignment": assignment, "metastore": None, "catalogs": [], "schemas": [], "tables": [],
            "external_locations": [], "storage_credentials": [], "grants": {}, "read_via": read_via}


@section("uc", "workspace",
         title="Unity Catalog: metastore, catalogs, schemas, tables, grants (REST, or information_schema with "
               "--dbsec-uc-via sql)")
def uc(w, ctx):
    assignment = _assignment(w, ctx)
    if assignment is None:
        # no metastore assigned: a fact (UC-01 fails on it), not a read error
        return empty_uc()
    reader = _sql_reader(w, ctx, assignment)
    if reader is not None:
        return reader.uc()
    mid = assignment["metastore_id"]
    origin = share_origin(w, ctx, mid)
    summary_read = ctx.once(("uc summary", mid, origin),
                            lambda: {"summary": w.metastores.summary().as_dict(), "read_from": ctx.scope})
    summary = summary_read["summary"]
    catalogs = _catalogs(w, ctx)
    locations = _dicts(w.external_locations.list())
    credentials = _dicts(w.storage_credentials.list())
    # units of grants, each read once per metastore (and caller) whichever workspace asks first: the
    # metastore's own, one per catalog (the catalog, its schemas and tables), one per location/credential
    units = ([("metastore", summary["metastore_id"], None)] + [("catalog", c["name"], c) for c in catalogs]
             + [("external_location", x["name"], x) for x in locations]
             + [("storage_credential", x["name"], x) for x in credentials])
    reads = ctx.fan_out(lambda u: _unit_grants(w, ctx, mid, origin, u), units)
    # every catalog's contents were read for its grants: these are the same reads, not new ones
    contents = [_catalog_contents(w, ctx, mid, origin, c) for c in catalogs]
    schemas = [s for c in contents for s in c["schemas"]]
    tables = [t for c in contents for t in c["tables"]]
    grants: dict[str, list] = {}
    shared: dict[str, str] = _from(ctx, summary_read)
    for (kind, name, _), read in zip(units, reads):
        grants.update(read["grants"])
        part = "metastore" if kind != "catalog" else f"catalog/{name}"
        if read["read_from"] != ctx.scope:
            shared.setdefault(part, read["read_from"])
    for c, content in zip(catalogs, contents):
        if content["read_from"] != ctx.scope:
            shared.setdefault(f"catalog/{c['name']}", content["read_from"])
    return {
        "assignment": assignment,
        "metastore": summary,
        "catalogs": catalogs,
        "schemas": schemas,
        "tables": tables,
        "external_locations": locations,
        "storage_credentials": credentials,
        "grants": _ordered_grants(grants, summary, catalogs, schemas, tables, locations, credentials),
        "read_via": "rest",
        "shared_from": dict(sorted(shared.items())),
    }


def _ordered_grants(grants: dict, summary: dict, catalogs: list, schemas: list, tables: list, locations: list,
                    credentials: list) -> dict:
    """The grants in the order of a read from scratch: metastore, catalogs, schemas, tables, locations,
    credentials."""
    keys = ([f"metastore/{summary['metastore_id']}"] + [f"catalog/{c['name']}" for c in catalogs]
            + [f"schema/{s['full_name']}" for s in schemas if s.get("name") not in SYSTEM_SCHEMAS]
            + [f"table/{t['full_name']}" for t in tables]
            + [f"external_location/{x['name']}" for x in locations]
            + [f"storage_credential/{x['name']}" for x in credentials])
    return {k: grants[k] for k in keys}


def _unit_grants(w, ctx, mid: str, origin: str, unit: tuple) -> dict:
    """The direct grants of one unit (see ``uc``), read once per metastore and caller: ``{"grants":
    {"<type>/<name>": [...]}, "read_from": <workspace that read them>}``. A catalog's grants start as
    soon as ITS schemas and tables are listed, not every catalog's: on a big metastore the listing is
    minutes of paged reads, and the grants are the slow, rate-limited part."""
    kind, name, obj = unit
    if kind == "catalog":
        content = _catalog_contents(w, ctx, mid, origin, obj)
        securables = ([("catalog", name)]
                      + [("schema", s["full_name"]) for s in content["schemas"]
                         if s.get("name") not in SYSTEM_SCHEMAS]
                      + [("table", t["full_name"]) for t in content["tables"]])
    else:
        securables = [(kind, name)]

    def read():
        found = ctx.fan_out(lambda s: _grants(w, *s), securables)
        return {"grants": {f"{t}/{n}": g for (t, n), g in zip(securables, found)}, "read_from": ctx.scope}

    return _shared(w, ctx, ("uc grants", mid, origin, kind, name), read,
                   None if obj is None else (kind, obj))


def _catalogs(w, ctx) -> list[dict]:
    """The catalogs this workspace lists, read once per run: ``uc`` and ``uc_column_tags`` both start
    from them. Each goes on to read each catalog's contents (``_catalog_contents``, once for both) and
    then its grants or column tags, catalog by catalog, so the column tags are read while ``uc`` is
    still reading grants, and neither waits for the listing of catalogs it is not at yet."""
    return ctx.once(("uc catalogs", w.config.host), lambda: _dicts(w.catalogs.list()))


def _catalog_contents(w, ctx, mid: str, origin: str, cat: dict) -> dict:
    """The schemas and tables of one catalog, read once per metastore and caller."""
    catalog = cat["name"]

    def read():
        schemas = _dicts(w.schemas.list(catalog_name=catalog))
        tables = [t for batch in ctx.fan_out(
            lambda s: _dicts(w.tables.list(catalog_name=catalog, schema_name=s["name"])),
            [s for s in schemas if s.get("name") not in SYSTEM_SCHEMAS]) for t in batch]
        return {"schemas": [schema_record(s) for s in schemas], "tables": [table_record(t) for t in tables],
                "read_from": ctx.scope}

    return _shared(w, ctx, ("uc catalog", mid, origin, catalog), read, ("catalog", cat))


# -- one read per metastore -----------------------------------------------------------------------


class _MetastoreShare:
    """The workspaces of one run on one metastore, grouped by caller: whose reads each one reuses."""

    def __init__(self):
        self.lock = threading.Lock()
        self.origins: list[str] = []  # the first workspace of each distinct caller
        self.by_scope: dict[str, str] = {}


def share_origin(w, ctx, mid: str) -> str:
    """The workspace whose reads of metastore ``mid`` this workspace reuses (itself if it is the first).

    What the UC API lists depends on the caller (a non-admin sees only what it may see), so reads are
    shared only between workspaces where the run's credential is the same principal: the first
    workspace of a metastore costs nothing extra; each further one asks SCIM ``Me`` on itself and on
    the earlier ones (once per workspace) and reuses the reads of the first with the same ``userName``.
    A principal that cannot be told (``Me`` fails) shares nothing."""
    share = ctx.once(("uc share", mid), _MetastoreShare)
    me = ctx.scope
    with share.lock:
        if me in share.by_scope:
            return share.by_scope[me]
        origin = me
        if share.origins:
            who = _caller(w, ctx)
            for other in share.origins:
                if who is not None and _caller(ctx.workspace_client(other), ctx) == who:
                    origin = other
                    break
        if origin == me:
            share.origins.append(me)
        share.by_scope[me] = origin
        return origin


def _shared(w, ctx, key: tuple, read, bound: tuple[str, dict] | None = None) -> dict:
    """``ctx.once(key, read)``: ``read()`` returns ``{..., "read_from": ctx.scope}``, and the value may
    have been read by another workspace of the run. Such a read of an ISOLATED securable (``bound``:
    its type and object) is reused only if the bindings API says this workspace is bound to it too:
    where it is not, Databricks may refuse what the other workspace could read, so it is read here."""
    got = ctx.once(key, read)
    if got["read_from"] == ctx.scope or bound is None:
        return got
    stype, obj = bound
    if not str(obj.get("isolation_mode") or "").endswith("ISOLATED") or _bound_here(w, ctx, stype, obj["name"]):
        return got
    return ctx.once(key + ("read by", ctx.scope), read)


def _bound_here(w, ctx, securable_type: str, name: str) -> bool:
    """Whether this workspace is among the securable's workspace bindings (one read per workspace and
    securable; a read that fails counts as not bound: the securable is then read here)."""
    wsid = (_assignment(w, ctx) or {}).get("workspace_id")

    def read():
        try:
            found = _raw_pages(w, f"/api/2.1/unity-catalog/bindings/{securable_type}/{name}", "bindings")
        except DatabricksError:
            return None
        return {int(b["workspace_id"]) for b in found if b.get("workspace_id") is not None}

    ids = ctx.once(("uc bindings", w.config.host, securable_type, name), read)
    return ids is not None and wsid is not None and int(wsid) in ids


def _caller(w, ctx) -> str | None:
    def read():
        try:
            return w.current_user.me().user_name or None
        except DatabricksError:
            return None

    return ctx.once(("uc caller", w.config.host), read)


def _grants(w, securable_type: str, full_name: str) -> list[dict]:
    """Direct grants on one securable, all pages, raw (unknown privileges kept)."""
    return _raw_pages(w, f"/api/2.1/unity-catalog/permissions/{securable_type}/{full_name}", "privilege_assignments")


def _raw_pages(w, path: str, key: str) -> list[dict]:
    """Every item of a paginated UC list, as raw JSON (max_results=0: the server's page size; a page
    may be empty and still carry a token)."""
    out, token = [], None
    while True:
        query = {"max_results": 0}
        if token:
            query["page_token"] = token
        page = w.api_client.do("GET", path, query=query)
        out.extend(page.get(key) or [])
        token = page.get("next_page_token")
        if not token:
            return out


def maskable_tables(uc_data: dict) -> list[dict]:
    """Tables whose columns a column mask can protect (the scope of UC-09 and of ``uc_column_tags``)."""
    types = {c.get("name"): c.get("catalog_type") for c in uc_data.get("catalogs") or []}
    return [t for t in uc_data.get("tables") or []
            if types.get(t.get("catalog_name")) not in UNMASKABLE_CATALOG_TYPES
            and t.get("table_type") not in VIEW_TYPES
            and t.get("schema_name") not in SYSTEM_SCHEMAS]


def is_masked(column: dict) -> bool:
    return bool((column.get("mask") or {}).get("function_name"))


def unmasked_columns(catalogs: list[dict], tables: list[dict]) -> list[str]:
    """Full names of the columns ``uc_column_tags`` reads tags for."""
    return [f"{t['full_name']}.{c['name']}" for t in maskable_tables({"catalogs": catalogs, "tables": tables})
            for c in t.get("columns") or [] if c.get("name") and not is_masked(c)]


@section("uc_column_tags", "workspace",
         title="Unity Catalog column tags of unmasked table columns (REST: one call per column; or information_schema)")
def uc_column_tags(w, ctx):
    assignment = _assignment(w, ctx)
    if assignment is None:
        return {"assignment": None, "tags": {}, "vanished": [], "read_via": "rest"}
    reader = _sql_reader(w, ctx, assignment)
    if reader is not None:
        return reader.column_tags()
    mid = assignment["metastore_id"]
    origin = share_origin(w, ctx, mid)
    catalogs = _catalogs(w, ctx)
    reads = ctx.fan_out(lambda c: _catalog_tags(w, ctx, mid, origin, c), catalogs)
    tags: dict[str, list] = {}
    vanished: list[str] = []
    shared: dict[str, str] = {}
    for c, read in zip(catalogs, reads):
        tags.update(read["tags"])
        vanished += read["vanished"]
        if read["read_from"] != ctx.scope:
            shared[f"catalog/{c['name']}"] = read["read_from"]
    return {"assignment": assignment, "tags": tags, "vanished": vanished, "read_via": "rest",
            "shared_from": dict(sorted(shared.items()))}


def _catalog_tags(w, ctx, mid: str, origin: str, catalog: dict) -> dict:
    """The tags of the unmasked columns of one catalog, read once per metastore and caller, as soon as
    the catalog is listed (as ``_unit_grants``)."""
    columns = unmasked_columns([catalog], _catalog_contents(w, ctx, mid, origin, catalog)["tables"])

    def tags_of(full: str):
        try:
            return _dicts(w.entity_tag_assignments.list("columns", full))
        except NotFound:
            return None  # dropped since the table was listed: nothing left to protect

    def read():
        found = ctx.fan_out(tags_of, columns)
        return {"tags": {c: [{k: v for k, v in a.items() if k in ("tag_key", "tag_value")} for a in tags]
                         for c, tags in zip(columns, found) if tags is not None},
                "vanished": [c for c, tags in zip(columns, found) if tags is None],
                "read_from": ctx.scope}

    return _shared(w, ctx, ("uc column tags", mid, origin, catalog["name"]), read, ("catalog", catalog))


@section("uc_recipients", "workspace", title="Delta Sharing recipients of the metastore")
def uc_recipients(w, ctx):
    assignment = _assignment(w, ctx)
    if assignment is None:
        return {"assignment": None, "recipients": []}
    mid = assignment["metastore_id"]
    origin = share_origin(w, ctx, mid)

    def read():
        recipients = _raw_pages(w, "/api/2.1/unity-catalog/recipients", "recipients")
        for r in recipients:
            for key in _RECIPIENT_SECRETS:
                r.pop(key, None)
            for tok in r.get("tokens") or []:
                for key in _RECIPIENT_SECRETS:
                    tok.pop(key, None)
        return {"recipients": recipients, "read_from": ctx.scope}

    got = ctx.once(("uc recipients", mid, origin), read)
    return {"assignment": assignment, "recipients": got["recipients"], "shared_from": _from(ctx, got)}


@section("uc_system_schemas", "workspace", title="Unity Catalog system schemas of the metastore")
def uc_system_schemas(w, ctx):
    assignment = _assignment(w, ctx)
    if assignment is None:
        return {"assignment": None, "schemas": []}
    mid = assignment["metastore_id"]
    origin = share_origin(w, ctx, mid)
    got = ctx.once(("uc system schemas", mid, origin), lambda: {
        "schemas": _raw_pages(w, f"/api/2.1/unity-catalog/metastores/{mid}/systemschemas", "schemas"),
        "read_from": ctx.scope})
    return {"assignment": assignment, "schemas": got["schemas"], "shared_from": _from(ctx, got)}


def _from(ctx, got: dict) -> dict:
    return {} if got["read_from"] == ctx.scope else {"metastore": got["read_from"]}
