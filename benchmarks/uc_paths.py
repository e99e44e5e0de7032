"""Unity Catalog inventory at scale: the REST path vs the SQL-warehouse path (``--dbsec-uc-via sql``).

Generates one workspace with one metastore (full size: 10 catalogs x 50 schemas x 500 tables = 250,000
tables, each with two grantees holding two privileges: 1,000,000 direct table grants, plus catalog and
schema grants; three columns per table, one masked, one tagged), serves it from the emulator in a
separate process with ``--latency-ms`` on every route and ``--rate`` requests/s on the UC grants route
(as benchmarks/collection_scale.py does), and collects the ``uc`` and ``uc_column_tags`` sections once
per path, reporting API calls, statements, result rows, wall time and whether both paths produced the
same inventory.

The emulator's SQL engine is sqlite in one Python process: its statement times are not a warehouse's
(a Databricks SQL warehouse runs these scans distributed, but may first need to start). What carries
over is the call count: the REST path needs one call per catalog, schema, securable and unmasked column;
the SQL path 5 REST lists and one statement per view per 100,000 rows (plus result chunks).

Run ``python benchmarks/uc_paths.py --scale 0.01`` (2,500 tables, 10,000 table grants). Results are in
docs/benchmark-uc-paths.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time

from collection_scale import AUDITOR, _serve

from pytest_dbsec.collect.uc_sql import canonical

CATALOGS, SCHEMAS_PER_CATALOG, TABLES_PER_SCHEMA = 10, 50, 500
GROUPS = 20
WAREHOUSE = "wh-bench"
PAGING = {"scim_max": 100, "default_page": 50, "max_page": 1000}


def generate(scale: float = 1.0) -> dict:
    per_schema = max(1, int(round(TABLES_PER_SCHEMA * scale)))
    groups = [{"displayName": f"team-{i:02}", "members": []} for i in range(GROUPS)]
    groups.append({"displayName": "metastore-admins", "members": [AUDITOR]})
    catalogs, n = [], 0
    for c in range(CATALOGS):
        schemas = []
        for s in range(SCHEMAS_PER_CATALOG):
            tables = []
            for t in range(per_schema):
                n += 1
                tables.append({"name": f"t{t}", "owner": f"team-{n % GROUPS:02}", "columns": [
                    {"name": "id", "type_name": "LONG"},
                    {"name": "email", "mask": {"function_name": f"c{c}.s{s}.mask_email", "using_column_names": []}},
                    {"name": "name"}],
                    "column_tags": {"name": {"pii": None}},
                    "grants": [{"principal": f"team-{n % GROUPS:02}", "privileges": ["SELECT", "MODIFY"]},
                               {"principal": f"team-{(n + 7) % GROUPS:02}", "privileges": ["SELECT", "REFRESH"]}]})
            schemas.append({"name": f"s{s}", "owner": f"team-{s % GROUPS:02}", "tables": tables,
                            "grants": [{"principal": f"team-{s % GROUPS:02}", "privileges": ["USE_SCHEMA"]}]})
        catalogs.append({"name": f"c{c}", "owner": "metastore-admins", "schemas": schemas,
                         "grants": [{"principal": "account users", "privileges": ["USE_CATALOG", "BROWSE"]}]})
    return {
        "version": 1, "description": f"UC paths benchmark tenant (scale {scale})", "paging": dict(PAGING),
        "credentials": [{"token": "emu-auditor-ws0", "principal": AUDITOR, "workspace": "ws0"},
                        {"token": "emu-auditor-account", "principal": AUDITOR, "account": True}],
        "account": {
            "name": "uc benchmark account", "cloud": "aws", "users": [],
            "service_principals": [{"displayName": AUDITOR, "applicationId": "7f1c2b9e-0000-4000-8000-00000000a001",
                                    "roles": ["account_admin"]}],
            "groups": groups,
            "metastores": [{"name": "meta", "owner": "metastore-admins", "region": "us-east-1", "catalogs": catalogs,
                            "grants": [{"principal": "metastore-admins", "privileges": ["CREATE_CATALOG"]}]}],
            "workspaces": [{"name": "ws0", "pricing_tier": "ENTERPRISE", "aws_region": "us-east-1", "metastore": "meta",
                            "assignments": [{"principal": AUDITOR, "permissions": ["ADMIN"]}],
                            "warehouses": [{"id": WAREHOUSE, "name": "bench", "creator_name": AUDITOR,
                                            "state": "RUNNING", "warehouse_type": "PRO"}]}],
        },
    }


def _collect(info: dict, via: str, workers: int) -> dict:
    from pytest_dbsec.collect import Collector
    from pytest_dbsec.connect import Target
    from pytest_dbsec.inventory import Inventory, Scope

    ws = info["workspaces"][0]
    inv = Inventory()
    inv.workspaces[ws["name"]] = Scope(ws["name"], "workspace", id=ws["id"], host=ws["url"])
    targets = {ws["name"]: Target(ws["name"], host=ws["url"], token=f"emu-auditor-{ws['name']}")}
    opts = {"warehouse_id": WAREHOUSE, "warehouse_workspace": ws["name"], "uc_via": via}
    collector = Collector(inv, targets, max_workers=workers, options=opts)
    started = time.monotonic()
    collector.ensure([(ws["name"], "uc"), (ws["name"], "uc_column_tags")])
    wall = time.monotonic() - started
    secs = [inv.scope(ws["name"]).section(n) for n in ("uc", "uc_column_tags")]
    calls = [c for s in secs for c in s.calls]
    uc = secs[0].data or {}
    return {
        "wall_s": round(wall, 2),
        "calls": len(calls),
        "statements": sum(1 for c in calls if c["method"] == "POST" and c["path"] == "/api/2.0/sql/statements"),
        "statement_polls_and_chunks": sum(1 for c in calls if c["method"] == "GET" and c["path"].startswith("/api/2.0/sql/")),
        "grant_calls": sum(1 for c in calls if "/unity-catalog/permissions/" in c["path"]),
        "tag_calls": sum(1 for c in calls if "/entity-tag-assignments/" in c["path"]),
        "tables": len(uc.get("tables") or []),
        "grant_rows": sum(len(a["privileges"]) for v in (uc.get("grants") or {}).values() for a in v),
        "errors": [f"{s.name}: {s.error}" for s in secs if s.status != "ok"],
        "data": [canonical(s.data) if s.data else None for s in secs],
    }


def run(scale: float, *, paths=("rest", "sql"), latency_ms: int = 50, rate: float = 100.0, workers: int = 16) -> dict:
    tenant = generate(scale)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(tenant, latency_ms, rate, child), daemon=True)
    proc.start()
    try:
        info = parent.recv()
        results = {via: _collect(info, via, workers) for via in paths}
        parent.send("stop")
        parent.recv()
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.terminate()
    same = None
    if len(results) == 2:
        same = results["rest"]["data"] == results["sql"]["data"]
    for r in results.values():
        r.pop("data")
    return {"scale": scale, "latency_ms": latency_ms, "rate_limit_per_s": rate, "window_per_host": workers,
            "paths": results, "same_inventory": same}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=0.01, help="fraction of the 1M-grant tenant (default 0.01)")
    p.add_argument("--paths", default="rest,sql", help="rest,sql (default), rest or sql")
    p.add_argument("--latency-ms", type=int, default=50)
    p.add_argument("--rate", type=float, default=100.0, help="requests/s allowed on the UC grants route")
    p.add_argument("--workers", type=int, default=16)
    args = p.parse_args(argv)
    paths = tuple(x for x in args.paths.split(",") if x)
    if not set(paths) <= {"rest", "sql"}:
        p.error(f"--paths: rest and/or sql, not {args.paths!r}")
    res = run(args.scale, paths=paths, latency_ms=args.latency_ms, rate=args.rate, workers=args.workers)
    print(json.dumps(res, indent=1))
    return 0 if all(not r["errors"] for r in res["paths"].values()) and res["same_inventory"] is not False else 1


if __name__ == "__main__":
    sys.exit(main())
