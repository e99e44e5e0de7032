"""Unity Catalog APIs on a workspace host (/api/2.1/unity-catalog/...).

Data comes from the metastore assigned to the workspace (``metastore:`` in the tenant). UC lists use
``max_results``/``page_token`` paging: the SDK sends ``max_results=0`` ("server's choice"), answered with
the tenant's ``paging.default_page``. Grants are direct; effective permissions add those inherited from
the catalog and schema (metastore grants are not inherited, as in UC).
"""

from __future__ import annotations

import copy
import json
from typing import Dict, List, Optional, Tuple

from . import timeparse
from .routes_workspace import wire_name
from .routing import Ctx, RouteTable, bad_request, not_found, uc_paged

ROUTES = RouteTable()
route = ROUTES.route

UC = "/api/2.1/unity-catalog"
# Keys that only exist in tenant files; everything else on a UC object is passed through to the wire.
_TENANT_ONLY = {"grants", "schemas", "tables", "tags", "column_tags", "bindings", "catalogs", "external_locations",
                "storage_credentials", "system_schemas", "recipients"}

_TYPE_TEXT = {"LONG": "bigint", "INT": "int", "SHORT": "smallint", "BYTE": "tinyint", "DECIMAL": "decimal(10,0)"}


def _pass(o: dict) -> dict:
    return {k: copy.deepcopy(v) for k, v in o.items() if k not in _TENANT_ONLY}


def _metastore(ctx: Ctx) -> dict:
    name = ctx.ws.get("metastore")
    if name is None:
        raise not_found("No metastore assigned for the current workspace.", "METASTORE_DOES_NOT_EXIST")
    for m in ctx.account.get("metastores") or []:
        if m["name"] == name:
            return m
    raise not_found(f"Metastore {name} does not exist.", "METASTORE_DOES_NOT_EXIST")


def render_metastore(ctx: Ctx, m: dict) -> dict:
    out = _pass(m)
    out["owner"] = wire_name(ctx, m["owner"])
    out.setdefault("cloud", ctx.account.get("cloud", "aws"))
    out.setdefault("global_metastore_id", f"{out['cloud']}:{m.get('region', 'us-east-1')}:{m['metastore_id']}")
    return out


def _visible_catalogs(ctx: Ctx, m: dict) -> List[dict]:
    out = []
    for c in m.get("catalogs") or []:
        bound = c.get("bindings") or []
        # An ISOLATED catalog is usable only from the workspaces it is bound to.
        if c.get("isolation_mode") == "ISOLATED" and bound and ctx.target not in bound:
            continue
        out.append(c)
    return out


def _catalog(ctx: Ctx, m: dict, c: dict) -> dict:
    out = _pass(c)
    out.update(
        {
            "full_name": c["name"],
            "owner": wire_name(ctx, c["owner"]),
            "metastore_id": m["metastore_id"],
            "securable_type": "CATALOG",
            "browse_only": False,
        }
    )
    return out


def _schema(ctx: Ctx, m: dict, c: dict, s: dict) -> dict:
    out = _pass(s)
    out.update(
        {
            "catalog_name": c["name"],
            "full_name": f"{c['name']}.{s['name']}",
            "owner": wire_name(ctx, s["owner"]),
            "metastore_id": m["metastore_id"],
            "catalog_type": c.get("catalog_type", "MANAGED_CATALOG"),
            "browse_only": False,
        }
    )
    return out


def _column(col: dict, i: int) -> dict:
    out = copy.deepcopy(col)
    out.setdefault("position", i)
    tn = out.setdefault("type_name", "STRING")  # Databricks always sends it
    out.setdefault("type_text", _TYPE_TEXT.get(tn, tn.lower()))
    out.setdefault("nullable", True)
    out.setdefault(
        "type_json",
        json.dumps({"name": out["name"], "type": out["type_text"], "nullable": out["nullable"], "metadata": {}}),
    )
    return out


def _table(ctx: Ctx, m: dict, c: dict, s: dict, t: dict, omit_columns: bool = False) -> dict:
    out = _pass(t)
    out.update(
        {
            "catalog_name": c["name"],
            "schema_name": s["name"],
            "full_name": f"{c['name']}.{s['name']}.{t['name']}",
            "owner": wire_name(ctx, t["owner"]),
            "metastore_id": m["metastore_id"],
        }
    )
    out.setdefault("table_type", "MANAGED")  # Databricks always sends it
    if omit_columns:
        out.pop("columns", None)
    else:
        out["columns"] = [_column(col, i) for i, col in enumerate(t.get("columns") or [])]
    return out


def _find_catalog(ctx: Ctx, m: dict, name: str) -> dict:
    for c in _visible_catalogs(ctx, m):
        if c["name"] == name:
            return c
    raise not_found(f"Catalog '{name}' does not exist.", "CATALOG_DOES_NOT_EXIST")


def _find_schema(ctx: Ctx, m: dict, full: str) -> Tuple[dict, dict]:
    parts = full.split(".")
    if len(parts) != 2:
        raise bad_request(f"Invalid schema full name '{full}': expected <catalog>.<schema>.")
    c = _find_catalog(ctx, m, parts[0])
    for s in c.get("schemas") or []:
        if s["name"] == parts[1]:
            return c, s
    raise not_found(f"Schema '{full}' does not exist.", "SCHEMA_DOES_NOT_EXIST")


def _by_name(items) -> Dict[str, dict]:
    out: Dict[str, dict] = {}
    for item in items or []:
        out.setdefault(item["name"], item)  # the first of a name wins, as in a scan
    return out


def _find_table(ctx: Ctx, m: dict, full: str) -> Tuple[dict, dict, dict]:
    parts = full.split(".")
    if len(parts) != 3:
        raise bad_request(f"Invalid table full name '{full}': expected <catalog>.<schema>.<table>.")
    c, s = _find_schema(ctx, m, ".".join(parts[:2]))
    # a schema may hold thousands of tables and each grant or tag read names one: look it up
    tables = ctx.state.index(("uc-tables", m["metastore_id"], c["name"], s["name"]), lambda: _by_name(s.get("tables")))
    t = tables.get(parts[2])
    if t is not None:
        return c, s, t
    raise not_found(f"Table '{full}' does not exist.", "TABLE_DOES_NOT_EXIST")


# ------------------------------------------------------------------------------------ metastore


@route(f"{UC}/current-metastore-assignment")
def current_assignment(ctx: Ctx):
    m = _metastore(ctx)
    return {
        "metastore_id": m["metastore_id"],
        "workspace_id": ctx.ws["id"],
        "default_catalog_name": ctx.ws.get("default_catalog_name") or "hive_metastore",
    }


@route(f"{UC}/metastore_summary")
def metastore_summary(ctx: Ctx):
    return render_metastore(ctx, _metastore(ctx))


@route(f"{UC}/metastores")
def metastores_list(ctx: Ctx):
    items = [render_metastore(ctx, m) for m in ctx.account.get("metastores") or []]
    return uc_paged(ctx, items, "metastores")


def _metastore_by_id(ctx: Ctx, mid: str) -> dict:
    for m in ctx.account.get("metastores") or []:
        if m["metastore_id"] == mid:
            return m
    raise not_found(f"Metastore '{mid}' does not exist.", "METASTORE_DOES_NOT_EXIST")


@route(f"{UC}/metastores/{{id}}")
def metastores_get(ctx: Ctx):
    return render_metastore(ctx, _metastore_by_id(ctx, ctx.params["id"]))


@route(f"{UC}/metastores/{{id}}/systemschemas")
def system_schemas(ctx: Ctx):
    m = _metastore_by_id(ctx, ctx.params["id"])
    schemas = [{k: copy.deepcopy(v) for k, v in s.items() if k != "grants"} for s in m.get("system_schemas") or []]
    return uc_paged(ctx, schemas, "schemas")


# --------------------------------------------------------------------- catalogs, schemas, tables


@route(f"{UC}/catalogs")
def catalogs_list(ctx: Ctx):
    m = _metastore(ctx)
    return uc_paged(ctx, _visible_catalogs(ctx, m), "catalogs", lambda c: _catalog(ctx, m, c))


@route(f"{UC}/catalogs/{{name}}")
def catalogs_get(ctx: Ctx):
    m = _metastore(ctx)
    return _catalog(ctx, m, _find_catalog(ctx, m, ctx.params["name"]))


@route(f"{UC}/schemas")
def schemas_list(ctx: Ctx):
    m = _metastore(ctx)
    c = _find_catalog(ctx, m, ctx.require("catalog_name"))
    return uc_paged(ctx, c.get("schemas") or [], "schemas", lambda s: _schema(ctx, m, c, s))


@route(f"{UC}/schemas/{{full_name}}")
def schemas_get(ctx: Ctx):
    m = _metastore(ctx)
    c, s = _find_schema(ctx, m, ctx.params["full_name"])
    return _schema(ctx, m, c, s)


@route(f"{UC}/tables")
def tables_list(ctx: Ctx):
    m = _metastore(ctx)
    c, s = _find_schema(ctx, m, f"{ctx.require('catalog_name')}.{ctx.require('schema_name')}")
    omit = ctx.qbool("omit_columns")
    return uc_paged(ctx, s.get("tables") or [], "tables", lambda t: _table(ctx, m, c, s, t, omit))


@route(f"{UC}/tables/{{full_name}}")
def tables_get(ctx: Ctx):
    m = _metastore(ctx)
    c, s, t = _find_table(ctx, m, ctx.params["full_name"])
    return _table(ctx, m, c, s, t)


@route(f"{UC}/table-summaries")
def table_summaries(ctx: Ctx):
    import fnmatch

    m = _metastore(ctx)
    c = _find_catalog(ctx, m, ctx.require("catalog_name"))

    def like(pattern: Optional[str], value: str) -> bool:
        return pattern is None or fnmatch.fnmatchcase(value, pattern.replace("%", "*"))

    out = []
    for s in c.get("schemas") or []:
        if not like(ctx.q("schema_name_pattern"), s["name"]):
            continue
        for t in s.get("tables") or []:
            if like(ctx.q("table_name_pattern"), t["name"]):
                out.append({"full_name": f"{c['name']}.{s['name']}.{t['name']}", "table_type": t.get("table_type", "MANAGED")})
    return uc_paged(ctx, out, "tables")


@route(f"{UC}/volumes")
def volumes_list(ctx: Ctx):
    m = _metastore(ctx)
    _find_schema(ctx, m, f"{ctx.require('catalog_name')}.{ctx.require('schema_name')}")
    return uc_paged(ctx, [], "volumes")  # volumes are not modelled


@route(f"{UC}/functions")
def functions_list(ctx: Ctx):
    m = _metastore(ctx)
    _find_schema(ctx, m, f"{ctx.require('catalog_name')}.{ctx.require('schema_name')}")
    return uc_paged(ctx, [], "functions")  # functions are not modelled


# ------------------------------------------------------------------- locations and credentials


def _named(ctx: Ctx, m: dict, key: str, obj: dict) -> dict:
    out = _pass(obj)
    out["owner"] = wire_name(ctx, obj["owner"])
    out["metastore_id"] = m["metastore_id"]
    if key == "storage_credentials":
        out.setdefault("full_name", obj["name"])
    if key == "external_locations" and obj.get("credential_name"):
        for cred in m.get("storage_credentials") or []:
            if cred["name"] == obj["credential_name"]:
                out.setdefault("credential_id", cred["id"])
    return out


def _find_named(ctx: Ctx, m: dict, key: str, name: str, code: str) -> dict:
    for o in m.get(key) or []:
        if o["name"] == name:
            return o
    raise not_found(f"{key.replace('_', ' ')[:-1].capitalize()} '{name}' does not exist.", code)


@route(f"{UC}/external-locations")
def ext_locations_list(ctx: Ctx):
    m = _metastore(ctx)
    return uc_paged(ctx, [_named(ctx, m, "external_locations", o) for o in m.get("external_locations") or []], "external_locations")


@route(f"{UC}/external-locations/{{name}}")
def ext_locations_get(ctx: Ctx):
    m = _metastore(ctx)
    return _named(ctx, m, "external_locations", _find_named(ctx, m, "external_locations", ctx.params["name"], "EXTERNAL_LOCATION_DOES_NOT_EXIST"))


@route(f"{UC}/storage-credentials")
def storage_creds_list(ctx: Ctx):
    m = _metastore(ctx)
    return uc_paged(ctx, [_named(ctx, m, "storage_credentials", o) for o in m.get("storage_credentials") or []], "storage_credentials")


@route(f"{UC}/storage-credentials/{{name}}")
def storage_creds_get(ctx: Ctx):
    m = _metastore(ctx)
    return _named(ctx, m, "storage_credentials", _find_named(ctx, m, "storage_credentials", ctx.params["name"], "STORAGE_CREDENTIAL_DOES_NOT_EXIST"))


@route(f"{UC}/recipients")
def recipients_list(ctx: Ctx):
    m = _metastore(ctx)
    return uc_paged(ctx, [_named(ctx, m, "recipients", r) for r in m.get("recipients") or []], "recipients")


@route(f"{UC}/recipients/{{name}}")
def recipients_get(ctx: Ctx):
    m = _metastore(ctx)
    return _named(ctx, m, "recipients", _find_named(ctx, m, "recipients", ctx.params["name"], "RECIPIENT_DOES_NOT_EXIST"))


# ------------------------------------------------------------------------------------- bindings


@route(f"{UC}/workspace-bindings/catalogs/{{name}}")
def catalog_bindings(ctx: Ctx):
    m = _metastore(ctx)
    c = _find_catalog(ctx, m, ctx.params["name"])
    return {"workspaces": _binding_ids(ctx, c)}


def _binding_ids(ctx: Ctx, obj: dict) -> List[int]:
    by_name = {ws["name"]: ws["id"] for ws in ctx.account.get("workspaces") or []}
    return [by_name[n] for n in obj.get("bindings") or [] if n in by_name]


@route(f"{UC}/bindings/{{securable_type}}/{{name}}")
def bindings(ctx: Ctx):
    m = _metastore(ctx)
    st = ctx.params["securable_type"].lower()
    if st == "catalog":
        obj = _find_catalog(ctx, m, ctx.params["name"])
    elif st == "external_location":
        obj = _find_named(ctx, m, "external_locations", ctx.params["name"], "EXTERNAL_LOCATION_DOES_NOT_EXIST")
    elif st in ("storage_credential", "credential"):
        obj = _find_named(ctx, m, "storage_credentials", ctx.params["name"], "STORAGE_CREDENTIAL_DOES_NOT_EXIST")
    else:
        raise bad_request(f"Unsupported securable type for bindings: {ctx.params['securable_type']}")
    items = [{"workspace_id": i, "binding_type": "BINDING_TYPE_READ_WRITE"} for i in _binding_ids(ctx, obj)]
    return uc_paged(ctx, items, "bindings")


# --------------------------------------------------------------------------------------- grants


def _securable_chain(ctx: Ctx, m: dict, stype: str, full: str) -> List[Tuple[str, str, dict]]:
    """[(TYPE, full name, object)] from the top of the inheritance chain down to the securable."""
    st = stype.lower()
    if st == "metastore":
        if full not in (m["metastore_id"], m["name"]):
            raise not_found(f"Metastore '{full}' does not exist.", "METASTORE_DOES_NOT_EXIST")
        return [("METASTORE", m["metastore_id"], m)]
    if st == "catalog":
        return [("CATALOG", full, _find_catalog(ctx, m, full))]
    if st == "schema":
        c, s = _find_schema(ctx, m, full)
        return [("CATALOG", c["name"], c), ("SCHEMA", full, s)]
    if st in ("table", "view", "materialized_view", "streaming_table"):
        c, s, t = _find_table(ctx, m, full)
        return [("CATALOG", c["name"], c), ("SCHEMA", f"{c['name']}.{s['name']}", s), ("TABLE", full, t)]
    if st == "external_location":
        return [("EXTERNAL_LOCATION", full, _find_named(ctx, m, "external_locations", full, "EXTERNAL_LOCATION_DOES_NOT_EXIST"))]
    if st in ("storage_credential", "credential"):
        return [("STORAGE_CREDENTIAL", full, _find_named(ctx, m, "storage_credentials", full, "STORAGE_CREDENTIAL_DOES_NOT_EXIST"))]
    raise bad_request(f"Unsupported securable type: {stype}")


def _grant_principal(ctx: Ctx, name: str) -> str:
    return name if name == "account users" else wire_name(ctx, name)


def _assignments_page(ctx: Ctx, items: list) -> dict:
    principal = ctx.q("principal")
    if principal:
        items = [i for i in items if i["principal"] == _grant_principal(ctx, principal)]
    return uc_paged(ctx, items, "privilege_assignments")


@route(f"{UC}/permissions/{{securable_type}}/{{full_name}}")
def grants_get(ctx: Ctx):
    m = _metastore(ctx)
    chain = _securable_chain(ctx, m, ctx.params["securable_type"], ctx.params["full_name"])
    merged: dict = {}
    for g in chain[-1][2].get("grants") or []:
        p = _grant_principal(ctx, g["principal"])
        privs = merged.setdefault(p, [])
        privs.extend(x for x in g["privileges"] if x not in privs)
    return _assignments_page(ctx, [{"principal": p, "privileges": v} for p, v in merged.items()])


@route(f"{UC}/effective-permissions/{{securable_type}}/{{full_name}}")
def grants_effective(ctx: Ctx):
    m = _metastore(ctx)
    chain = _securable_chain(ctx, m, ctx.params["securable_type"], ctx.params["full_name"])
    merged: dict = {}
    last = len(chain) - 1
    for i, (stype, name, obj) in enumerate(chain):
        for g in obj.get("grants") or []:
            p = _grant_principal(ctx, g["principal"])
            privs = merged.setdefault(p, [])
            for priv in g["privileges"]:
                item = {"privilege": priv}
                if i != last:
                    item.update({"inherited_from_type": stype, "inherited_from_name": name})
                if item not in privs:
                    privs.append(item)
    return _assignments_page(ctx, [{"principal": p, "privileges": v} for p, v in merged.items()])


# ---------------------------------------------------------------------------------------- tags


def _tagged(ctx: Ctx, m: dict, entity_type: str, entity_name: str) -> Tuple[dict, Optional[dict]]:
    """(tags mapping, the object for timestamps)."""
    et = entity_type.lower()
    if et in ("catalogs", "catalog"):
        c = _find_catalog(ctx, m, entity_name)
        return c.get("tags") or {}, c
    if et in ("schemas", "schema"):
        _, s = _find_schema(ctx, m, entity_name)
        return s.get("tags") or {}, s
    if et in ("tables", "table"):
        _, _, t = _find_table(ctx, m, entity_name)
        return t.get("tags") or {}, t
    if et in ("columns", "column"):
        parts = entity_name.split(".")
        if len(parts) != 4:
            raise bad_request(f"Invalid column name '{entity_name}': expected <catalog>.<schema>.<table>.<column>.")
        _, _, t = _find_table(ctx, m, ".".join(parts[:3]))
        if parts[3] not in {c["name"] for c in t.get("columns") or []}:
            raise not_found(f"Column '{entity_name}' does not exist.", "RESOURCE_DOES_NOT_EXIST")
        return (t.get("column_tags") or {}).get(parts[3]) or {}, t
    raise bad_request(f"Unsupported entity type: {entity_type} (catalogs, schemas, tables, columns)")


def _tag_assignments(ctx: Ctx) -> List[dict]:
    m = _metastore(ctx)
    et, en = ctx.params["entity_type"], ctx.params["entity_name"]
    tags, obj = _tagged(ctx, m, et, en)
    stamp = (obj or {}).get("updated_at") or (obj or {}).get("created_at")
    out = []
    for k, v in tags.items():
        item = {"entity_type": et, "entity_name": en, "tag_key": k}
        if v is not None:
            item["tag_value"] = v
        if isinstance(stamp, int):
            item["update_time"] = timeparse.to_rfc3339(stamp)
        out.append(item)
    return out


@route(f"{UC}/entity-tag-assignments/{{entity_type}}/{{entity_name}}/tags")
def tags_list(ctx: Ctx):
    return uc_paged(ctx, _tag_assignments(ctx), "tag_assignments")


@route(f"{UC}/entity-tag-assignments/{{entity_type}}/{{entity_name}}/tags/{{tag_key}}")
def tags_get(ctx: Ctx):
    for t in _tag_assignments(ctx):
        if t["tag_key"] == ctx.params["tag_key"]:
            return t
    raise not_found(f"Tag '{ctx.params['tag_key']}' is not assigned to {ctx.params['entity_name']}.")
