"""The SQL-warehouse path of the ``uc`` and ``uc_column_tags`` sections (``--dbsec-uc-via sql`` with
``--dbsec-warehouse-id``).

The REST path makes one call per catalog (schemas), per schema (tables), per securable (grants) and per
unmasked column (tags): ~750,000 calls for a metastore with 250,000 tables and a million grants. Here the
same inventory comes from one statement per ``system.information_schema`` view (more only for a view with
over ``PAGE_ROWS`` rows: an INLINE result is capped at 25 MiB), run by the warehouse (Databricks' own
distributed engine):

* REST, one list each (cheap, and the fields information_schema lacks: isolation mode, catalog type,
  the metastore's sharing settings): metastore summary, catalogs, external locations, storage
  credentials;
* SQL: ``schemata``, ``tables``, ``columns``, ``column_masks``, ``row_filters``, the direct rows of
  ``metastore_``/``catalog_``/``schema_``/``table_``/``external_location_``/``storage_credential_privileges``,
  and ``column_tags`` for ``uc_column_tags``.

The warehouse's information_schema shows one metastore, the same whichever workspace asks: its rows are
read once per run (``SqlReader.shared``) and every workspace on that metastore keeps the catalogs it lists
itself (``shared_from`` says when the rows were read for another workspace's section).

INLINE cap: a result over 25 MiB FAILS with error_code BAD_REQUEST and "Inline byte limit exceeded.
Statements executed with disposition=INLINE can have a result size of at most 26214400 bytes. ..." (as
users report it: https://github.com/databrickslabs/ucx/issues/3447). A page that fails so is read again
with half the rows, down to ``PAGE_FLOOR``; past that the section fails, saying so.

Facts of information_schema this relies on (docs/benchmark-uc-paths.md has the detail):

* Direct grants. The reference describes ``INHERITED_FROM`` only as "the ancestor relation that the
  privilege is inherited from", nullable in catalog_/schema_privileges, NOT NULL in table_privileges
  (https://docs.databricks.com/aws/sql/language-manual/information-schema/catalog_privileges,
  https://docs.databricks.com/sql/language-manual/information-schema/table_privileges.html); published
  queries select direct rows with ``inherited_from = 'NONE'``. NULL, 'NONE' and '' are all taken as direct
  [verify].
* Privilege spelling: not listed by the reference; published queries compare with ``'USE_CATALOG'``.
  Either spelling ("USE CATALOG" too) is mapped to the API's (``api_privilege``) [verify].

The result has exactly the shape of the REST path (``uc.schema_record``/``table_record``; grants as
``privilege_assignments``, privilege names in API spelling), so controls and the access graph cannot
tell which path ran; ``read_via`` records it.

Visibility: information_schema rows are filtered to the securables the caller may see. Only a metastore
admin sees everything, so before reading, the reader asks the warehouse who it runs as
(``current_user()``) and whether that principal is the metastore owner or in the owner group
(``is_account_group_member``, which follows nested groups), and compares the catalogs the warehouse
shows with the REST catalog list. If the caller is not a metastore admin, or a catalog is missing, the
section FAILS with that reason (fail closed: every UC control then ERRORs, naming it) rather than
judging a partial inventory. Run as a metastore admin, or use the REST path. Pages of a view are separate
statements: a change to the metastore between them can shift rows between pages (as between REST calls).
"""

from __future__ import annotations

from . import uc as rest
from .sql import InlineLimitExceeded, StatementFailed, run_query
from .workspace import _dicts

_IS = "system.information_schema"
# A direct grant's row: the reference documents INHERITED_FROM as "the ancestor relation that the privilege
# is inherited from" without saying what a direct row holds (nullable in catalog_/schema_privileges, NOT
# NULL in table_privileges); published queries filter direct rows with 'NONE'. [verify] Accept every
# reading: NULL, 'NONE' (any case) or ''.
DIRECT = "(inherited_from IS NULL OR inherited_from IN ('NONE', 'None', 'none', ''))"
NOT_IS = "table_schema <> 'information_schema'"
# Rows per statement. An INLINE result is capped at 25 MiB (a bigger one FAILS); a row here is ~100 bytes
# (names up to 255 characters make ~1 KB the worst case), so larger views are read in pages of this many
# rows, ordered by their key (LIMIT/OFFSET); a small metastore needs one statement per view.
PAGE_ROWS = 100_000
# A page over the cap anyway (long comments) FAILS with "Inline byte limit exceeded": it is read again
# with half the rows, down to this many; 25 MiB over 1,000 rows is 26 KB a row, far beyond any real row.
PAGE_FLOOR = 1_000
# (view, columns, WHERE, unique ORDER BY key)
SCHEMATA = ("schemata", "catalog_name, schema_name, schema_owner, comment", None, "catalog_name, schema_name")
TABLES = ("tables", "table_catalog, table_schema, table_name, table_type, table_owner, comment", NOT_IS,
          "table_catalog, table_schema, table_name")
COLUMNS = ("columns", "table_catalog, table_schema, table_name, column_name, ordinal_position, is_nullable, "
           "full_data_type, data_type, comment", NOT_IS, "table_catalog, table_schema, table_name, column_name")
MASKS = ("column_masks", "catalog_name, schema_name, table_name, column_name, mask_catalog, mask_schema, mask_name, "
         "mask_col_usage", None, "catalog_name, schema_name, table_name, column_name")
FILTERS = ("row_filters", "table_catalog, table_schema, table_name, filter_catalog, filter_schema, filter_name, "
           "target_columns", None, "table_catalog, table_schema, table_name")
TAGS = ("column_tags", "catalog_name, schema_name, table_name, column_name, tag_name, tag_value", None,
        "catalog_name, schema_name, table_name, column_name, tag_name")
CATALOGS = ("catalogs", "catalog_name", None, "catalog_name")
WHO_SQL = "SELECT current_user() AS me, is_account_group_member(:owner) AS in_owner_group"
# securable type (as in the uc section's grant keys) -> (view, columns naming the securable)
PRIVILEGE_VIEWS = {
    "metastore": ("metastore_privileges", ("metastore_id",)),
    "catalog": ("catalog_privileges", ("catalog_name",)),
    "schema": ("schema_privileges", ("catalog_name", "schema_name")),
    "table": ("table_privileges", ("table_catalog", "table_schema", "table_name")),
    "external_location": ("external_location_privileges", ("external_location_name",)),
    "storage_credential": ("storage_credential_privileges", ("storage_credential_name",)),
}
# information_schema data_type -> the API's ColumnTypeName
_TYPE_NAME = {"BIGINT": "LONG", "SMALLINT": "SHORT", "TINYINT": "BYTE"}


class IncompleteView(StatementFailed):
    """information_schema would show the caller only part of the metastore."""


def reader(w, ctx, assignment: dict) -> "SqlReader | None":
    """The SQL reader for this workspace, or None when the warehouse cannot read its metastore (it
    belongs to a workspace of another metastore): then the REST path runs."""
    warehouse = ctx.options["warehouse_id"]
    owner = ctx.options.get("warehouse_workspace")
    wc = ctx.workspace_client(owner) if owner else w
    if wc is not w:
        there = rest._assignment(wc, ctx)
        if (there or {}).get("metastore_id") != assignment["metastore_id"]:
            return None
    return SqlReader(w, wc, warehouse, ctx, assignment)


class SqlReader:
    def __init__(self, w, wc, warehouse: str, ctx, assignment: dict):
        self.w, self.wc, self.warehouse, self.ctx, self.assignment = w, wc, warehouse, ctx, assignment

    def query(self, statement: str, params=None) -> list[dict]:
        return run_query(self.wc, self.warehouse, statement, params).rows

    def rows(self, spec: tuple) -> list[dict]:
        """Every row of one information_schema view, PAGE_ROWS per statement; a page whose result is over
        the INLINE cap is read again with half as many rows (and so are the view's later pages), down to
        PAGE_FLOOR rows: if even that is too big, the read fails, saying so."""
        view, columns, where, order = spec
        out: list[dict] = []
        size = PAGE_ROWS
        while True:
            try:
                page = self.query(f"SELECT {columns} FROM {_IS}.{view}" + (f" WHERE {where}" if where else "")
                                  + f" ORDER BY {order} LIMIT {size}" + (f" OFFSET {len(out)}" if out else ""))
            except InlineLimitExceeded as e:
                if size <= PAGE_FLOOR:
                    raise StatementFailed(
                        f"{_IS}.{view}: even {size} rows (from row {len(out)}) are over the 25 MiB cap of an INLINE "
                        f"result, so this view cannot be read in pages here ({e}). Use --dbsec-uc-via rest.") from e
                size = max(size // 2, PAGE_FLOOR)
                continue
            out.extend(page)
            if len(page) < size:
                return out

    # -- the listing both sections start from, read once per run -----------------------------------

    def shared(self, what: str, func):
        """``func()`` once per run for the warehouse: its information_schema shows one metastore, the
        same whichever workspace of that metastore asks, so every workspace on it reuses the rows
        (each keeps only the catalogs it lists). Returns (value, the workspace that read it)."""
        got = self.ctx.once(("uc sql", what, self.wc.config.host, self.warehouse),
                            lambda: {"value": func(), "read_from": self.ctx.scope})
        return got["value"], got["read_from"]

    def listing(self) -> dict:
        return self.ctx.once(("uc sql listing", self.w.config.host, self.warehouse), self._read_listing)

    def _read_listing(self) -> dict:
        summary = self.w.metastores.summary().as_dict()
        catalogs = _dicts(self.w.catalogs.list())
        self._check_coverage(summary, catalogs)
        (schemas, tables), read_from = self.shared("listing", lambda: self._read_metastore(summary["metastore_id"]))
        known = {c["name"] for c in catalogs}
        schemas = [s for s in schemas if s["catalog_name"] in known]
        tables = [t for t in tables if t["catalog_name"] in known]
        return {"summary": summary, "catalogs": catalogs, "schemas": schemas, "tables": tables,
                "read_from": read_from}

    def _read_metastore(self, mid: str) -> tuple[list[dict], list[dict]]:
        """Schemas and tables of every catalog the warehouse's information_schema shows."""
        schemas = [rest.schema_record({"name": r["schema_name"], "catalog_name": r["catalog_name"],
                                       "full_name": f"{r['catalog_name']}.{r['schema_name']}",
                                       "owner": r["schema_owner"], "comment": r["comment"], "metastore_id": mid})
                   for r in self.rows(SCHEMATA)]
        scanned = {s["full_name"] for s in schemas if s["name"] not in rest.SYSTEM_SCHEMAS}
        columns: dict[str, list[dict]] = {}
        for r in self.rows(COLUMNS):
            columns.setdefault(_full(r), []).append({
                "name": r["column_name"], "position": r["ordinal_position"],
                "type_name": _TYPE_NAME.get(r["data_type"], r["data_type"]), "type_text": r["full_data_type"],
                "nullable": r["is_nullable"] == "YES", "comment": r["comment"]})
        for r in self.rows(MASKS):
            for c in columns.get(_full(r, "catalog_name", "schema_name"), []):
                if c["name"] == r["column_name"]:
                    c["mask"] = {"function_name": f"{r['mask_catalog']}.{r['mask_schema']}.{r['mask_name']}",
                                 "using_column_names": _names(r["mask_col_usage"])}
        filters = {_full(r): {"function_name": f"{r['filter_catalog']}.{r['filter_schema']}.{r['filter_name']}",
                              "input_column_names": _names(r["target_columns"])}
                   for r in self.rows(FILTERS)}
        tables = []
        for r in self.rows(TABLES):
            if f"{r['table_catalog']}.{r['table_schema']}" not in scanned:
                continue
            full = _full(r)
            tables.append(rest.table_record({
                "name": r["table_name"], "catalog_name": r["table_catalog"], "schema_name": r["table_schema"],
                "full_name": full, "owner": r["table_owner"], "table_type": r["table_type"], "comment": r["comment"],
                "metastore_id": mid, "row_filter": filters.get(full),
                "columns": sorted(columns.get(full, []), key=lambda c: c["position"])}))
        return schemas, tables

    def _check_coverage(self, summary: dict, catalogs: list[dict]) -> None:
        """Fail unless the warehouse's caller sees the whole metastore (see the module docstring)."""
        owner = summary.get("owner")
        who, _ = self.shared(f"who/{owner}", lambda: self.query(WHO_SQL, {"owner": owner or ""})[0])
        me = who["me"]
        admin = owner is not None and (me == owner or who["in_owner_group"] in (True, 1, "true"))
        seen, _ = self.shared("catalogs", lambda: {r["catalog_name"] for r in self.rows(CATALOGS)})
        missing = sorted(c["name"] for c in catalogs if c["name"] not in seen)
        if admin and not missing:
            return
        why = []
        if not admin:
            why.append(f"{me} is not a metastore admin (the metastore owner is {owner}, and {me} is neither it "
                       "nor a member of it)")
        if missing:
            why.append(f"{len(missing)} catalog(s) the REST API lists are not in information_schema.catalogs: "
                       + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
        raise IncompleteView(
            f"SQL warehouse {self.warehouse}: system.information_schema shows only the securables its caller may "
            f"see, and {'; '.join(why)}: the Unity Catalog inventory would be partial. Run as a metastore admin, "
            "or with --dbsec-uc-via rest.")

    # -- the sections -----------------------------------------------------------------------------

    def uc(self) -> dict:
        lst = self.listing()
        summary, catalogs, schemas, tables = lst["summary"], lst["catalogs"], lst["schemas"], lst["tables"]
        locations = _dicts(self.w.external_locations.list())
        credentials = _dicts(self.w.storage_credentials.list())
        keys = ([("metastore", summary["metastore_id"])]
                + [("catalog", c["name"]) for c in catalogs]
                + [("schema", s["full_name"]) for s in schemas if s["name"] not in rest.SYSTEM_SCHEMAS]
                + [("table", t["full_name"]) for t in tables]
                + [("external_location", x["name"]) for x in locations]
                + [("storage_credential", x["name"]) for x in credentials])
        direct, grants_from = self.shared("grants", self._read_grants)
        grants = {f"{t}/{n}": direct.get(f"{t}/{n}", {}) for t, n in keys}  # others: outside this workspace's view
        return {
            "assignment": self.assignment,
            "metastore": summary,
            "catalogs": catalogs,
            "schemas": schemas,
            "tables": tables,
            "external_locations": locations,
            "storage_credentials": credentials,
            "grants": {k: [{"principal": p, "privileges": v} for p, v in by.items()] for k, by in grants.items()},
            "read_via": "sql",
            "shared_from": self._from(lst["read_from"], grants_from),
        }

    def _from(self, *readers: str) -> dict:
        others = sorted({r for r in readers if r != self.ctx.scope})
        return {"metastore": others[0]} if others else {}

    def _read_grants(self) -> dict[str, dict[str, list[str]]]:
        """The direct grants of every securable information_schema shows: "<type>/<name>" -> grantee ->
        privileges (API spelling)."""
        out: dict[str, dict[str, list[str]]] = {}
        for stype, (view, name_cols) in PRIVILEGE_VIEWS.items():
            names = ", ".join(name_cols)
            spec = (view, f"grantee, {names}, privilege_type", DIRECT, f"{names}, grantee, privilege_type, grantor")
            for r in self.rows(spec):
                key = f"{stype}/" + ".".join(str(r[c]) for c in name_cols)
                privs = out.setdefault(key, {}).setdefault(r["grantee"], [])
                p = api_privilege(r["privilege_type"])
                if p not in privs:
                    privs.append(p)
        return out

    def column_tags(self) -> dict:
        lst = self.listing()
        columns = rest.unmasked_columns(lst["catalogs"], lst["tables"])
        found, tags_from = self.shared("tags", self._read_tags)
        return {"assignment": self.assignment, "tags": {c: found.get(c, []) for c in columns}, "vanished": [],
                "read_via": "sql", "shared_from": self._from(lst["read_from"], tags_from)}

    def _read_tags(self) -> dict[str, list[dict]]:
        found: dict[str, list[dict]] = {}
        for r in self.rows(TAGS):
            tag = {"tag_key": r["tag_name"]}
            if r["tag_value"] not in (None, ""):  # a key-only tag has '' here, no value on the REST API [verify]
                tag["tag_value"] = r["tag_value"]
            found.setdefault(_full(r, "catalog_name", "schema_name") + f".{r['column_name']}", []).append(tag)
        return found


def api_privilege(value) -> str:
    """A privilege as the REST API spells it (USE_CATALOG). information_schema is seen with the same
    underscore spelling in published queries; a spelling with spaces (as in GRANT statements, "USE
    CATALOG") is mapped too [verify]. Unknown privileges are kept."""
    return "_".join(str(value).strip().upper().split())


def _full(r: dict, catalog: str = "table_catalog", schema: str = "table_schema") -> str:
    return f"{r[catalog]}.{r[schema]}.{r['table_name']}"


def _names(text) -> list[str]:
    return [x.strip() for x in str(text).split(",") if x.strip()] if text else []


def canonical(data: dict) -> str:
    """A ``uc``/``uc_column_tags`` section's data as canonical JSON, ordering normalised and the path
    marker dropped: the two paths must give equal canonical forms for the same metastore (the
    REST-vs-SQL test and benchmarks/uc_paths.py compare with it)."""
    import copy
    import json

    d = copy.deepcopy(data)
    d.pop("read_via", None)
    d.pop("shared_from", None)
    for key in ("catalogs", "schemas", "tables", "external_locations", "storage_credentials"):
        if key in d:
            d[key] = sorted(d[key], key=lambda o: o.get("full_name") or o.get("name"))
    if "grants" in d:
        d["grants"] = {k: sorted(({"principal": a["principal"], "privileges": sorted(a["privileges"])} for a in v),
                                 key=lambda a: a["principal"]) for k, v in d["grants"].items()}
    if "tags" in d:
        d["tags"] = {c: sorted(v, key=lambda a: a["tag_key"]) for c, v in d["tags"].items()}
    return json.dumps(d, sort_keys=True)
