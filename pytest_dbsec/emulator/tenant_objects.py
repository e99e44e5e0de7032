"""Normalisation of workspace and Unity Catalog objects in a tenant (see tenant.py for the format).

Each function validates one part in place, fills derived ids, and names the key path of any problem.
"""

from __future__ import annotations

import json
import re
from typing import Dict

from . import wire
from .checker import Checker, tname
from .identity import ACCOUNT_USERS, Directory, WorkspaceView
from .ids import gen_cluster_id, gen_digits, gen_hex, gen_uuid
from .objects import find_object


def _uc_principal(directory: Directory, name, path, ck: Checker) -> str:
    """UC grants and owners name account principals only (no workspace-local groups)."""
    if name == ACCOUNT_USERS:
        return name
    return directory.resolve(name, path).name


def _norm_grants(obj, path, ck: Checker, directory: Directory) -> None:
    for i, g in enumerate(ck.mappings(obj, "grants", path)):
        gp = path + ("grants", i)
        ck.mapping(g, gp, {"principal", "privileges"})
        _uc_principal(directory, g.get("principal"), gp + ("principal",), ck)
        privs = ck.names(g, "privileges", gp)
        for j, pr in enumerate(privs):
            if pr not in wire.PRIVILEGES:
                ck.err(gp + ("privileges", j), f"unknown UC privilege {pr!r}")


def _norm_tags(obj, key, path, ck):
    """Tags may be a mapping {key: value-or-null} or a list of keys; stored as a mapping."""
    v = obj.get(key)
    if v is None:
        return
    if isinstance(v, list):
        obj[key] = {str(k): None for k in v}
    elif not isinstance(v, dict):
        ck.err(path + (key,), f"expected a mapping of tag -> value, got {tname(v)}")
    for k, val in obj[key].items():
        if val is not None and not isinstance(val, str):
            obj[key][k] = str(val)


def norm_metastores(acct, ap, ck: Checker, directory: Directory) -> Dict[str, dict]:
    out = {}
    for i, m in enumerate(ck.mappings(acct, "metastores", ap)):
        mp = ap + ("metastores", i)
        name = ck.string(m, "name", mp)
        if name in out:
            ck.err(mp + ("name",), f"duplicate metastore name {name!r}")
        out[name] = m
        m.setdefault("metastore_id", gen_uuid("metastore", acct["id"], name))
        _uc_principal(directory, ck.string(m, "owner", mp), mp + ("owner",), ck)
        ck.string(m, "region", mp, default="us-east-1")
        m.setdefault("cloud", acct.get("cloud", "aws"))
        ck.enum(m, "delta_sharing_scope", mp, wire.DELTA_SHARING_SCOPES)
        ck.integer(m, "delta_sharing_recipient_token_lifetime_in_seconds", mp, minimum=0)
        ck.boolean(m, "external_access_enabled", mp)
        m.setdefault("privilege_model_version", "1.0")
        _norm_grants(m, mp, ck, directory)
        for j, s in enumerate(ck.mappings(m, "system_schemas", mp)):
            ck.string(s, "schema", mp + ("system_schemas", j))
            ck.string(s, "state", mp + ("system_schemas", j), default="AVAILABLE")
            _norm_grants(s, mp + ("system_schemas", j), ck, directory)  # who may read its tables (emulator SQL)
        cats = {}
        for j, c in enumerate(ck.mappings(m, "catalogs", mp)):
            cp = mp + ("catalogs", j)
            cname = ck.string(c, "name", cp)
            if cname in cats:
                ck.err(cp + ("name",), f"duplicate catalog name {cname!r}")
            cats[cname] = True
            owner = ck.string(c, "owner", cp)
            _uc_principal(directory, owner, cp + ("owner",), ck)
            ck.enum(c, "catalog_type", cp, wire.CATALOG_TYPES, default="MANAGED_CATALOG")
            ck.enum(c, "isolation_mode", cp, wire.CATALOG_ISOLATION, default="OPEN")
            ck.names(c, "bindings", cp)
            _norm_grants(c, cp, ck, directory)
            _norm_tags(c, "tags", cp, ck)
            schemas = {}
            for k, s in enumerate(ck.mappings(c, "schemas", cp)):
                sp = cp + ("schemas", k)
                sname = ck.string(s, "name", sp)
                if sname in schemas:
                    ck.err(sp + ("name",), f"duplicate schema name {sname!r}")
                schemas[sname] = True
                s.setdefault("owner", owner)
                _uc_principal(directory, ck.string(s, "owner", sp), sp + ("owner",), ck)
                s.setdefault("schema_id", gen_uuid("schema", m["metastore_id"], cname, sname))
                _norm_grants(s, sp, ck, directory)
                _norm_tags(s, "tags", sp, ck)
                tables = {}
                for t_i, t in enumerate(ck.mappings(s, "tables", sp)):
                    tp = sp + ("tables", t_i)
                    tname = ck.string(t, "name", tp)
                    if tname in tables:
                        ck.err(tp + ("name",), f"duplicate table name {tname!r}")
                    tables[tname] = True
                    t.setdefault("owner", s["owner"])
                    _uc_principal(directory, ck.string(t, "owner", tp), tp + ("owner",), ck)
                    t.setdefault("table_id", gen_uuid("table", m["metastore_id"], cname, sname, tname))
                    ck.enum(t, "table_type", tp, wire.TABLE_TYPES, default="MANAGED")
                    if t["table_type"] not in ("VIEW", "METRIC_VIEW"):
                        t.setdefault("data_source_format", "DELTA")
                    _norm_grants(t, tp, ck, directory)
                    _norm_tags(t, "tags", tp, ck)
                    col_names = set()
                    for c_i, col in enumerate(ck.mappings(t, "columns", tp)):
                        colp = tp + ("columns", c_i)
                        col_names.add(ck.string(col, "name", colp))
                        ck.string(col, "type_name", colp, default="STRING")
                        col["type_name"] = col["type_name"].upper()
                        if col.get("mask") is not None:
                            mk = ck.mapping(col["mask"], colp + ("mask",))
                            ck.string(mk, "function_name", colp + ("mask",))
                            ck.names(mk, "using_column_names", colp + ("mask",))
                    if t.get("row_filter") is not None:
                        rf = ck.mapping(t["row_filter"], tp + ("row_filter",))
                        ck.string(rf, "function_name", tp + ("row_filter",))
                        ck.names(rf, "input_column_names", tp + ("row_filter",))
                    ct = t.get("column_tags")
                    if ct is not None:
                        ck.mapping(ct, tp + ("column_tags",))
                        for col in list(ct):
                            if col not in col_names:
                                ck.err(tp + ("column_tags", col), f"no column {col!r} in table {tname!r}")
                            _norm_tags(ct, col, tp + ("column_tags",), ck)
        for key, iso_default in (("external_locations", "ISOLATION_MODE_OPEN"), ("storage_credentials", "ISOLATION_MODE_OPEN")):
            names = {}
            for j, o in enumerate(ck.mappings(m, key, mp)):
                op = mp + (key, j)
                oname = ck.string(o, "name", op)
                if oname in names:
                    ck.err(op + ("name",), f"duplicate name {oname!r}")
                names[oname] = True
                _uc_principal(directory, ck.string(o, "owner", op), op + ("owner",), ck)
                ck.enum(o, "isolation_mode", op, wire.SECURABLE_ISOLATION, default=iso_default)
                ck.boolean(o, "read_only", op, default=False)
                _norm_grants(o, op, ck, directory)
                if key == "storage_credentials":
                    o.setdefault("id", gen_uuid("storage-credential", m["metastore_id"], oname))
                else:
                    ck.string(o, "url", op)
        creds = {o["name"] for o in m["storage_credentials"]}
        for j, o in enumerate(m["external_locations"]):
            cn = o.get("credential_name")
            if cn is not None and cn not in creds:
                ck.err(mp + ("external_locations", j, "credential_name"), f"unknown storage credential {cn!r}")
        rnames = {}
        for j, r in enumerate(ck.mappings(m, "recipients", mp)):
            rp = mp + ("recipients", j)
            rn = ck.string(r, "name", rp)
            if rn in rnames:
                ck.err(rp + ("name",), f"duplicate recipient name {rn!r}")
            rnames[rn] = True
            _uc_principal(directory, ck.string(r, "owner", rp), rp + ("owner",), ck)
            ck.enum(r, "authentication_type", rp, {"TOKEN", "DATABRICKS", "OIDC_FEDERATION"}, default="TOKEN")
            r.setdefault("id", gen_uuid("recipient", m["metastore_id"], rn))
    return out


def norm_workspace_header(acct, ws, wp, ck: Checker, metastores) -> None:
    name = ws["name"]
    ws.setdefault("id", int(gen_digits(15, "workspace", acct["id"], name)))
    if isinstance(ws["id"], str) and ws["id"].isdigit():
        ws["id"] = int(ws["id"])
    ck.integer(ws, "id", wp, minimum=1)
    slug = re.sub(r"[^a-z0-9-]+", "-", f"{acct['name']}-{name}".lower()).strip("-")
    ck.string(ws, "deployment_name", wp, default=slug)
    ck.enum(ws, "workspace_status", wp, wire.WORKSPACE_STATUS, default="RUNNING")
    ck.enum(ws, "pricing_tier", wp, wire.PRICING_TIERS, default="PREMIUM")
    if acct.get("cloud") == "aws":
        ck.string(ws, "aws_region", wp, default="us-east-1")
    ck.string(ws, "network_policy_id", wp, default="default-policy")
    ms = ws.get("metastore")
    ws.setdefault("metastore", None)
    if ms is not None and ms not in metastores:
        ck.err(wp + ("metastore",), f"unknown metastore {ms!r} (declared: {', '.join(metastores) or 'none'})")


def _acl_principal(view: WorkspaceView, entry: dict, path: tuple, ck: Checker) -> None:
    keys = [k for k in ("user_name", "group_name", "service_principal_name") if entry.get(k) is not None]
    if len(keys) != 1:
        ck.err(path, "needs exactly one of user_name, group_name, service_principal_name")
    k = keys[0]
    kind = {"user_name": ("user",), "group_name": ("group",), "service_principal_name": ("sp",)}[k]
    view.resolve(entry[k], path + (k,), kind)


def norm_workspace_body(ws, wp, ck: Checker, directory: Directory, view: WorkspaceView) -> None:
    wsid = ws["id"]
    for i, a in enumerate(ck.mappings(ws, "assignments", wp)):
        ap_ = wp + ("assignments", i)
        ck.mapping(a, ap_, {"principal", "permissions"})
        perms = ck.names(a, "permissions", ap_) or ["USER"]
        a["permissions"] = perms
        for j, perm in enumerate(perms):
            if perm not in wire.WORKSPACE_PERMISSIONS:
                ck.err(ap_ + ("permissions", j), f"{perm!r} is not one of ADMIN, USER")
    ck.names(ws, "admins", wp)
    for i, lg in enumerate(ck.mappings(ws, "local_groups", wp)):
        ck.mapping(lg, wp + ("local_groups", i), {"displayName", "id", "members", "entitlements"})

    conf = ws.get("conf") or {}
    ck.mapping(conf, wp + ("conf",))
    for k, v in list(conf.items()):
        # workspace-conf values are strings on the wire; accept YAML booleans/numbers for convenience.
        if isinstance(v, bool):
            conf[k] = "true" if v else "false"
        elif isinstance(v, (int, float)):
            conf[k] = str(v)
        elif v is not None and not isinstance(v, str):
            ck.err(wp + ("conf", k), f"expected a string or null, got {tname(v)}")
    ws["conf"] = conf
    # keys this workspace does not know (another cloud, an older release): the real API rejects a
    # request naming any of them with 400, rather than answering null
    ws["conf_unsupported"] = ck.names(ws, "conf_unsupported", wp)
    settings = ws.get("settings") or {}
    ck.mapping(settings, wp + ("settings",))
    for k, v in settings.items():
        ck.mapping(v, wp + ("settings", k))
    ws["settings"] = settings
    _norm_ip_lists(ws, wp, ck, ("ws", wsid))

    for i, t in enumerate(ck.mappings(ws, "tokens", wp)):
        tp = wp + ("tokens", i)
        ck.mapping(
            t,
            tp,
            {"token_id", "owner", "created_by", "comment", "creation_time", "expiry_time", "last_used_day", "scopes"},
        )
        owner = view.resolve(t.get("owner"), tp + ("owner",), ("user", "sp"))
        if t.get("created_by") is not None:
            view.resolve(t["created_by"], tp + ("created_by",), ("user", "sp"))
        for k in ("creation_time", "expiry_time"):
            if k not in t:
                ck.err(tp + (k,), "required time is missing (expiry_time: -1 means never expires)")
        t.setdefault("token_id", gen_hex(64, "token", wsid, owner.name, t.get("comment"), i))
        ck.string(t, "comment", tp, required=False)

    for i, c in enumerate(ck.mappings(ws, "clusters", wp)):
        cp = wp + ("clusters", i)
        name = ck.string(c, "cluster_name", cp)
        c.setdefault("cluster_id", gen_cluster_id("cluster", wsid, name))
        ck.enum(c, "cluster_source", cp, wire.CLUSTER_SOURCES, default="UI")
        ck.enum(c, "data_security_mode", cp, wire.DATA_SECURITY_MODES)
        c.setdefault("state", "RUNNING")
        if c.get("creator_user_name") is not None:
            view.resolve(c["creator_user_name"], cp + ("creator_user_name",), ("user", "sp"))
        if c.get("single_user_name") is not None:
            view.resolve(c["single_user_name"], cp + ("single_user_name",), ("user", "sp", "group"))
    policy_ids = {}
    for i, p in enumerate(ck.mappings(ws, "cluster_policies", wp)):
        pp = wp + ("cluster_policies", i)
        name = ck.string(p, "name", pp)
        p.setdefault("policy_id", gen_hex(16, "policy", wsid, name).upper())
        policy_ids[p["policy_id"]] = True
        for key in ("definition", "policy_family_definition_overrides"):
            d = p.get(key)
            if isinstance(d, dict):
                p[key] = json.dumps(d, separators=(",", ":"))
            elif d is not None and not isinstance(d, str):
                ck.err(pp + (key,), f"expected a mapping or a JSON string, got {tname(d)}")
            elif isinstance(d, str):
                try:
                    json.loads(d)
                except ValueError as e:
                    ck.err(pp + (key,), f"not valid JSON: {e}")
        p.setdefault("definition", "{}")
    for i, c in enumerate(ws["clusters"]):
        pid = c.get("policy_id")
        if pid is not None and pid not in policy_ids:
            # Allow naming the policy instead of its generated id.
            match = [p for p in ws["cluster_policies"] if p["name"] == pid]
            if not match:
                ck.err(wp + ("clusters", i, "policy_id"), f"unknown cluster policy {pid!r}")
            c["policy_id"] = match[0]["policy_id"]
    for i, p in enumerate(ck.mappings(ws, "instance_pools", wp)):
        name = ck.string(p, "instance_pool_name", wp + ("instance_pools", i))
        p.setdefault("instance_pool_id", gen_cluster_id("pool", wsid, name).replace("-", "-pool-", 1))
    for i, s in enumerate(ck.mappings(ws, "global_init_scripts", wp)):
        sp = wp + ("global_init_scripts", i)
        name = ck.string(s, "name", sp)
        s.setdefault("script_id", gen_hex(16, "init-script", wsid, name).upper())
        ck.boolean(s, "enabled", sp, default=False)
        ck.integer(s, "position", sp, default=i, minimum=0)
        ck.string(s, "script", sp, default="#!/bin/bash\n")
    job_ids = set()
    for i, j in enumerate(ck.mappings(ws, "jobs", wp)):
        jp = wp + ("jobs", i)
        settings = ck.mapping(j.get("settings"), jp + ("settings",))
        name = ck.string(settings, "name", jp + ("settings",))
        j.setdefault("job_id", int(gen_digits(15, "job", wsid, name)))
        ck.integer(j, "job_id", jp, minimum=1)
        if j["job_id"] in job_ids:
            ck.err(jp + ("job_id",), f"duplicate job id {j['job_id']}")
        job_ids.add(j["job_id"])
        if j.get("creator_user_name") is not None:
            view.resolve(j["creator_user_name"], jp + ("creator_user_name",), ("user", "sp"))
        _norm_run_as(settings.get("run_as"), jp + ("settings", "run_as"), ck, view)
        # Tasks may name an existing cluster by cluster_name instead of its generated id.
        by_name = {c["cluster_name"]: c["cluster_id"] for c in ws["clusters"]}
        for t_i, task in enumerate(settings.get("tasks") or []):
            cid = task.get("existing_cluster_id") if isinstance(task, dict) else None
            if cid is not None and cid in by_name:
                task["existing_cluster_id"] = by_name[cid]
    for i, p in enumerate(ck.mappings(ws, "pipelines", wp)):
        pp = wp + ("pipelines", i)
        name = ck.string(p, "name", pp)
        p.setdefault("pipeline_id", gen_uuid("pipeline", wsid, name))
        p.setdefault("state", "IDLE")
        if p.get("creator_user_name") is not None:
            view.resolve(p["creator_user_name"], pp + ("creator_user_name",), ("user", "sp"))
        _norm_run_as(p.get("run_as"), pp + ("run_as",), ck, view)
        if p.get("spec") is not None:
            ck.mapping(p["spec"], pp + ("spec",))
    for i, w in enumerate(ck.mappings(ws, "warehouses", wp)):
        name = ck.string(w, "name", wp + ("warehouses", i))
        w.setdefault("id", gen_hex(16, "warehouse", wsid, name))
    for i, e in enumerate(ck.mappings(ws, "serving_endpoints", wp)):
        name = ck.string(e, "name", wp + ("serving_endpoints", i))
        e.setdefault("id", gen_hex(32, "serving-endpoint", wsid, name))
    for i, d in enumerate(ck.mappings(ws, "dashboards", wp)):
        name = ck.string(d, "display_name", wp + ("dashboards", i))
        d.setdefault("dashboard_id", gen_hex(32, "dashboard", wsid, name))
        d.setdefault("lifecycle_state", "ACTIVE")
    for i, r in enumerate(ck.mappings(ws, "repos", wp)):
        path = ck.string(r, "path", wp + ("repos", i))
        r.setdefault("id", int(gen_digits(15, "repo", wsid, path)))
    scopes = {}
    for i, s in enumerate(ck.mappings(ws, "secret_scopes", wp)):
        sp = wp + ("secret_scopes", i)
        ck.mapping(s, sp, {"name", "backend_type", "keyvault_metadata", "acls", "secrets"})
        name = ck.string(s, "name", sp)
        if name in scopes:
            ck.err(sp + ("name",), f"duplicate secret scope {name!r}")
        scopes[name] = True
        ck.enum(s, "backend_type", sp, wire.SECRET_BACKENDS, default="DATABRICKS")
        for j, a in enumerate(ck.mappings(s, "acls", sp)):
            ap_ = sp + ("acls", j)
            view.resolve(a.get("principal"), ap_ + ("principal",))
            ck.enum(a, "permission", ap_, wire.SECRET_ACL_PERMISSIONS, required=True)
        for j, sec in enumerate(ck.mappings(s, "secrets", sp)):
            ck.string(sec, "key", sp + ("secrets", j))
    for i, n in enumerate(ck.mappings(ws, "notebooks", wp)):
        np_ = wp + ("notebooks", i)
        path = ck.string(n, "path", np_)
        if not path.startswith("/"):
            ck.err(np_ + ("path",), f"workspace paths are absolute, got {path!r}")
        ck.enum(n, "language", np_, {"PYTHON", "SQL", "SCALA", "R"}, default="PYTHON")
        ck.string(n, "object_type", np_, default="NOTEBOOK")
        n.setdefault("content", "")
        if not isinstance(n["content"], str):
            ck.err(np_ + ("content",), "expected a string")
        n.setdefault("object_id", int(gen_digits(15, "workspace-object", wsid, path)))
    if ws.get("spark_versions") is not None:
        for i, v in enumerate(ck.mappings(ws, "spark_versions", wp)):
            ck.string(v, "key", wp + ("spark_versions", i))
            ck.string(v, "name", wp + ("spark_versions", i), default=v["key"])

    perms = ws.get("permissions") or {}
    ck.mapping(perms, wp + ("permissions",))
    ws["permissions"] = perms
    for key, entries in perms.items():
        pp = wp + ("permissions", key)
        if not isinstance(key, str) or "/" not in key:
            ck.err(pp, "keys are '<object type>/<id or name>', e.g. 'jobs/Nightly ETL' or 'authorization/tokens'")
        otype, oid = key.split("/", 1)
        if otype not in wire.PERMISSION_TYPES:
            ck.err(pp, f"unknown permissions object type {otype!r} (known: {', '.join(sorted(wire.PERMISSION_TYPES))})")
        if otype == "authorization" and oid not in ("tokens", "passwords"):
            ck.err(pp, "authorization objects are 'authorization/tokens' and 'authorization/passwords'")
        if otype not in ("authorization", "experiments", "registered-models", "files") and find_object(ws, otype, oid) is None:
            ck.err(pp, f"no {otype} object with id or name {oid!r} in workspace {ws['name']!r}")
        if not isinstance(entries, list):
            ck.err(pp, f"expected a list of ACL entries, got {tname(entries)}")
        for i, e in enumerate(entries):
            ep = pp + (i,)
            ck.mapping(
                e,
                ep,
                {"user_name", "group_name", "service_principal_name", "permission_level", "inherited", "inherited_from_object"},
            )
            _acl_principal(view, e, ep, ck)
            ck.enum(e, "permission_level", ep, wire.PERMISSION_LEVELS, required=True)
            ck.boolean(e, "inherited", ep, default=False)


def _norm_run_as(run_as, path, ck: Checker, view: WorkspaceView) -> None:
    if run_as is None:
        return
    ck.mapping(run_as, path, {"user_name", "service_principal_name", "group_name"})
    keys = [k for k in run_as if run_as[k] is not None]
    if len(keys) != 1:
        ck.err(path, "needs exactly one of user_name, service_principal_name, group_name")
    k = keys[0]
    view.resolve(run_as[k], path + (k,), {"user_name": ("user",), "service_principal_name": ("sp",), "group_name": ("group",)}[k])


def _norm_ip_lists(obj, path, ck: Checker, seed) -> None:
    for i, l in enumerate(ck.mappings(obj, "ip_access_lists", path)):
        lp = path + ("ip_access_lists", i)
        label = ck.string(l, "label", lp)
        l.setdefault("list_id", gen_uuid("ip-list", *seed, label))
        ck.enum(l, "list_type", lp, wire.IP_LIST_TYPES, required=True)
        ck.boolean(l, "enabled", lp, default=True)
        addrs = ck.names(l, "ip_addresses", lp)
        l["address_count"] = len(addrs)


def norm_account_objects(acct, ap, ck: Checker, directory: Directory, ws_names) -> None:
    settings = acct.get("settings") or {}
    ck.mapping(settings, ap + ("settings",))
    for k, v in settings.items():
        ck.mapping(v, ap + ("settings", k))
    acct["settings"] = settings
    _norm_ip_lists(acct, ap, ck, ("account", acct["id"]))
    for i, c in enumerate(ck.mappings(acct, "log_delivery", ap)):
        lp = ap + ("log_delivery", i)
        name = ck.string(c, "config_name", lp)
        c.setdefault("config_id", gen_uuid("log-delivery", acct["id"], name))
        ck.enum(c, "log_type", lp, {"AUDIT_LOGS", "BILLABLE_USAGE"}, required=True)
        ck.enum(c, "output_format", lp, {"JSON", "CSV"}, default="JSON" if c["log_type"] == "AUDIT_LOGS" else "CSV")
        ck.enum(c, "status", lp, {"ENABLED", "DISABLED"}, default="ENABLED")
        ids = []
        for j, w in enumerate(ck.seq(c, "workspace_ids_filter", lp)):
            if isinstance(w, str) and w in ws_names:
                ids.append(ws_names[w]["id"])
            elif isinstance(w, int) and not isinstance(w, bool):
                ids.append(w)
            else:
                ck.err(lp + ("workspace_ids_filter", j), f"unknown workspace {w!r}")
        c["workspace_ids_filter"] = ids
    for i, n in enumerate(ck.mappings(acct, "network_policies", ap)):
        ck.string(n, "network_policy_id", ap + ("network_policies", i))
    known = {n["network_policy_id"] for n in acct["network_policies"]} | {"default-policy"}
    for i, ws in enumerate(acct["workspaces"]):
        if ws["network_policy_id"] not in known:
            ck.err(ap + ("workspaces", i, "network_policy_id"), f"unknown network policy {ws['network_policy_id']!r}")
    for key in ("ip_access_lists",):
        for i, l in enumerate(acct[key]):
            for k in ("created_by", "updated_by"):
                if isinstance(l.get(k), str):
                    l[k] = int(directory.resolve(l[k], ap + (key, i, k), ("user", "sp")).id)
    for ws_i, ws in enumerate(acct["workspaces"]):
        for i, l in enumerate(ws["ip_access_lists"]):
            for k in ("created_by", "updated_by"):
                if isinstance(l.get(k), str):
                    l[k] = int(directory.resolve(l[k], ap + ("workspaces", ws_i, "ip_access_lists", i, k), ("user", "sp")).id)
