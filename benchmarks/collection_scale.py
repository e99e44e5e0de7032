"""Collection at account scale: API calls made vs the minimum, wall time vs the lower bound.

Generates a large tenant in memory, serves it from the emulator in a separate process (so the
emulator and the collector do not share one interpreter lock) with ``--latency-ms`` on every route
and ``--rate`` requests/s on the permissions routes (``/api/2.0/permissions/*`` and
``/api/2.1/unity-catalog/permissions/*``, one limit per workspace and route), then collects every
data section the built-in controls need for every workspace and the account through the Collector,
and reports:

* calls made (every HTTP request, 429s included) vs the minimum a collector needs for this tenant
  (``minimum_calls``: one request per list page at the server's page size, one per object that a
  control needs a per-object read for, nothing fetched twice);
* wall time vs the lower bound: per host, max(calls x latency / window, permissions calls / rate),
  the slowest host deciding (hosts are collected in parallel);
* failed requests (sections in ERROR, 429s that were retried), the highest concurrency per host the
  emulator saw.

Run ``python benchmarks/collection_scale.py`` (full size: 5 workspaces x 5,000 jobs and 2,000
clusters, 10,000 users + service principals, 5,000 groups, 50,000 tables) or ``--scale 0.05`` for
a quick run. Results of a run are in docs/benchmark-collection.md.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import posixpath
import statistics
import sys
import time
from collections import Counter

WORKSPACES = 5
# full-size counts: per workspace, or for the whole account (identities, tables across metastores)
JOBS_PER_WS, CLUSTERS_PER_WS = 5000, 2000
USERS, SPS, GROUPS = 9500, 500, 5000
TABLES = 50000  # across the account: one metastore per workspace, TABLES / WORKSPACES each
SMALL = dict(pipelines=20, policies=20, pools=10, warehouses=10, scopes=20, catalogs=5, schemas_per_catalog=10)
PAGING = {"scim_max": 100, "default_page": 50, "max_page": 1000}
AUDITOR = "dbsec-auditor"
# the rate-limited routes: the workspace object Permissions API and the Unity Catalog grants API
PERMISSION_ROUTES = ("/api/2.0/permissions/", "/api/2.1/unity-catalog/permissions/")


def _n(full: int, scale: float) -> int:
    return max(1, int(round(full * scale)))


def generate(scale: float = 1.0, workspaces: int = WORKSPACES) -> dict:
    """The benchmark tenant as a dict (the emulator's tenant format), ``scale`` x the full size."""
    users = [{"userName": f"user{i:05}@corp.example.com", "displayName": f"User {i}"} for i in range(_n(USERS, scale))]
    sps = [{"displayName": f"sp-{i:04}", "applicationId": f"00000000-0000-4000-8000-{i:012d}"}
           for i in range(_n(SPS, scale))]
    sps.append({"displayName": AUDITOR, "applicationId": "7f1c2b9e-0000-4000-8000-00000000a001",
                "roles": ["account_admin"]})
    n_groups = _n(GROUPS, scale)
    # every user and SP in one group; the groups together are assigned to every workspace
    members: list[list[str]] = [[] for _ in range(n_groups)]
    for i, u in enumerate(users):
        members[i % n_groups].append(u["userName"])
    for i, sp in enumerate(sps[:-1]):
        members[i % n_groups].append(sp["displayName"])
    groups = [{"displayName": f"team-{i:04}", "members": m} for i, m in enumerate(members)]
    groups.append({"displayName": "everyone-team", "members": [g["displayName"] for g in groups]})
    tables_per_ws = _n(TABLES // workspaces, scale)
    metastores, ws_list, credentials = [], [], []
    for w in range(workspaces):
        name = f"ws{w}"
        catalogs = []
        n_schemas = SMALL["catalogs"] * SMALL["schemas_per_catalog"]
        per_schema = max(1, math.ceil(tables_per_ws / n_schemas))
        left = tables_per_ws
        for c in range(SMALL["catalogs"]):
            schemas = []
            for s in range(SMALL["schemas_per_catalog"]):
                take = min(per_schema, left)
                left -= take
                schemas.append({"name": f"s{s}", "tables": [
                    {"name": f"t{t}", "columns": [
                        {"name": "id", "type_name": "LONG"},
                        {"name": "email", "type_name": "STRING",
                         "mask": {"function_name": f"c{c}.s{s}.mask_email", "using_column_names": []}}]}
                    for t in range(take)]})
            catalogs.append({"name": f"c{c}", "owner": "everyone-team", "schemas": schemas,
                             "grants": [{"principal": "everyone-team", "privileges": ["USE_CATALOG"]}]})
        metastores.append({"name": f"meta-{name}", "owner": AUDITOR, "region": "us-east-1",
                           "system_schemas": [{"schema": "access", "state": "ENABLE_COMPLETED"}],
                           "catalogs": catalogs})
        owner = users[0]["userName"]
        ws_list.append({
            "name": name, "pricing_tier": "ENTERPRISE", "aws_region": "us-east-1", "metastore": f"meta-{name}",
            "assignments": [{"principal": AUDITOR, "permissions": ["ADMIN"]},
                            {"principal": "everyone-team", "permissions": ["USER"]}],
            "conf": {"enableTokensConfig": "true", "maxTokenLifetimeDays": "90"},
            "clusters": [{"cluster_name": f"{name}-c{i:05}", "creator_user_name": owner,
                          "spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge",
                          "data_security_mode": "USER_ISOLATION"} for i in range(_n(CLUSTERS_PER_WS, scale))],
            "cluster_policies": [{"name": f"policy-{i}", "definition": {"spark_version": {"type": "fixed",
                                  "value": "15.4.x-scala2.12"}}} for i in range(SMALL["policies"])],
            "instance_pools": [{"instance_pool_name": f"pool-{i}", "node_type_id": "i3.xlarge"}
                               for i in range(SMALL["pools"])],
            "jobs": [{"creator_user_name": owner, "settings": {
                "name": f"{name}-job-{i:05}", "run_as": {"service_principal_name": sps[i % (len(sps) - 1)]["applicationId"]},
                "tasks": [{"task_key": "main", "python_wheel_task": {"package_name": "etl", "entry_point": "run"}}]}}
                for i in range(_n(JOBS_PER_WS, scale))],
            "pipelines": [{"name": f"{name}-pipe-{i}", "creator_user_name": owner,
                           "run_as": {"user_name": owner}, "spec": {"name": f"{name}-pipe-{i}"}}
                          for i in range(SMALL["pipelines"])],
            "warehouses": [{"name": f"wh-{i}", "creator_name": owner} for i in range(SMALL["warehouses"])],
            "secret_scopes": [{"name": f"scope-{i}", "backend_type": "DATABRICKS"} for i in range(SMALL["scopes"])],
            "notebooks": [{"path": f"/Shared/etl/nb{i}", "language": "PYTHON", "content": "print(1)\n"}
                          for i in range(10)],
        })
        credentials.append({"token": f"emu-auditor-{name}", "principal": AUDITOR, "workspace": name})
    credentials.append({"token": "emu-auditor-account", "principal": AUDITOR, "account": True})
    return {
        "version": 1, "description": f"collection benchmark tenant (scale {scale})", "paging": dict(PAGING),
        "credentials": credentials,
        "account": {"name": "benchmark account", "cloud": "aws", "users": users, "service_principals": sps,
                    "groups": groups, "metastores": metastores, "workspaces": ws_list},
    }


# -- what the built-in controls need ---------------------------------------------------------------


def needed_sections() -> list[tuple[str, str]]:
    """(scope kind, section) of every section a built-in control declares, plus those the access
    graph (INC controls) is built from, with their dependencies."""
    from pytest_dbsec.cli import builtin_controls
    from pytest_dbsec.collect import known_sections
    from pytest_dbsec.graph.access import ACCOUNT_SECTIONS, NAMING_WORKSPACE_SECTIONS, WORKSPACE_SECTIONS

    names = {n for c in builtin_controls() for n in c.sections}
    names |= {*ACCOUNT_SECTIONS, *WORKSPACE_SECTIONS, *NAMING_WORKSPACE_SECTIONS, "admin_assignments"}
    specs = known_sections()
    todo, out = list(names), set()
    while todo:
        n = todo.pop()
        if n in out or n not in specs:
            continue
        out.add(n)
        todo.extend(specs[n].needs)
    return sorted((specs[n].scope, n) for n in out)


def minimum_calls(tenant: dict, sections: list[tuple[str, str]]) -> dict[str, int]:
    """The fewest requests that read these sections of this tenant, per host ("account" or a
    workspace name): one per list page at the largest page the server gives, one per object
    read, nothing twice. "<host>:permissions" holds the calls on the host's busier rate-limited route."""
    from pytest_dbsec.collect.workspace import ACL_OBJECTS
    from pytest_dbsec.inventory import acl_section

    names = {n for _, n in sections}
    acct = tenant["account"]
    paging = tenant["paging"]
    scim = paging["scim_max"]
    dflt = paging["default_page"]
    out: dict[str, int] = {}

    def pages(n: int, size: int) -> int:
        return max(1, math.ceil(n / size))

    def scim_pages(n: int) -> int:
        # the SDK's SCIM iterators confirm the end with one more (empty) page
        return math.ceil(n / scim) + 1

    n_users, n_sps, n_groups = len(acct["users"]), len(acct["service_principals"]), len(acct["groups"])
    a = 0
    if "account_identities" in names:
        a += scim_pages(n_users) + scim_pages(n_sps) + scim_pages(n_groups)
    if "account_workspaces" in names:
        a += 1 + len(acct["workspaces"])
    if "account_network" in names:
        a += 1 + 5  # ip access lists + 5 settings
    if "account_logging" in names:
        a += 1
    if "sp_secrets" in names:
        a += n_sps
    if "account_network_policies" in names:
        a += 1 + len(acct["workspaces"])
    out["account"] = a + 1  # + the SDK's host-metadata read when the client is built
    metastores = {m["name"]: m for m in acct.get("metastores") or []}
    # One metastore per workspace here. Workspaces sharing a metastore read it once in a run (only each
    # one's catalog, location and credential lists and a SCIM Me are per workspace: collect/uc.py), which
    # this count does not model: refuse such a tenant rather than count it wrong.
    on = Counter(ws.get("metastore") for ws in acct["workspaces"] if ws.get("metastore"))
    if any(n > 1 for n in on.values()):
        raise ValueError("minimum_calls models one metastore per workspace; shared: "
                         + ", ".join(m for m, n in on.items() if n > 1))
    for ws in acct["workspaces"]:
        name, c, perms, grants = ws["name"], 0, 0, 0
        if "identities" in names:  # every account identity is in every benchmark workspace
            c += scim_pages(n_users) + scim_pages(n_sps) + scim_pages(n_groups + 2)  # + admins, users
        if "admin_assignments" in names:
            # on the account host: the workspace's permission assignments (the account identities
            # are the account_identities read, shared)
            out["account"] += 1
        for simple in ("tokens", "workspace_conf", "network"):
            c += simple in names
        if "settings" in names:
            c += 10
        if "authorization_acls" in names:
            c += 2
            perms += 2
        if "compute" in names:
            c += pages(len(ws["clusters"]), 100) + 4  # clusters pages; policies, pools, scripts, versions
        if "jobs" in names:
            c += 1 + len(ws["pipelines"]) + pages(len(ws["jobs"]), 100)
        if "workspace_objects" in names:
            c += 4
        for obj_type, _, key, *_ in ACL_OBJECTS:  # one permissions read per object of each type read
            if acl_section(obj_type) in names:
                n_obj = len(ws.get(key) or [])
                c += n_obj
                perms += n_obj
        if "secrets" in names:
            c += 1 + len(ws["secret_scopes"])
        # the workspace tree, walked once from / for the credential scan and the tree's ACLs: one
        # listing per folder (the root and every folder a notebook or repo implies) and per repo
        items = [n["path"] for n in ws.get("notebooks") or []] + [r["path"] for r in ws.get("repos") or []]
        folders = {"/"}
        for path in items:
            d = posixpath.dirname(path)
            while d not in folders:
                folders.add(d)
                d = posixpath.dirname(d)
        if {"notebooks", "workspace_acls"} & names:
            c += len(folders) + len(ws.get("repos") or [])
        if "notebooks" in names:
            c += len(ws["notebooks"])  # one export each
        if "workspace_acls" in names:  # then one permissions read per object below the root
            acl_reads = len(folders) - 1 + len(items)
            c += acl_reads
            perms += acl_reads
        meta = metastores.get(ws.get("metastore"))
        uc_names = {"uc", "uc_column_tags", "uc_recipients", "uc_system_schemas"} & names
        if meta is not None and uc_names:
            c += 1  # metastores.current, once for every UC section
            catalogs = meta["catalogs"]
            schemas = [s for cat in catalogs for s in cat["schemas"]]
            tables = [t for s in schemas for t in s["tables"]]
            if "uc" in names:
                c += 1 + 1 + len(catalogs) + sum(pages(len(s["tables"]), dflt) for s in schemas) + 2
                grants = 1 + len(catalogs) + len(schemas) + len(tables)
                c += grants
            if "uc_column_tags" in names:
                c += sum(1 for t in tables for col in t.get("columns") or [] if not col.get("mask"))
            if "uc_recipients" in names:
                c += 1
            if "uc_system_schemas" in names:
                c += 1
        out[name] = c + 1  # + host metadata, as for the account
        out[f"{name}:permissions"] = max(perms, grants)  # the busier of the two rate-limited routes
    return out


# -- the run ---------------------------------------------------------------------------------------


def _serve(tenant: dict, latency_ms: int, rate: float, conn) -> None:
    """Child process: serve the tenant until told to stop; then send back the request statistics."""
    from pytest_dbsec.emulator import Emulator

    emu = Emulator(tenant, live_edits=False)
    for ws in tenant["account"]["workspaces"]:
        for prefix in PERMISSION_ROUTES:  # one token bucket per workspace and route
            emu.add_fault(f"GET {prefix}*", rate_limit_per_s=rate, target=ws["name"])
    if latency_ms:
        emu.add_fault("* /*", latency_ms=latency_ms)
    emu.start()
    conn.send({"account_url": emu.account_url, "account_id": emu.account_id,
               "workspaces": [{"name": w["name"], "url": w["url"], "id": w["id"]} for w in emu.workspaces]})
    conn.recv()  # stop
    statuses: dict[str, int] = {}
    per_target: dict[str, int] = {}
    for r in emu.requests:
        statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
        per_target[r.target] = per_target.get(r.target, 0) + 1
    conn.send({"requests": len(emu.requests), "requests_by_host": per_target, "statuses": statuses, "peak_in_flight": dict(emu.peak_in_flight),
               "cpu_s": round(time.process_time(), 1), "timeline": _timeline(emu.requests)})
    emu.stop()


def _timeline(requests, step_s: float = 10.0) -> dict:
    """Per host and rate-limit route (``throttle.route_of``): when its requests ran and how fast, in
    ``step_s`` buckets from the first request of the run. This is how a route that runs below its
    limit, or starts late, shows (``--timeline``)."""
    from pytest_dbsec.throttle import route_of

    if not requests:
        return {}
    t0 = min(r.time for r in requests)
    out: dict = {}
    for r in requests:
        t = r.time - t0
        route = out.setdefault(r.target, {}).setdefault(route_of(r.path), {
            "requests": 0, "answered_429": 0, "first_s": t, "last_s": t, "per_s_by_step": []})
        route["requests"] += 1
        route["answered_429"] += r.status == 429
        route["first_s"], route["last_s"] = min(route["first_s"], t), max(route["last_s"], t)
        steps = route["per_s_by_step"]
        i = int(t // step_s)
        steps.extend([0] * (i + 1 - len(steps)))
        steps[i] += 1
    for routes in out.values():
        for route in routes.values():
            route["first_s"], route["last_s"] = round(route["first_s"], 1), round(route["last_s"], 1)
            route["per_s_by_step"] = [round(n / step_s) for n in route["per_s_by_step"]]
    return {"step_s": step_s, "hosts": out}


def _plan(info: dict) -> tuple[dict, dict]:
    """Targets and inventory scopes (name -> kind, id, host) of the whole run."""
    targets = {"account": {"kind": "account", "host": info["account_url"], "account_id": info["account_id"],
                           "token": "emu-auditor-account"}}
    scopes = {}
    for ws in info["workspaces"]:
        targets[ws["name"]] = {"kind": "workspace", "host": ws["url"], "token": f"emu-auditor-{ws['name']}"}
        scopes[ws["name"]] = {"id": ws["id"], "host": ws["url"]}
    return targets, scopes


def _collector(targets: dict, scopes: dict, workers: int, progress=lambda m: None):
    from pytest_dbsec.collect import Collector
    from pytest_dbsec.connect import Target
    from pytest_dbsec.inventory import ACCOUNT, Inventory, Scope

    inv = Inventory()
    inv.account = Scope(ACCOUNT, "account")
    tgt = {}
    for name, t in targets.items():
        if t["kind"] == "account":
            tgt[ACCOUNT] = Target(ACCOUNT, kind="account", host=t["host"], account_id=t["account_id"], token=t["token"])
        else:
            tgt[name] = Target(name, host=t["host"], token=t["token"])
    for name, sc in scopes.items():
        inv.workspaces[name] = Scope(name, "workspace", id=sc["id"], host=sc["host"])
    return inv, Collector(inv, tgt, max_workers=workers, progress=progress)


def _summary(inv) -> dict:
    """What the parent needs of a collection: per scope and section, (path, status) of every call, and
    the failures."""
    return {"calls": {sc.name: {n: [(c["path"], c["status"]) for c in s.calls] for n, s in sc.sections.items()}
                      for sc in inv.scopes()},
            "errors": [f"{e['scope']}/{e['section']}: {e['error']}" for e in inv.errors]}


def _collect_part(targets: dict, scopes: dict, wanted: list, workers: int, conn) -> None:
    """Child process: one collector for some of the workspaces (and perhaps the account), as one
    pytest-xdist worker is when ``-n N`` spreads the workspaces over N workers."""
    inv, collector = _collector(targets, scopes, workers)
    conn.send("ready")
    conn.recv()  # go
    started, cpu = time.monotonic(), time.process_time()
    collector.ensure([tuple(w) for w in wanted])
    conn.send({**_summary(inv), "wall_s": time.monotonic() - started, "cpu_s": time.process_time() - cpu})


def run(scale: float, *, workspaces: int = WORKSPACES, latency_ms: int = 50, rate: float = 100.0,
        workers: int = 16, processes: int = 1, progress=lambda m: None) -> dict:
    """Collect the generated tenant; ``processes`` > 1 spreads the workspaces over that many collector
    processes (round-robin; the account scope with the first), as ``pytest -n N`` does with its workers."""
    t0 = time.monotonic()
    tenant = generate(scale, workspaces)
    sections = needed_sections()
    minimum = minimum_calls(tenant, sections)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(tenant, latency_ms, rate, child), daemon=True)
    proc.start()
    parts: list = []
    try:
        info = parent.recv()
        setup_s = time.monotonic() - t0
        targets, scopes = _plan(info)
        names = list(scopes)
        processes = max(1, min(processes, len(names)))
        # each part: the workspaces it collects (and the account, for the first); every part may
        # reach the account host (admin_assignments reads the account's view of its workspace)
        plan = []
        for i in range(processes):
            mine = names[i::processes]
            wanted = [("account", n) for kind, n in sections if kind == "account"] if i == 0 else []
            wanted += [(w, n) for w in mine for kind, n in sections if kind == "workspace"]
            plan.append(({k: v for k, v in scopes.items() if k in mine}, wanted))
        if processes == 1:
            inv, collector = _collector(targets, scopes, workers, progress)
            started, cpu = time.monotonic(), time.process_time()
            collector.ensure(plan[0][1])
            wall, cpu = time.monotonic() - started, time.process_time() - cpu
            results = [{**_summary(inv), "cpu_s": cpu}]
        else:
            for part_scopes, wanted in plan:
                a, b = ctx.Pipe()
                p = ctx.Process(target=_collect_part, args=(targets, part_scopes, wanted, workers, b), daemon=True)
                p.start()
                parts.append((p, a))
            for _, a in parts:
                assert a.recv() == "ready"
            started = time.monotonic()
            for _, a in parts:
                a.send("go")
            results = [a.recv() for _, a in parts]
            wall = time.monotonic() - started
            cpu = sum(r["cpu_s"] for r in results)
        parent.send("stop")
        served = parent.recv()
    finally:
        for p, _ in parts:
            p.join(timeout=30)
        proc.join(timeout=30)
        if proc.is_alive():
            proc.terminate()
    perm_made: dict[str, int] = {}  # host -> calls on its busiest rate-limited route
    throttled = 0
    fam_calls: dict[tuple[str, str], int] = {}
    recorded = 0
    errors: list[str] = []
    for res in results:
        errors += res["errors"]
        for scope, secs in res["calls"].items():
            for calls in secs.values():
                recorded += len(calls)
                for fam in PERMISSION_ROUTES:
                    key = (scope, fam)
                    fam_calls[key] = fam_calls.get(key, 0) + sum(1 for path, _ in calls if path.startswith(fam))
                throttled += sum(1 for _, status in calls if status in (429, 503))
    made = dict(served["requests_by_host"])  # what the server saw: section calls + client set-up
    for (host, _), n in fam_calls.items():
        perm_made[host] = max(perm_made.get(host, 0), n)
    latency = latency_ms / 1000.0
    bound = {h: max(made[h] * latency / workers, perm_made.get(h, 0) / rate) for h in made}
    bound_min = {h: max(minimum[h] * latency / workers, minimum.get(f"{h}:permissions", 0) / rate) for h in made}
    return {
        "scale": scale, "workspaces": len(info["workspaces"]), "latency_ms": latency_ms, "rate_limit_per_s": rate,
        "window_per_host": workers, "collector_processes": processes, "sections": [f"{k}/{n}" for k, n in sections],
        "objects": {"jobs": sum(len(w["jobs"]) for w in tenant["account"]["workspaces"]),
                    "clusters": sum(len(w["clusters"]) for w in tenant["account"]["workspaces"]),
                    "users+sps": len(tenant["account"]["users"]) + len(tenant["account"]["service_principals"]),
                    "groups": len(tenant["account"]["groups"]),
                    "tables": sum(len(s["tables"]) for m in tenant["account"]["metastores"]
                                  for c in m["catalogs"] for s in c["schemas"])},
        "calls": sum(made.values()), "calls_recorded_by_sections": recorded, "calls_minimum": sum(v for k, v in minimum.items() if ":" not in k),
        "calls_by_host": made, "minimum_by_host": {k: v for k, v in minimum.items() if ":" not in k},
        "throttled_429": throttled, "section_errors": errors, "failed_sections": len(errors),
        "wall_s": round(wall, 2), "bound_s": round(max(bound.values()), 2),
        "bound_at_minimum_s": round(max(bound_min.values()), 2), "bound_by_host_s": {h: round(b, 2) for h, b in bound.items()},
        "setup_s": round(setup_s, 1), "emulator": served, "collector_cpu_s": round(cpu, 1),
        "collector_cpu_by_process_s": [round(r["cpu_s"], 1) for r in results],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the full-size tenant (default 1.0)")
    p.add_argument("--workspaces", type=int, default=WORKSPACES)
    p.add_argument("--latency-ms", type=int, default=50)
    p.add_argument("--rate", type=float, default=100.0, help="requests/s allowed on the permissions routes")
    p.add_argument("--workers", type=int, default=16, help="in-flight window per host (dbsec_max_workers)")
    p.add_argument("--processes", type=int, default=1,
                   help="collector processes, the workspaces spread over them as pytest -n N does (default 1)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--timeline", action="store_true",
                   help="also print, per host and route, when its requests ran and at what rate")
    p.add_argument("--repeat", type=int, default=1,
                   help="run N times and report the median wall ratio too (this machine's speed drifts; default 1)")
    args = p.parse_args(argv)
    results = []
    for i in range(max(1, args.repeat)):
        if args.repeat > 1:
            print(f"run {i + 1} of {args.repeat}", file=sys.stderr)
        results.append(run(args.scale, workspaces=args.workspaces, latency_ms=args.latency_ms, rate=args.rate,
                            workers=args.workers, processes=args.processes,
                            progress=lambda m: print(m, file=sys.stderr) if m.startswith("collected") else None))
    ratios = [r["wall_s"] / r["bound_s"] for r in results]
    median = statistics.median(ratios)
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else
                         {"runs": results, "wall_ratios": [round(x, 3) for x in ratios],
                          "median_wall_ratio": round(median, 3)}, indent=1))
        return 0 if not any(r["failed_sections"] for r in results) else 1
    for i, res in enumerate(results):
        if len(results) > 1:
            print(f"-- run {i + 1} of {len(results)}")
        _print_run(res, timeline=args.timeline)
    if len(results) > 1:
        print(f"wall / bound over {len(results)} runs: {', '.join(f'{x:.2f}x' for x in ratios)}; median {median:.2f}x")
    return 0 if not any(r["failed_sections"] for r in results) else 1


def _print_run(res: dict, *, timeline: bool) -> None:
    ratio_calls = res["calls"] / res["calls_minimum"]
    ratio_wall = res["wall_s"] / res["bound_s"]
    print(f"tenant (scale {res['scale']}): {res['objects']}")
    print(f"calls: {res['calls']} made, {res['calls_minimum']} minimum -> {ratio_calls:.3f}x "
          f"({res['throttled_429']} answered 429 and retried)")
    print(f"wall: {res['wall_s']} s, bound {res['bound_s']} s -> {ratio_wall:.2f}x "
          f"(bound at the minimum calls: {res['bound_at_minimum_s']} s)")
    print(f"failed sections: {res['failed_sections']}; peak in flight per host: {res['emulator']['peak_in_flight']}")
    per_process = " + ".join(f"{c} s" for c in res["collector_cpu_by_process_s"])
    print(f"CPU: collector {res['collector_cpu_s']} s in {res['collector_processes']} process(es) ({per_process}), "
          f"emulator {res['emulator']['cpu_s']} s (both share this machine's cores)")
    for e in res["section_errors"]:
        print(f"  {e}")
    if timeline:
        tl = res["emulator"]["timeline"]
        print(f"timeline (requests/s per {tl['step_s']:g} s; routes with 100+ requests):")
        for host, routes in sorted(tl["hosts"].items()):
            for route, r in sorted(routes.items(), key=lambda kv: kv[1]["first_s"]):
                if r["requests"] >= 100:
                    print(f"  {host:8s} {route:48s} {r['requests']:6d} req {r['first_s']:6.1f}-{r['last_s']:6.1f} s "
                          f"429x{r['answered_429']:<3d} {r['per_s_by_step']}")


if __name__ == "__main__":
    sys.exit(main())
