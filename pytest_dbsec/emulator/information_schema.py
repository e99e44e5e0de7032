"""``system.information_schema`` views of the caller's metastore, served by the embedded SQL engine.

Every view is built from the same tenant data, through the same helpers, as the Unity Catalog REST
endpoints (``routes_uc``), so an object has the same owner, columns, masks and grants on both paths.
Column names and types are Databricks' (lower case, as a query returns them); only the columns our tool
or a reader is likely to use are modelled for the wide views (``tables``, ``columns``).

Facts modelled, from the Databricks information-schema reference:

* the ``system`` catalog's information schema covers every catalog of the metastore (here: the catalogs
  the REST list serves to this workspace, i.e. without ISOLATED catalogs bound elsewhere);
* rows are filtered to what the caller may see (``visible``): a metastore admin (the metastore owner, or
  a member of the owner group, transitively) sees everything; anyone else sees a securable they own or
  hold any privilege on (BROWSE included), directly, through a group or ``account users``, or through
  its catalog/schema. Columns, masks, row filters and column tags are not shown for a table visible only
  through BROWSE. [verify: the exact rule; the docs say "limited to the objects the user is privileged to
  interact with". Not modelled: the documented quirk that a MANAGE holder sees only its own grants.]
* ``*_privileges``: one row per (grantee, securable, privilege); privilege names in the API's underscore
  spelling (``USE_CATALOG``, ``ALL_PRIVILEGES``: what published queries against these views compare
  with) [verify]; ``is_grantable`` is always ``NO``; a privilege granted on a catalog or schema is also
  listed on every schema/table below it with ``inherited_from`` naming the ancestor (the primary key has
  no ``inherited_from`` column, so inherited rows are materialised per child) [verify: one published
  query reads 'CATALOG'/'SCHEMA' there]; direct rows have ``inherited_from`` 'NONE'
  (``DIRECT_INHERITED_FROM``) [verify: the reference only says "the ancestor relation that the privilege
  is inherited from", nullable for catalog_/schema_privileges, NOT NULL for table_privileges; published
  queries select direct grants with ``inherited_from = 'NONE'``]. The tool accepts NULL, 'NONE' and ''
  and either privilege spelling; tests switch these two module attributes to prove it.
  ``grantor`` is the securable's owner [verify].
  Metastore grants are not inherited (as in UC). Volumes are not modelled: ``volume_privileges`` is empty.
* column tags with no value have ``tag_value`` '' (the column is NOT NULL) [verify].
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Optional, Set

from . import routes_uc
from .identity import ACCOUNT_USERS
from .routing import Ctx
from .sql import Column, Table, register, ts_text


def _cols(*spec: str) -> tuple:
    out = []
    for s in spec:
        name, _, typ = s.partition(":")
        typ = typ or "STRING"
        out.append(Column(name, typ, {"LONG": "BIGINT"}.get(typ, typ)))
    return tuple(out)


_AUDIT = ("created:TIMESTAMP", "created_by", "last_altered:TIMESTAMP", "last_altered_by")
VIEWS: Dict[str, tuple] = {
    "catalogs": _cols("catalog_name", "catalog_owner", "comment", *_AUDIT),
    "schemata": _cols("catalog_name", "schema_name", "schema_owner", "comment", *_AUDIT),
    "tables": _cols("table_catalog", "table_schema", "table_name", "table_type", "is_insertable_into",
                    "commit_action", "table_owner", "comment", *_AUDIT, "data_source_format",
                    "storage_sub_directory", "storage_path"),
    "columns": _cols("table_catalog", "table_schema", "table_name", "column_name", "ordinal_position:INT",
                     "column_default", "is_nullable", "full_data_type", "data_type", "comment"),
    "column_masks": _cols("catalog_name", "schema_name", "table_name", "column_name", "mask_catalog",
                          "mask_schema", "mask_name", "mask_col_usage"),
    "row_filters": _cols("table_catalog", "table_schema", "table_name", "filter_catalog", "filter_schema",
                         "filter_name", "target_columns"),
    "column_tags": _cols("catalog_name", "schema_name", "table_name", "column_name", "tag_name", "tag_value"),
    "metastore_privileges": _cols("grantor", "grantee", "metastore_id", "privilege_type", "is_grantable",
                                  "inherited_from"),
    "catalog_privileges": _cols("grantor", "grantee", "catalog_name", "privilege_type", "is_grantable",
                                "inherited_from"),
    "schema_privileges": _cols("grantor", "grantee", "catalog_name", "schema_name", "privilege_type",
                               "is_grantable", "inherited_from"),
    "table_privileges": _cols("grantor", "grantee", "table_catalog", "table_schema", "table_name",
                              "privilege_type", "is_grantable", "inherited_from"),
    "volume_privileges": _cols("grantor", "grantee", "volume_catalog", "volume_schema", "volume_name",
                               "privilege_type", "is_grantable", "inherited_from"),
    "external_location_privileges": _cols("grantor", "grantee", "external_location_name", "privilege_type",
                                          "is_grantable", "inherited_from"),
    "storage_credential_privileges": _cols("grantor", "grantee", "storage_credential_name", "privilege_type",
                                           "is_grantable", "inherited_from"),
}

# REST type_name -> the SQL type name information_schema shows in data_type
_SQL_TYPE = {"LONG": "BIGINT", "SHORT": "SMALLINT", "BYTE": "TINYINT"}


class _Viewer:
    """What the calling principal may see in the workspace's metastore."""

    def __init__(self, ctx: Ctx):
        self.ctx = ctx
        self.m = routes_uc._metastore(ctx)
        p = ctx.principal
        self.names: Set[str] = {p.name, ACCOUNT_USERS} | {g.name for g in ctx.state.directory.ancestors(p)}
        self.admin = routes_uc.wire_name(ctx, self.m["owner"]) in self.names

    def holds(self, obj: dict, *, browse: bool = True) -> bool:
        if routes_uc.wire_name(self.ctx, obj.get("owner")) in self.names:
            return True
        for g in obj.get("grants") or []:
            privs = set(g["privileges"]) - (set() if browse else {"BROWSE"})
            if privs and routes_uc._grant_principal(self.ctx, g["principal"]) in self.names:
                return True
        return False

    def sees(self, *chain: dict, browse: bool = True) -> bool:
        """The last object of ``chain`` (catalog[, schema[, table]]) is visible."""
        return self.admin or any(self.holds(o, browse=browse) for o in chain)

    # walking the metastore
    def catalogs(self) -> Iterable[dict]:
        for c in routes_uc._visible_catalogs(self.ctx, self.m):
            if self.sees(c):
                yield c

    def schemas(self) -> Iterable[tuple]:
        for c in routes_uc._visible_catalogs(self.ctx, self.m):
            for s in c.get("schemas") or []:
                if self.sees(c, s):
                    yield c, s

    def tables(self, browse: bool = True) -> Iterable[tuple]:
        for c in routes_uc._visible_catalogs(self.ctx, self.m):
            for s in c.get("schemas") or []:
                for t in s.get("tables") or []:
                    if self.sees(c, s, t, browse=browse):
                        yield c, s, t


def _ts(v) -> Optional[str]:
    return ts_text(v) if isinstance(v, int) else None


def _audit(obj: dict, owner: Optional[str]) -> dict:
    return {"created": _ts(obj.get("created_at")), "created_by": obj.get("created_by") or owner,
            "last_altered": _ts(obj.get("updated_at") or obj.get("created_at")),
            "last_altered_by": obj.get("updated_by") or obj.get("created_by") or owner}


# what a direct grant's row holds in inherited_from (see the module docstring)
DIRECT_INHERITED_FROM: Optional[str] = "NONE"


def _sql_privilege(p: str) -> str:
    return p


def _grant_rows(v: _Viewer, obj: dict, where: dict, inherited_from: Optional[str] = None) -> List[dict]:
    """One row per (grantee, privilege) of obj's direct grants, placed on ``where``."""
    ctx = v.ctx
    grantor = routes_uc.wire_name(ctx, obj.get("owner"))
    out, seen = [], set()
    for g in obj.get("grants") or []:
        grantee = routes_uc._grant_principal(ctx, g["principal"])
        for p in g["privileges"]:
            if (grantee, p) in seen:
                continue
            seen.add((grantee, p))
            out.append({"grantor": grantor, "grantee": grantee, **where, "privilege_type": _sql_privilege(p),
                        "is_grantable": "NO",
                        "inherited_from": DIRECT_INHERITED_FROM if inherited_from is None else inherited_from})
    return out


def _catalogs(ctx: Ctx) -> List[dict]:
    v = _Viewer(ctx)
    out = []
    for c in v.catalogs():
        owner = routes_uc.wire_name(ctx, c["owner"])
        out.append({"catalog_name": c["name"], "catalog_owner": owner, "comment": c.get("comment"), **_audit(c, owner)})
    return out


def _schemata(ctx: Ctx) -> List[dict]:
    v = _Viewer(ctx)
    out = []
    for c, s in v.schemas():
        owner = routes_uc.wire_name(ctx, s["owner"])
        out.append({"catalog_name": c["name"], "schema_name": s["name"], "schema_owner": owner,
                    "comment": s.get("comment"), **_audit(s, owner)})
    return out


def _tables(ctx: Ctx) -> List[dict]:
    v = _Viewer(ctx)
    out = []
    for c, s, t in v.tables():
        rest = routes_uc._table(ctx, v.m, c, s, t, omit_columns=True)
        out.append({"table_catalog": c["name"], "table_schema": s["name"], "table_name": t["name"],
                    "table_type": rest.get("table_type") or "MANAGED",
                    "is_insertable_into": "NO" if rest.get("table_type") in ("VIEW", "METRIC_VIEW") else "YES",
                    "commit_action": "PRESERVE", "table_owner": rest["owner"], "comment": rest.get("comment"),
                    **_audit(t, rest["owner"]), "data_source_format": rest.get("data_source_format"),
                    "storage_sub_directory": None, "storage_path": rest.get("storage_location")})
    return out


def _columns(ctx: Ctx) -> List[dict]:
    v = _Viewer(ctx)
    out = []
    for c, s, t in v.tables(browse=False):
        for col in routes_uc._table(ctx, v.m, c, s, t)["columns"]:
            tn = col.get("type_name") or "STRING"
            out.append({"table_catalog": c["name"], "table_schema": s["name"], "table_name": t["name"],
                        "column_name": col["name"], "ordinal_position": col["position"], "column_default": None,
                        "is_nullable": "YES" if col.get("nullable", True) else "NO",
                        "full_data_type": col["type_text"], "data_type": _SQL_TYPE.get(tn, tn),
                        "comment": col.get("comment")})
    return out


def _split_name(full: str) -> List[Optional[str]]:
    parts = str(full).split(".")
    return ([None] * (3 - len(parts)) + parts)[-3:] if len(parts) <= 3 else [parts[0], parts[1], ".".join(parts[2:])]


def _column_masks(ctx: Ctx) -> List[dict]:
    v = _Viewer(ctx)
    out = []
    for c, s, t in v.tables(browse=False):
        for col in t.get("columns") or []:
            mask = col.get("mask") or {}
            if not mask.get("function_name"):
                continue
            mc, ms, mn = _split_name(mask["function_name"])
            using = mask.get("using_column_names") or []
            out.append({"catalog_name": c["name"], "schema_name": s["name"], "table_name": t["name"],
                        "column_name": col["name"], "mask_catalog": mc, "mask_schema": ms, "mask_name": mn,
                        "mask_col_usage": ",".join(using) if using else None})
    return out


def _row_filters(ctx: Ctx) -> List[dict]:
    v = _Viewer(ctx)
    out = []
    for c, s, t in v.tables(browse=False):
        rf = t.get("row_filter") or {}
        if not rf.get("function_name"):
            continue
        fc, fs, fn = _split_name(rf["function_name"])
        out.append({"table_catalog": c["name"], "table_schema": s["name"], "table_name": t["name"],
                    "filter_catalog": fc, "filter_schema": fs, "filter_name": fn,
                    "target_columns": ",".join(rf.get("input_column_names") or [])})
    return out


def _column_tags(ctx: Ctx) -> List[dict]:
    v = _Viewer(ctx)
    out = []
    for c, s, t in v.tables(browse=False):
        names = {col["name"] for col in t.get("columns") or []}
        for col, tags in (t.get("column_tags") or {}).items():
            if col not in names:
                continue
            for k, val in (tags or {}).items():
                out.append({"catalog_name": c["name"], "schema_name": s["name"], "table_name": t["name"],
                            "column_name": col, "tag_name": k, "tag_value": "" if val is None else str(val)})
    return out


def _metastore_privileges(ctx: Ctx) -> List[dict]:
    v = _Viewer(ctx)
    if not (v.admin or v.holds(v.m)):
        return []
    return _grant_rows(v, v.m, {"metastore_id": v.m["metastore_id"]})


def _catalog_privileges(ctx: Ctx) -> List[dict]:
    v = _Viewer(ctx)
    return [r for c in v.catalogs() for r in _grant_rows(v, c, {"catalog_name": c["name"]})]


def _schema_privileges(ctx: Ctx) -> List[dict]:
    v = _Viewer(ctx)
    out = []
    for c, s in v.schemas():
        where = {"catalog_name": c["name"], "schema_name": s["name"]}
        out += _grant_rows(v, s, where)
        out += _grant_rows(v, c, where, inherited_from=c["name"])
    return out


def _table_privileges(ctx: Ctx) -> List[dict]:
    v = _Viewer(ctx)
    out = []
    for c, s, t in v.tables():
        where = {"table_catalog": c["name"], "table_schema": s["name"], "table_name": t["name"]}
        out += _grant_rows(v, t, where)
        out += _grant_rows(v, s, where, inherited_from=f"{c['name']}.{s['name']}")
        out += _grant_rows(v, c, where, inherited_from=c["name"])
    return out


def _named_privileges(key: str, column: str) -> Callable[[Ctx], List[dict]]:
    def rows(ctx: Ctx) -> List[dict]:
        v = _Viewer(ctx)
        return [r for o in v.m.get(key) or [] if v.admin or v.holds(o)
                for r in _grant_rows(v, o, {column: o["name"]})]

    return rows


def _no_rows(ctx: Ctx) -> List[dict]:
    routes_uc._metastore(ctx)
    return []


def _readable(ctx: Ctx) -> None:
    """Everyone may query the information schema (rows are filtered instead); a workspace without a
    metastore has none."""
    from .sql import SqlError

    if ctx.ws.get("metastore") is None:
        raise SqlError("TABLE_OR_VIEW_NOT_FOUND", "The table or view `system`.`information_schema` cannot be "
                       "found: the workspace has no Unity Catalog metastore.", "42P01")


ROWS: Dict[str, Callable[[Ctx], List[dict]]] = {
    "catalogs": _catalogs, "schemata": _schemata, "tables": _tables, "columns": _columns,
    "column_masks": _column_masks, "row_filters": _row_filters, "column_tags": _column_tags,
    "metastore_privileges": _metastore_privileges, "catalog_privileges": _catalog_privileges,
    "schema_privileges": _schema_privileges, "table_privileges": _table_privileges,
    "volume_privileges": _no_rows,
    "external_location_privileges": _named_privileges("external_locations", "external_location_name"),
    "storage_credential_privileges": _named_privileges("storage_credentials", "storage_credential_name"),
}

def install() -> None:
    """Register the views with the SQL engine (idempotent)."""
    for name, columns in VIEWS.items():
        register(Table(f"system.information_schema.{name}", columns, ROWS[name], _readable))
