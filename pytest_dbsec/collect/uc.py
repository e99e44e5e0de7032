"""Unity Catalog data sections (workspace host, /api/2.1/unity-catalog/...)."""

from __future__ import annotations

from databricks.sdk.errors import NotFound

from . import section
from .workspace import _dicts


@section("uc", "workspace", title="Unity Catalog: metastore, catalogs, schemas, tables, grants")
def uc(w, ctx):
    try:
        assignment = w.metastores.current().as_dict()
    except NotFound:
        assignment = None
    if not assignment or not assignment.get("metastore_id"):
        # no metastore assigned: a fact (UC-01 fails on it), not a read error
        return {"assignment": None, "metastore": None, "catalogs": [], "schemas": [], "tables": [],
                "external_locations": [], "storage_credentials": [], "grants": {}}
    summary = w.metastores.summary().as_dict()
    catalogs = _dicts(w.catalogs.list())
    schemas = [s for batch in ctx.fan_out(lambda c: _dicts(w.schemas.list(catalog_name=c["name"])), catalogs)
               for s in batch]
    schemas_to_scan = [s for s in schemas if s.get("name") != "information_schema"]
    tables = [t for batch in ctx.fan_out(
        lambda s: _dicts(w.tables.list(catalog_name=s["catalog_name"], schema_name=s["name"])), schemas_to_scan)
        for t in batch]
    locations = _dicts(w.external_locations.list())
    credentials = _dicts(w.storage_credentials.list())
    securables = ([("metastore", summary["metastore_id"])]
                  + [("catalog", c["name"]) for c in catalogs]
                  + [("schema", s["full_name"]) for s in schemas_to_scan]
                  + [("table", t["full_name"]) for t in tables]
                  + [("external_location", x["name"]) for x in locations]
                  + [("storage_credential", x["name"]) for x in credentials])
    grants = ctx.fan_out(lambda s: _grants(w, *s), securables)
    return {
        "assignment": assignment,
        "metastore": summary,
        "catalogs": catalogs,
        "schemas": schemas,
        "tables": tables,
        "external_locations": locations,
        "storage_credentials": credentials,
        "grants": {f"{t}/{n}": g for (t, n), g in zip(securables, grants)},
    }


def _grants(w, securable_type: str, full_name: str) -> list[dict]:
    """Direct grants on one securable, all pages, raw (unknown privileges kept)."""
    out, token = [], None
    while True:
        query = {"max_results": 0}
        if token:
            query["page_token"] = token
        page = w.api_client.do("GET", f"/api/2.1/unity-catalog/permissions/{securable_type}/{full_name}",
                               query=query)
        out.extend(page.get("privilege_assignments") or [])
        token = page.get("next_page_token")
        if not token:
            return out
