"""Access-graph benchmark at Databricks' documented limits (issue 5 section 4).

Generates an inventory in memory, in the section shapes the collectors produce (pytest_dbsec/collect),
builds the AccessGraph and times blast-radius and who-can-reach queries. Results: docs/benchmark-graph.md.

    python benchmarks/graph_scale.py            # the limits: about a minute, ~2 GB of RAM at peak
    python benchmarks/graph_scale.py --small    # a quick run on a tenant a hundred times smaller

The tenant (``Scale``): users + service principals; groups in LAYERS layers, each group a member of
one group of the next layer up (some of two), so membership nests LAYERS deep, plus one cycle across
all layers; one user directly in ``wide_parents`` groups; catalogs -> schemas -> tables with
``grants_per_table`` direct grants on each table (to groups and users), USE_CATALOG/SELECT on catalogs
to top-layer groups (inherited by thousands of tables), USE_SCHEMA on schemas, BROWSE to ``account
users``; per workspace jobs/pipelines running as SPs, object ACLs, secret scopes and tokens.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field

from pytest_dbsec.graph.access import AccessGraph
from pytest_dbsec.inventory import ACCOUNT, ACL_OBJECT_TYPES, OK, Inventory, Scope, Section, acl_section

LAYERS = 10  # Databricks: at most 10 nested layers
DOMAIN = "bench.example.com"
METASTORE_ID = "bbbbbbbb-0000-4000-8000-000000000001"


@dataclass(frozen=True)
class Scale:
    users: int = 9_000
    sps: int = 1_000  # users + SPs = 10,000
    groups: int = 5_000  # LAYERS layers of groups // LAYERS each
    wide_parents: int = 1_500  # direct parent groups of one principal
    catalogs: int = 10
    schemas_per_catalog: int = 100
    tables_per_schema: int = 100
    grants_per_table: int = 10  # 10 x 100 x 100 tables x 10 = 1,000,000 table grants
    workspaces: int = 2
    jobs_per_workspace: int = 2_000
    clusters_per_workspace: int = 500
    scopes_per_workspace: int = 200
    tokens_per_workspace: int = 5_000

    @property
    def table_grants(self) -> int:
        return self.catalogs * self.schemas_per_catalog * self.tables_per_schema * self.grants_per_table


FULL = Scale()
SMALL = Scale(users=900, sps=100, groups=500, wide_parents=150, catalogs=4, schemas_per_catalog=25,
              tables_per_schema=25, grants_per_table=4, workspaces=2, jobs_per_workspace=200,
              clusters_per_workspace=50, scopes_per_workspace=20, tokens_per_workspace=500)
TINY = Scale(users=12, sps=3, groups=40, wide_parents=15, catalogs=2, schemas_per_catalog=2,
             tables_per_schema=3, grants_per_table=2, workspaces=2, jobs_per_workspace=3,
             clusters_per_workspace=2, scopes_per_workspace=2, tokens_per_workspace=4)


@dataclass
class Tenant:
    """The inventory, and the facts the generator put in it (so a test can check the graph's answers
    against the construction, not against the graph)."""

    inventory: Inventory
    deep_user: str  # in the bottom group of the deep path only
    deep_path: list[str]  # the groups from the deep user's one group up to the top layer
    wide_user: str  # directly in scale.wide_parents groups
    wide_groups: set[str]
    sp: str  # applicationId
    sp_display: str
    group: str  # a mid-layer group
    cycle: list[str]  # the groups of the one cycle, sorted
    table: str
    catalog: str
    table_grantees: list[str]  # direct grantees of `table`
    catalog_select_group: str  # a top-layer group holding SELECT on `catalog`
    stats: dict = field(default_factory=dict)


def _group_name(layer: int, i: int) -> str:
    return f"g{layer}-{i:04d}"


def _ref(kind: str, pid: str, display: str) -> dict:
    return {"$ref": f"{kind}/{pid}", "display": display, "value": pid}


def _ok(name: str, data) -> Section:
    return Section(name, status=OK, data=data, collected_at="2026-11-22T00:00:00Z")


def generate(scale: Scale = FULL, seed: int = 5) -> Tenant:
    rnd = random.Random(seed)
    ids = iter(range(1_000_000_000_000_000, 10**18))

    # -- principals and nesting ------------------------------------------------------------------
    users = [{"active": True, "displayName": f"User {i}", "id": str(next(ids)),
              "emails": [{"primary": True, "type": "work", "value": f"user{i:05d}@{DOMAIN}"}],
              "userName": f"user{i:05d}@{DOMAIN}", "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}
             for i in range(scale.users)]
    sps = [{"active": True, "applicationId": f"00000000-0000-4000-8000-{i:012d}", "displayName": f"sp-{i:04d}",
            "id": str(next(ids)), "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"]}
           for i in range(scale.sps)]
    per_layer = scale.groups // LAYERS
    layers = [[{"displayName": _group_name(layer, i), "id": str(next(ids)), "members": [], "groups": [],
                "meta": {"resourceType": "Group"}, "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"]}
               for i in range(per_layer)] for layer in range(LAYERS)]
    groups = [g for layer in layers for g in layer]

    def join(member: dict, kind: str, display: str, group: dict) -> None:
        group["members"].append(_ref(kind, member["id"], display))
        if kind == "Groups":
            member["groups"].append({**_ref("Groups", group["id"], group["displayName"]), "type": "direct"})

    # each group is in one group of the layer above (i -> i // 2: a bushy tree), 10% in a second one;
    # the deep path (index 0 of every layer) has one parent each, so its chain is known. The last
    # group of every layer is kept apart for the cycle: a ring through all LAYERS layers
    last = per_layer - 1
    for layer in range(LAYERS - 1):
        for i, g in enumerate(layers[layer][:last]):
            parents = {i // 2}
            if i and rnd.random() < 0.1:
                parents.add(rnd.randrange(1, last))
            for j in sorted(parents):
                join(g, "Groups", g["displayName"], layers[layer + 1][j])
    cycle_groups = [layers[layer][last] for layer in range(LAYERS)]
    for below, above in zip(cycle_groups, cycle_groups[1:] + cycle_groups[:1]):
        join(below, "Groups", below["displayName"], above)

    deep_user, wide_user = users[0], users[1]
    join(deep_user, "Users", deep_user["displayName"], layers[0][0])
    for u in users[2:]:
        for g in rnd.sample(range(per_layer), min(per_layer, rnd.randint(1, 5))):
            join(u, "Users", u["displayName"], layers[rnd.randrange(4)][g])
    wide = rnd.sample(groups[1:], scale.wide_parents)  # not the deep path's bottom group
    for g in wide:
        join(wide_user, "Users", wide_user["displayName"], g)
    for sp in sps:
        for g in rnd.sample(range(1, per_layer), 2):
            join(sp, "ServicePrincipals", sp["displayName"], layers[rnd.randrange(3)][g])

    # -- Unity Catalog -------------------------------------------------------------------------
    grantees = [g["displayName"] for g in groups] * 7 + [u["userName"] for u in users] * 2 + \
        [s["applicationId"] for s in sps]
    owners = [g["displayName"] for g in layers[LAYERS - 1]] + [s["applicationId"] for s in sps]
    top = [g["displayName"] for g in layers[LAYERS - 1][1:]]
    catalogs, schemas, tables, grants = [], [], [], {}
    grants[f"metastore/{METASTORE_ID}"] = [{"principal": top[0], "privileges": ["CREATE_CATALOG"]}]
    for c in range(scale.catalogs):
        cname = f"cat{c:02d}"
        catalogs.append({"browse_only": False, "catalog_type": "MANAGED_CATALOG", "full_name": cname,
                         "isolation_mode": "OPEN", "metastore_id": METASTORE_ID, "name": cname,
                         "owner": rnd.choice(owners), "securable_type": "CATALOG",
                         "storage_root": f"s3://bench/{cname}"})
        grants[f"catalog/{cname}"] = (
            [{"principal": g, "privileges": ["USE_CATALOG"]} for g in rnd.sample(top, min(len(top), 20))]
            + [{"principal": top[c % len(top)], "privileges": ["USE_CATALOG", "USE_SCHEMA", "SELECT"]},
               {"principal": "account users", "privileges": ["BROWSE"]}])
        for s in range(scale.schemas_per_catalog):
            sname, sfull = f"s{s:03d}", f"{cname}.s{s:03d}"
            schemas.append({"browse_only": False, "catalog_name": cname, "catalog_type": "MANAGED_CATALOG",
                            "full_name": sfull, "metastore_id": METASTORE_ID, "name": sname,
                            "owner": rnd.choice(owners), "schema_id": f"schema-{c}-{s}"})
            grants[f"schema/{sfull}"] = [{"principal": g, "privileges": ["USE_SCHEMA"]}
                                         for g in rnd.sample(grantees[:len(groups)], 3)]
            for t in range(scale.tables_per_schema):
                tname = f"t{t:04d}"
                tfull = f"{sfull}.{tname}"
                tables.append({"catalog_name": cname, "columns": [
                    {"name": "id", "nullable": False, "position": 0, "type_name": "LONG", "type_text": "bigint"},
                    {"name": "value", "nullable": True, "position": 1, "type_name": "STRING",
                     "type_text": "string"}],
                    "data_source_format": "DELTA", "full_name": tfull, "metastore_id": METASTORE_ID,
                    "name": tname, "owner": rnd.choice(owners), "schema_name": sname,
                    "table_id": f"table-{c}-{s}-{t}", "table_type": "MANAGED"})
                grants[f"table/{tfull}"] = [
                    {"principal": p, "privileges": ["SELECT"] if rnd.random() < 0.7 else ["SELECT", "MODIFY"]}
                    for p in dict.fromkeys(rnd.choice(grantees) for _ in range(scale.grants_per_table))]
    uc = {"assignment": {"default_catalog_name": "cat00", "metastore_id": METASTORE_ID},
          "metastore": {"metastore_id": METASTORE_ID, "name": "bench-metastore", "owner": top[0],
                        "privilege_model_version": "1.0", "region": "us-east-1"},
          "catalogs": catalogs, "schemas": schemas, "tables": tables,
          "external_locations": [], "storage_credentials": [], "grants": grants}

    # -- account --------------------------------------------------------------------------------
    inv = Inventory()
    inv.account = Scope(ACCOUNT, "account")
    ws_names = [f"ws{i}" for i in range(scale.workspaces)]
    ws_ids = {name: 7_000_000_000_000_000 + i for i, name in enumerate(ws_names)}
    assigned = rnd.sample(groups, min(len(groups), 200))
    inv.account.sections["account_identities"] = _ok("account_identities",
                                                     {"users": users, "service_principals": sps, "groups": groups})
    inv.account.sections["account_workspaces"] = _ok("account_workspaces", {"workspaces": [
        {"workspace_id": ws_ids[name], "workspace_name": name, "workspace_status": "RUNNING",
         "permission_assignments": [
             {"permissions": ["ADMIN" if k < 3 else "USER"],
              "principal": {"display_name": g["displayName"], "group_name": g["displayName"],
                            "principal_id": int(g["id"])}} for k, g in enumerate(assigned)]}
        for name in ws_names]})
    # roles on identities: every group and SP has a rule set; a tenth of the groups name a user as manager
    inv.account.sections["identity_roles"] = _ok("identity_roles", {"rule_sets": [
        {"resource_kind": "group", "principal": g["displayName"], "display_name": g["displayName"],
         "name": f"accounts/bench/groups/{g['id']}/ruleSets/default",
         "grant_rules": [{"role": "roles/group.manager", "principals": [f"users/{users[k % len(users)]['userName']}"]}]
         if k % 10 == 0 else []} for k, g in enumerate(groups)] + [
        {"resource_kind": "service_principal", "principal": sp["applicationId"], "display_name": sp["displayName"],
         "name": f"accounts/bench/servicePrincipals/{sp['applicationId']}/ruleSets/default", "grant_rules": []}
        for sp in sps], "vanished": []})
    inv.account.sections["sp_secrets"] = _ok("sp_secrets", {"secrets": {
        sp["id"]: [{"create_time": "2026-01-01T00:00:00Z", "expire_time": "2027-01-01T00:00:00Z",
                    "id": f"secret-{sp['id']}", "secret_hash": "abcd", "status": "ACTIVE"}] for sp in sps}})

    # -- workspaces -----------------------------------------------------------------------------
    members = users + sps
    for name in ws_names:
        admins_id, users_id = str(next(ids)), str(next(ids))
        admin_members = members[2:7]
        ws_users = [{**u, "groups": [{**_ref("Groups", users_id, "users"), "type": "direct"}]
                     + ([{**_ref("Groups", admins_id, "admins"), "type": "direct"}] if u in admin_members else []),
                     "entitlements": [{"value": "workspace-access"}]} for u in users]
        ws_sps = [{**s, "groups": [{**_ref("Groups", users_id, "users"), "type": "direct"}]} for s in sps]
        local = [
            {"displayName": "admins", "id": admins_id, "meta": {"resourceType": "WorkspaceGroup"},
             "members": [_ref("Users", m["id"], m["displayName"]) for m in admin_members]},
            {"displayName": "users", "id": users_id, "meta": {"resourceType": "WorkspaceGroup"},
             "members": [_ref("Users" if "userName" in m else "ServicePrincipals", m["id"], m["displayName"])
                         for m in members]},
        ]
        acls, jobs, clusters, pipelines = {}, [], [], []
        for j in range(scale.jobs_per_workspace):
            job_id = 100_000 + j
            owner = rnd.choice(users)["userName"]
            run_as = rnd.choice(sps)["applicationId"]
            jobs.append({"created_time": 1_760_000_000_000, "creator_user_name": owner, "job_id": job_id,
                         "settings": {"name": f"job-{j}", "max_concurrent_runs": 1,
                                      "run_as": {"service_principal_name": run_as},
                                      "tasks": [{"task_key": "main", "notebook_task": {
                                          "notebook_path": f"/Repos/etl/job-{j}"}}]}})
            acls[f"jobs/{job_id}"] = {"object_id": f"/jobs/{job_id}", "object_type": "job", "access_control_list": [
                {"user_name": owner, "display_name": owner,
                 "all_permissions": [{"inherited": False, "permission_level": "IS_OWNER"}]},
                {"group_name": rnd.choice(groups)["displayName"],
                 "all_permissions": [{"inherited": False, "permission_level": rnd.choice(
                     ["CAN_VIEW", "CAN_MANAGE_RUN", "CAN_MANAGE"])}]},
                {"group_name": "admins", "all_permissions": [
                    {"inherited": True, "inherited_from_object": ["/jobs/"], "permission_level": "CAN_MANAGE"}]}]}
        for p in range(scale.jobs_per_workspace // 10):
            pid = f"pipeline-{name}-{p:05d}"
            owner = rnd.choice(users)["userName"]
            pipelines.append({"creator_user_name": owner, "name": f"pipeline-{p}", "pipeline_id": pid,
                              "run_as": {"service_principal_name": rnd.choice(sps)["applicationId"]}})
            acls[f"pipelines/{pid}"] = {"object_id": f"/pipelines/{pid}", "object_type": "pipeline",
                                        "access_control_list": [
                {"user_name": owner, "all_permissions": [{"inherited": False, "permission_level": "IS_OWNER"}]},
                {"group_name": rnd.choice(groups)["displayName"],
                 "all_permissions": [{"inherited": False, "permission_level": "CAN_RUN"}]}]}
        for c in range(scale.clusters_per_workspace):
            cid = f"0101-000000-{name}{c:05d}"
            clusters.append({"cluster_id": cid, "cluster_name": f"cluster-{c}",
                             "creator_user_name": rnd.choice(users)["userName"]})
            acls[f"clusters/{cid}"] = {"object_id": f"/clusters/{cid}", "object_type": "cluster",
                                       "access_control_list": [
                {"group_name": rnd.choice(groups)["displayName"],
                 "all_permissions": [{"inherited": False, "permission_level": "CAN_ATTACH_TO"}]},
                {"group_name": "admins", "all_permissions": [
                    {"inherited": True, "inherited_from_object": ["/clusters/"], "permission_level": "CAN_MANAGE"}]}]}
        scopes = [{"name": f"scope-{k}", "backend_type": "DATABRICKS", "acls": [
            {"principal": rnd.choice(groups)["displayName"], "permission": "READ"},
            {"principal": rnd.choice(sps)["applicationId"], "permission": "WRITE"},
            {"principal": "admins", "permission": "MANAGE"}]} for k in range(scale.scopes_per_workspace)]
        tokens = []
        for k in range(scale.tokens_per_workspace):
            who = rnd.choice(members)
            tokens.append({"comment": f"token {k}", "created_by_id": int(who["id"]),
                           "created_by_username": who.get("userName") or who["applicationId"],
                           "creation_time": 1_760_000_000_000, "expiry_time": -1 if k % 7 == 0 else 1_800_000_000_000,
                           "owner_id": int(who["id"]), "token_id": f"{name}-token-{k:06d}",
                           "workspace_id": ws_ids[name]})
        # the workspace tree: team folders, each with a group's direct ACL and a notebook inheriting it
        tree = []
        for k in range(200):
            g = groups[(k * 7) % len(groups)]["displayName"]
            folder_id, nb_id = 10_000 + 2 * k, 10_001 + 2 * k
            tree.append({"path": f"/Teams/team-{k}", "object_type": "DIRECTORY", "object_id": folder_id,
                         "permissions_type": "directories", "acl": {
                             "object_id": f"/directories/{folder_id}", "object_type": "directory",
                             "access_control_list": [{"group_name": g, "all_permissions": [
                                 {"permission_level": "CAN_MANAGE", "inherited": False}]}]}})
            tree.append({"path": f"/Teams/team-{k}/etl", "object_type": "NOTEBOOK", "object_id": nb_id,
                         "permissions_type": "notebooks", "acl": {
                             "object_id": f"/notebooks/{nb_id}", "object_type": "notebook",
                             "access_control_list": [{"group_name": g, "all_permissions": [
                                 {"permission_level": "CAN_MANAGE", "inherited": True,
                                  "inherited_from_object": [f"/directories/{folder_id}"]}]}]}})
        scope = inv.workspaces[name] = Scope(name, "workspace", id=ws_ids[name], host=f"https://{name}.example.com")
        for sec, data in (
                ("identities", {"users": ws_users, "service_principals": ws_sps, "groups": local}),
                # one metastore shared by every workspace, as in a real account: the graph reads it once
                ("uc", uc),
                ("tokens", {"token_infos": tokens}),
                ("workspace_acls", {"objects": tree, "found": len(tree), "limit": 20_000, "truncated": False,
                                    "listing_errors": [], "vanished": []}),
                ("jobs", {"jobs": jobs, "pipelines": pipelines, "credential_matches": []}),
                ("secrets", {"scopes": scopes}),
                ("compute", {"clusters": clusters, "cluster_policies": [], "instance_pools": []}),
                # object permissions, one section per Permissions API type
                *((acl_section(t), {"acls": {k: v for k, v in acls.items() if k.startswith(t + "/")}, "vanished": []})
                  for t in ACL_OBJECT_TYPES)):
            scope.sections[sec] = _ok(sec, data)

    table = tables[len(tables) // 2]["full_name"]
    catalog = catalogs[0]["name"]
    mid = LAYERS // 2
    return Tenant(
        inventory=inv, deep_user=deep_user["userName"],
        deep_path=[layers[layer][0]["displayName"] for layer in range(LAYERS)],
        wide_user=wide_user["userName"], wide_groups={g["displayName"] for g in wide},
        sp=sps[0]["applicationId"], sp_display=sps[0]["displayName"],
        group=layers[mid][1]["displayName"], cycle=sorted(g["displayName"] for g in cycle_groups), table=table,
        catalog=catalog, table_grantees=[a["principal"] for a in grants[f"table/{table}"]],
        catalog_select_group=top[0],
        stats={"users": len(users), "service_principals": len(sps), "groups": len(groups),
               "nesting_layers": LAYERS, "wide_parents": len(wide), "catalogs": len(catalogs),
               "schemas": len(schemas), "tables": len(tables),
               "table_grants": sum(len(a["privileges"]) for k, v in grants.items() if k.startswith("table/")
                                   for a in v),
               "grant_assignments": sum(len(v) for v in grants.values()), "workspaces": len(ws_names),
               "jobs": len(ws_names) * len(jobs), "object_acls": len(ws_names) * len(acls),
               "tokens": len(ws_names) * len(tokens)})


# -- measuring -----------------------------------------------------------------------------------


def _rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _timed(fn, repeat: int) -> tuple[list[float], list[float], object]:
    """Wall-clock and CPU milliseconds per run. The queries are single-threaded, so on a busy machine
    CPU time is the better estimate of what an idle one would take."""
    wall, cpu, result = [], [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return wall, cpu, result


def _records(answer) -> int:
    if isinstance(answer, list):
        return len(answer)
    return sum(len(v) for k, v in answer.items() if isinstance(v, list) and k != "errors")


def run(scale: Scale, repeat: int) -> dict:
    t0 = time.perf_counter()
    tenant = generate(scale)
    gen_s = time.perf_counter() - t0
    rss_inventory = _rss_mb()
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    graph = AccessGraph.from_inventory(tenant.inventory)
    build_s, build_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    rss_built = _rss_mb()
    assert graph.gaps == [], graph.gaps
    queries = [
        ("blast_radius", f"deeply nested user ({LAYERS} layers)", lambda: graph.blast_radius(tenant.deep_user)),
        ("blast_radius", f"user in {scale.wide_parents} direct groups", lambda: graph.blast_radius(tenant.wide_user)),
        ("blast_radius", "service principal (by display name)", lambda: graph.blast_radius(tenant.sp_display)),
        ("blast_radius", "group (mid-layer)", lambda: graph.blast_radius(tenant.group)),
        ("who_can_reach", "a table", lambda: graph.who_can_reach(tenant.table)),
        ("who_can_reach", "a catalog", lambda: graph.who_can_reach(tenant.catalog)),
        ("blast_radius", "deeply nested user, --expand-inherited",
         lambda: graph.blast_radius(tenant.deep_user, expand_inherited=None)),
    ]
    results = []
    for kind, what, fn in queries:
        times, cpu, answer = _timed(fn, repeat)
        t0 = time.perf_counter()
        text = json.dumps(answer)
        json_ms = (time.perf_counter() - t0) * 1000
        results.append({"query": kind, "what": what, "p50_ms": round(statistics.median(times), 2),
                        "max_ms": round(max(times), 2),
                        "cpu_p50_ms": round(statistics.median(cpu), 2), "records": _records(answer),
                        "json_ms": round(json_ms, 1), "json_mb": round(len(text) / 1e6, 2)})
    return {"scale": tenant.stats, "repeat": repeat, "generate_s": round(gen_s, 2), "build_s": round(build_s, 2),
            "build_cpu_s": round(build_cpu_s, 2),
            "rss_after_inventory_mb": round(rss_inventory), "rss_after_build_mb": round(rss_built),
            "peak_rss_mb": round(_rss_mb()), "queries": results,
            "machine": {"python": platform.python_version(), "platform": platform.platform(),
                        "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                        "load_average_1m": round(os.getloadavg()[0], 1)}}


def _print(report: dict) -> None:
    m, s = report["machine"], report["scale"]
    print(f"machine: Python {m['python']} on {m['platform']} ({m['processor']}, {m['cpus']} CPUs, "
          f"load {m['load_average_1m']})")
    print("tenant: " + ", ".join(f"{k}={v:,}" for k, v in s.items()))
    print(f"generate inventory: {report['generate_s']} s (RSS {report['rss_after_inventory_mb']} MB)")
    print(f"build graph:        {report['build_s']} s, CPU {report['build_cpu_s']} s "
          f"(RSS {report['rss_after_build_mb']} MB)")
    print(f"queries, {report['repeat']} runs each:")
    print(f"  {'query':<14} {'what':<42} {'p50 ms':>9} {'max ms':>9} {'CPU p50':>9} {'records':>9} "
          f"{'json ms':>8} {'json MB':>8}")
    for q in report["queries"]:
        print(f"  {q['query']:<14} {q['what']:<42} {q['p50_ms']:>9} {q['max_ms']:>9} {q['cpu_p50_ms']:>9} "
              f"{q['records']:>9,} "
              f"{q['json_ms']:>8} {q['json_mb']:>8}")
    print(f"peak RSS: {report['peak_rss_mb']} MB")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true", help="a tenant about a hundred times smaller (seconds)")
    ap.add_argument("--repeat", type=int, default=20, help="runs per query (default 20)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    report = run(SMALL if args.small else FULL, args.repeat)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
