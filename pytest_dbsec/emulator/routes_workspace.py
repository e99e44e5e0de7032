"""Workspace APIs (everything on a workspace host except Unity Catalog, which is in routes_uc).

All routes are read-only (GET); statement execution (POST, read-only SQL) is in ``sql``. Objects are
served in the shape the tenant declares them, plus a few derived fields the real service adds
(ids, owners as wire names, default ACL entries).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import posixpath
from typing import List, Optional

from . import scim, wire
from .objects import find_object, object_index, tree
from .routing import PUBLIC, WS_ADMIN, ApiError, Ctx, Response, RouteTable, bad_request, not_found, paged

ROUTES = RouteTable()
route = ROUTES.route


def wire_name(ctx: Ctx, name: Optional[str]) -> Optional[str]:
    """A principal's wire name: SP display names become applicationIds; unknown names pass through."""
    if name is None:
        return None
    found = ctx.state.directory.lookup(name)
    if len(found) == 1:
        return found[0].name
    return name


def _display(ctx: Ctx, name: str) -> Optional[str]:
    if ctx.view is not None and name in ctx.view.local:
        return name
    found = ctx.state.directory.lookup(name)
    return found[0].display if len(found) == 1 else None


# --------------------------------------------------------------------------------- well-known


@route("/.well-known/databricks-config", access=PUBLIC)
def well_known(ctx: Ctx):
    url = ctx.emulator.workspace_url(ctx.target)
    return {"workspace_id": str(ctx.ws["id"]), "cloud": ctx.account.get("cloud", "aws"), "oidc_endpoint": f"{url}/oidc"}


# ---------------------------------------------------------------------------------------- SCIM


def _ws_principals(ctx: Ctx, kind: str):
    view = ctx.view
    if kind == "group":
        return view.groups()

    def members():  # in directory order; built once per tenant version (every page of a list asks)
        order = {id(p): i for i, p in enumerate(ctx.state.directory.all())}
        return {"list": sorted((p for p in view.members if p.kind == kind), key=lambda p: order.get(id(p), 0))}

    return ctx.state.index(("workspace-principals", ctx.target, kind), members)["list"]


@route("/api/2.0/preview/scim/v2/Me")
def scim_me(ctx: Ctx):
    # the SDK's get_workspace_id() reads X-Databricks-Org-Id from this response; the server sends it on
    # every workspace response (once: a second copy would arrive joined as "id, id")
    return scim.scim_get(ctx, scim.render_me(ctx.view, ctx.principal))


def _scim_list(kind):
    def handler(ctx: Ctx):
        return scim.scim_list(ctx, _ws_principals(ctx, kind), render=lambda p: scim.workspace_render(ctx.view, p))

    return handler


def _scim_get(kind, label):
    def handler(ctx: Ctx):
        p = ctx.view.by_id(ctx.params["id"])
        if p is None or p.kind != kind:
            raise not_found(f"{label} {ctx.params['id']} does not exist.")
        return scim.scim_get(ctx, scim.workspace_render(ctx.view, p))

    return handler


for _kind, _seg, _label in (("user", "Users", "User"), ("group", "Groups", "Group"), ("sp", "ServicePrincipals", "Service principal")):
    route(f"/api/2.0/preview/scim/v2/{_seg}")(_scim_list(_kind))
    route(f"/api/2.0/preview/scim/v2/{_seg}/{{id}}")(_scim_get(_kind, _label))


# -------------------------------------------------------------------------------------- tokens


def _token_info(ctx: Ctx, t: dict, public: bool) -> dict:
    out = {"token_id": t["token_id"], "creation_time": t["creation_time"], "expiry_time": t["expiry_time"]}
    if t.get("comment") is not None:
        out["comment"] = t["comment"]
    if t.get("scopes"):
        out["scopes"] = list(t["scopes"])
    if public:
        return out
    d = ctx.state.directory
    owner = d.lookup(t["owner"])[0]
    creator = d.lookup(t["created_by"])[0] if t.get("created_by") else owner
    out.update(
        {
            "owner_id": int(owner.id),
            "created_by_id": int(creator.id),
            "created_by_username": creator.name,
            "workspace_id": ctx.ws["id"],
        }
    )
    if t.get("last_used_day") is not None:
        out["last_used_day"] = t["last_used_day"]
    return out


@route("/api/2.0/token/list")
def token_list(ctx: Ctx):
    mine = [t for t in ctx.ws["tokens"] if ctx.state.directory.lookup(t["owner"])[:1] == [ctx.principal]]
    return {"token_infos": [_token_info(ctx, t, True) for t in mine]}


@route("/api/2.0/token-management/tokens", access=WS_ADMIN)
def token_mgmt_list(ctx: Ctx):
    infos = [_token_info(ctx, t, False) for t in ctx.ws["tokens"]]
    by_id, by_name = ctx.q("created_by_id"), ctx.q("created_by_username")
    if by_id:
        infos = [i for i in infos if str(i["created_by_id"]) == by_id]
    if by_name:
        infos = [i for i in infos if i["created_by_username"].lower() == by_name.lower()]
    return {"token_infos": infos}


@route("/api/2.0/token-management/tokens/{token_id}", access=WS_ADMIN)
def token_mgmt_get(ctx: Ctx):
    for t in ctx.ws["tokens"]:
        if t["token_id"] == ctx.params["token_id"]:
            return {"token_info": _token_info(ctx, t, False)}
    raise not_found(f"Token with ID {ctx.params['token_id']} does not exist.")


# ------------------------------------------------------------------------- conf, settings, IPs


@route("/api/2.0/workspace-conf", access=WS_ADMIN)
def workspace_conf(ctx: Ctx):
    keys = ctx.qlist("keys")
    if not keys:
        raise bad_request("Missing required field: keys")
    unsupported = [k for k in keys if k in (ctx.ws.get("conf_unsupported") or [])]
    if unsupported:
        raise bad_request(f"Invalid keys: {unsupported}")
    conf = ctx.ws.get("conf") or {}
    return {k: conf.get(k) for k in keys}


def setting_response(stored: dict, setting_type: str, fields: dict) -> dict:
    field = fields.get(setting_type)
    if field and field not in stored:
        body = {field: copy.deepcopy(stored)}
    else:
        body = copy.deepcopy(stored)  # written in full wire form, or a type the emulator does not know
    body.setdefault("setting_name", "default")
    body.setdefault("etag", hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16])
    return body


@route("/api/2.0/settings/types/{type}/names/{name}", access=WS_ADMIN)
def ws_setting(ctx: Ctx):
    t = ctx.params["type"]
    stored = (ctx.ws.get("settings") or {}).get(t)
    if stored is None or ctx.params["name"] != "default":
        raise not_found(f"Setting {t} does not exist.")
    return setting_response(stored, t, wire.WORKSPACE_SETTING_FIELDS)


@route("/api/2.0/ip-access-lists", access=WS_ADMIN)
def ip_lists(ctx: Ctx):
    return {"ip_access_lists": copy.deepcopy(ctx.ws["ip_access_lists"])}


@route("/api/2.0/ip-access-lists/{list_id}", access=WS_ADMIN)
def ip_list_get(ctx: Ctx):
    for l in ctx.ws["ip_access_lists"]:
        if l["list_id"] == ctx.params["list_id"]:
            return {"ip_access_list": copy.deepcopy(l)}
    raise not_found(f"IP access list {ctx.params['list_id']} does not exist.")


# --------------------------------------------------------------------------------- permissions


def _acl(ctx: Ctx, otype: str, ref) -> list:
    """ACL entries for one object: declared ones (merged per principal) plus the implicit admins entry."""
    perms = ctx.ws.get("permissions") or {}
    declared = None
    for n in ref.names:
        if f"{otype}/{n}" in perms:
            declared = perms[f"{otype}/{n}"]
            break
    entries: List[dict] = []
    if declared is None:
        owner_level = wire.PERMISSION_TYPES[otype][1]
        if owner_level and ref.creator:
            found = ctx.state.directory.lookup(ref.creator)
            key = "service_principal_name" if found and found[0].kind == "sp" else "user_name"
            entries.append({key: ref.creator, "permission_level": owner_level})
        declared = entries
    declared = list(declared) + _inherited_from_folders(ctx, otype, ref)
    merged: dict = {}
    for e in declared:
        key = next(k for k in ("user_name", "group_name", "service_principal_name") if e.get(k) is not None)
        name = e[key] if key == "group_name" else wire_name(ctx, e[key])
        perm = {"permission_level": e["permission_level"], "inherited": bool(e.get("inherited", False))}
        if perm["inherited"]:
            perm["inherited_from_object"] = list(e.get("inherited_from_object") or [f"/{otype}/"])
        item = merged.setdefault((key, name), {key: name, "all_permissions": []})
        disp = _display(ctx, e[key])
        if disp:
            item["display_name"] = disp
        item["all_permissions"].append(perm)
    if ("group_name", "admins") not in merged:
        # Workspace admins always hold CAN_MANAGE (inherited from the object type's root; for the
        # workspace tree that is the root folder).
        level = "CAN_MANAGE"
        inherited = otype != "authorization"
        perm = {"permission_level": level, "inherited": inherited}
        if inherited:
            perm["inherited_from_object"] = ["/directories/" if otype in _TREE_TYPES else f"/{otype}/"]
        merged[("group_name", "admins")] = {"group_name": "admins", "display_name": "admins", "all_permissions": [perm]}
    return list(merged.values())


_TREE_TYPES = ("notebooks", "files", "directories", "repos")


def _inherited_from_folders(ctx: Ctx, otype: str, ref) -> List[dict]:
    """Workspace objects inherit the ACL entries of every folder above them: each comes back flagged
    ``inherited`` with ``inherited_from_object: ["/directories/<id>"]`` naming the folder."""
    path = ref.obj.get("path") if isinstance(ref.obj, dict) else None
    if otype not in _TREE_TYPES or not path:
        return []
    perms = ctx.ws.get("permissions") or {}
    objs = tree(ctx.ws)
    out: List[dict] = []
    d = posixpath.dirname(path.rstrip("/")) if path != "/" else None
    while d:
        folder = objs.get(d)
        if folder is not None:
            entries = perms.get(f"directories/{d}") or perms.get(f"directories/{folder['object_id']}") or []
            for e in entries:
                if not e.get("inherited"):
                    out.append({**e, "inherited": True, "inherited_from_object": [f"/directories/{folder['object_id']}"]})
        if d == "/":
            break
        d = posixpath.dirname(d)
    return out


def _find_or_404(ctx: Ctx, otype: str, oid: str):
    if otype not in wire.PERMISSION_TYPES:
        raise bad_request(f"Unsupported request object type: {otype}")
    index = ctx.state.index(("objects", ctx.target, otype), lambda: object_index(ctx.ws, otype))
    ref = find_object(ctx.ws, otype, oid, index)
    if ref is None and f"{otype}/{oid}" in (ctx.ws.get("permissions") or {}):
        from .objects import ObjRef

        ref = ObjRef({}, oid, (oid,), None)  # declared only in permissions (e.g. experiments)
    if ref is None:
        raise not_found(f"{otype} {oid} does not exist.")
    return ref


def _require_admin_for(ctx: Ctx, otype: str) -> None:
    if otype == "authorization" and not ctx.view.is_admin(ctx.principal):
        raise ApiError(403, "PERMISSION_DENIED", "Only workspace admins can read token and password permissions.")


@route("/api/2.0/permissions/{type}/{id}/permissionLevels")
def permission_levels(ctx: Ctx):
    otype = ctx.params["type"]
    _require_admin_for(ctx, otype)
    _find_or_404(ctx, otype, ctx.params["id"])
    return {"permission_levels": [{"permission_level": l, "description": f"{l} permission"} for l in wire.PERMISSION_TYPES[otype][2]]}


@route("/api/2.0/permissions/{type}/{id}")
def permissions_get(ctx: Ctx):
    otype, oid = ctx.params["type"], ctx.params["id"]
    _require_admin_for(ctx, otype)
    ref = _find_or_404(ctx, otype, oid)
    obj_type = wire.PERMISSION_TYPES[otype][0]
    if otype == "authorization":
        obj_type = ref.id
    return {"object_id": f"/{otype}/{ref.id}", "object_type": obj_type, "access_control_list": _acl(ctx, otype, ref)}


# ------------------------------------------------------------------------------------- compute


def _cluster(ctx: Ctx, c: dict) -> dict:
    out = copy.deepcopy(c)
    for k in ("creator_user_name", "single_user_name"):
        if out.get(k):
            out[k] = wire_name(ctx, out[k])
    tags = {"Vendor": "Databricks", "ClusterName": out.get("cluster_name"), "ClusterId": out["cluster_id"]}
    if out.get("creator_user_name"):
        tags["Creator"] = out["creator_user_name"]
    out.setdefault("default_tags", tags)
    return out


@route("/api/2.1/clusters/list")
@route("/api/2.0/clusters/list")
def clusters_list(ctx: Ctx):
    items = ctx.ws["clusters"]
    sources = ctx.qlist("filter_by.cluster_sources")
    states = ctx.qlist("filter_by.cluster_states")
    if sources:
        items = [c for c in items if c.get("cluster_source") in sources]
    if states:
        items = [c for c in items if c.get("state") in states]
    if ctx.q("filter_by.policy_id"):
        items = [c for c in items if c.get("policy_id") == ctx.q("filter_by.policy_id")]
    out = paged(ctx, items, "clusters", size_param="page_size", render=lambda c: _cluster(ctx, c))
    return out


@route("/api/2.1/clusters/get")
@route("/api/2.0/clusters/get")
def clusters_get(ctx: Ctx):
    cid = ctx.require("cluster_id")
    for c in ctx.ws["clusters"]:
        if c["cluster_id"] == cid:
            return _cluster(ctx, c)
    raise bad_request(f"Cluster {cid} does not exist")


@route("/api/2.1/clusters/spark-versions")
@route("/api/2.0/clusters/spark-versions")
def spark_versions(ctx: Ctx):
    return {"versions": copy.deepcopy(ctx.ws.get("spark_versions") or wire.DEFAULT_SPARK_VERSIONS)}


def _policy(ctx: Ctx, p: dict) -> dict:
    out = copy.deepcopy(p)
    if out.get("creator_user_name"):
        out["creator_user_name"] = wire_name(ctx, out["creator_user_name"])
    return out


@route("/api/2.0/policies/clusters/list")
def policies_list(ctx: Ctx):
    items = [_policy(ctx, p) for p in ctx.ws["cluster_policies"]]
    return {"policies": items, "total_count": len(items)}


@route("/api/2.0/policies/clusters/get")
def policies_get(ctx: Ctx):
    pid = ctx.require("policy_id")
    for p in ctx.ws["cluster_policies"]:
        if p["policy_id"] == pid:
            return _policy(ctx, p)
    raise not_found(f"Cluster policy {pid} does not exist.")


@route("/api/2.0/instance-pools/list")
def pools_list(ctx: Ctx):
    return {"instance_pools": copy.deepcopy(ctx.ws["instance_pools"])}


@route("/api/2.0/instance-pools/get")
def pools_get(ctx: Ctx):
    pid = ctx.require("instance_pool_id")
    for p in ctx.ws["instance_pools"]:
        if p["instance_pool_id"] == pid:
            return copy.deepcopy(p)
    raise not_found(f"Instance pool {pid} does not exist.")


def _init_script(s: dict, with_content: bool) -> dict:
    out = {k: v for k, v in s.items() if k != "script"}
    if with_content:
        out["script"] = base64.b64encode(s.get("script", "").encode()).decode()
    return out


@route("/api/2.0/global-init-scripts")
def init_scripts_list(ctx: Ctx):
    return {"scripts": [_init_script(s, False) for s in ctx.ws["global_init_scripts"]]}


@route("/api/2.0/global-init-scripts/{script_id}")
def init_scripts_get(ctx: Ctx):
    for s in ctx.ws["global_init_scripts"]:
        if s["script_id"] == ctx.params["script_id"]:
            return _init_script(s, True)
    raise not_found(f"Global init script {ctx.params['script_id']} does not exist.")


# ---------------------------------------------------------------------------- jobs & pipelines


def _run_as(ctx: Ctx, run_as: Optional[dict], creator: Optional[str]) -> Optional[dict]:
    """Effective run_as with wire names; defaults to the creator, as the service does."""
    if run_as:
        k, v = next((k, v) for k, v in run_as.items() if v is not None)
        return {k: wire_name(ctx, v) if k != "group_name" else v}
    if creator:
        found = ctx.state.directory.lookup(creator)
        if found and found[0].kind == "sp":
            return {"service_principal_name": found[0].name}
        return {"user_name": wire_name(ctx, creator)}
    return None


def _job(ctx: Ctx, j: dict, expand: bool, full: bool) -> dict:
    out = copy.deepcopy(j)
    if out.get("creator_user_name"):
        out["creator_user_name"] = wire_name(ctx, out["creator_user_name"])
    settings = out.setdefault("settings", {})
    run_as = _run_as(ctx, settings.get("run_as"), j.get("creator_user_name"))
    if run_as:
        settings["run_as"] = run_as
    if not expand:
        # Without expand_tasks the list omits task and job-cluster details, like the real API.
        settings.pop("tasks", None)
        settings.pop("job_clusters", None)
    if full:
        if run_as:
            out["run_as_user_name"] = next(iter(run_as.values()))
    else:
        out["has_more"] = False
    return out


@route("/api/2.2/jobs/list")
@route("/api/2.1/jobs/list")
def jobs_list(ctx: Ctx):
    limit = ctx.qint("limit", minimum=0)
    if limit is not None and limit > 100:
        raise bad_request("The limit must be between 0 and 100.")
    items = ctx.ws["jobs"]
    name = ctx.q("name")
    if name:
        items = [j for j in items if (j.get("settings") or {}).get("name", "").lower() == name.lower()]
    expand = ctx.qbool("expand_tasks")
    default = min(20, ctx.default_page)
    out = paged(ctx, items, "jobs", size_param="limit", default=default, render=lambda j: _job(ctx, j, expand, False))
    out["has_more"] = "next_page_token" in out
    return out


@route("/api/2.2/jobs/get")
@route("/api/2.1/jobs/get")
def jobs_get(ctx: Ctx):
    jid = ctx.require("job_id")
    for j in ctx.ws["jobs"]:
        if str(j["job_id"]) == jid:
            return _job(ctx, j, True, True)
    raise bad_request(f"Job {jid} does not exist.")


def _pipeline_state(ctx: Ctx, p: dict) -> dict:
    run_as = _run_as(ctx, p.get("run_as"), p.get("creator_user_name"))
    out = {"pipeline_id": p["pipeline_id"], "name": p["name"], "state": p.get("state", "IDLE")}
    for k in ("health", "cluster_id", "latest_updates"):
        if p.get(k) is not None:
            out[k] = copy.deepcopy(p[k])
    if p.get("creator_user_name"):
        out["creator_user_name"] = wire_name(ctx, p["creator_user_name"])
    if run_as:
        out["run_as_user_name"] = next(iter(run_as.values()))
    return out


@route("/api/2.0/pipelines")
def pipelines_list(ctx: Ctx):
    items = [_pipeline_state(ctx, p) for p in ctx.ws["pipelines"]]
    return paged(ctx, items, "statuses", size_param="max_results")


@route("/api/2.0/pipelines/{pipeline_id}")
def pipelines_get(ctx: Ctx):
    for p in ctx.ws["pipelines"]:
        if p["pipeline_id"] == ctx.params["pipeline_id"]:
            out = _pipeline_state(ctx, p)
            run_as = _run_as(ctx, p.get("run_as"), p.get("creator_user_name"))
            if run_as:
                out["run_as"] = run_as
            spec = copy.deepcopy(p.get("spec") or {})
            spec.setdefault("id", p["pipeline_id"])
            spec.setdefault("name", p["name"])
            out["spec"] = spec
            for k in ("last_modified", "cause", "effective_budget_policy_id"):
                if p.get(k) is not None:
                    out[k] = p[k]
            return out
    raise not_found(f"The specified pipeline {ctx.params['pipeline_id']} was not found.")


# ------------------------------------------------------------------ SQL, serving, dashboards, repos


def _warehouse(ctx: Ctx, w: dict) -> dict:
    out = copy.deepcopy(w)
    if out.get("creator_name"):
        out["creator_name"] = wire_name(ctx, out["creator_name"])
    return out


@route("/api/2.0/sql/warehouses")
def warehouses_list(ctx: Ctx):
    return paged(ctx, [_warehouse(ctx, w) for w in ctx.ws["warehouses"]], "warehouses", size_param="page_size")


@route("/api/2.0/sql/warehouses/{id}")
def warehouses_get(ctx: Ctx):
    for w in ctx.ws["warehouses"]:
        if w["id"] == ctx.params["id"]:
            return _warehouse(ctx, w)
    raise not_found(f"SQL warehouse {ctx.params['id']} does not exist.")


def _endpoint(ctx: Ctx, e: dict) -> dict:
    out = copy.deepcopy(e)
    if out.get("creator"):
        out["creator"] = wire_name(ctx, out["creator"])
    return out


@route("/api/2.0/serving-endpoints")
def serving_list(ctx: Ctx):
    return {"endpoints": [_endpoint(ctx, e) for e in ctx.ws["serving_endpoints"]]}


@route("/api/2.0/serving-endpoints/{name}")
def serving_get(ctx: Ctx):
    for e in ctx.ws["serving_endpoints"]:
        if e["name"] == ctx.params["name"]:
            return _endpoint(ctx, e)
    raise not_found(f"Serving endpoint {ctx.params['name']} does not exist.")


@route("/api/2.0/lakeview/dashboards")
def dashboards_list(ctx: Ctx):
    items = ctx.ws["dashboards"]
    if not ctx.qbool("show_trashed"):
        items = [d for d in items if d.get("lifecycle_state", "ACTIVE") != "TRASHED"]
    items = [{k: v for k, v in d.items() if k != "serialized_dashboard"} for d in items]
    return paged(ctx, copy.deepcopy(items), "dashboards", size_param="page_size")


@route("/api/2.0/lakeview/dashboards/{dashboard_id}")
def dashboards_get(ctx: Ctx):
    for d in ctx.ws["dashboards"]:
        if d["dashboard_id"] == ctx.params["dashboard_id"]:
            return copy.deepcopy(d)
    raise not_found(f"Dashboard {ctx.params['dashboard_id']} does not exist.")


@route("/api/2.0/repos")
def repos_list(ctx: Ctx):
    items = ctx.ws["repos"]
    prefix = ctx.q("path_prefix")
    if prefix:
        items = [r for r in items if r["path"].startswith(prefix)]
    return paged(ctx, copy.deepcopy(items), "repos", size_param="page_size", token_param="next_page_token")


@route("/api/2.0/repos/{repo_id}")
def repos_get(ctx: Ctx):
    for r in ctx.ws["repos"]:
        if str(r["id"]) == ctx.params["repo_id"]:
            return copy.deepcopy(r)
    raise not_found(f"Repo {ctx.params['repo_id']} does not exist.")


# -------------------------------------------------------------------------------------- secrets


def _scope(ctx: Ctx) -> dict:
    name = ctx.require("scope")
    for s in ctx.ws["secret_scopes"]:
        if s["name"] == name:
            return s
    raise not_found(f"Scope {name} does not exist!")


def _scope_level(ctx: Ctx, s: dict) -> int:
    """The caller's best permission on a scope: 0 none, 1 READ, 2 WRITE, 3 MANAGE (admins: MANAGE)."""
    if ctx.view.is_admin(ctx.principal):
        return 3
    rank = {"READ": 1, "WRITE": 2, "MANAGE": 3}
    mine = {id(ctx.principal)} | {id(g) for g in ctx.view.groups_of(ctx.principal)}
    best = 0
    for a in s.get("acls") or []:
        holder = ctx.view.local.get(a["principal"])
        holders = [holder] if holder is not None else ctx.state.directory.lookup(a["principal"])
        if any(id(p) in mine for p in holders):
            best = max(best, rank[a["permission"]])
    return best


@route("/api/2.0/secrets/scopes/list")
def secret_scopes_list(ctx: Ctx):
    out = []
    for s in ctx.ws["secret_scopes"]:
        item = {"name": s["name"], "backend_type": s.get("backend_type", "DATABRICKS")}
        if s.get("keyvault_metadata"):
            item["keyvault_metadata"] = copy.deepcopy(s["keyvault_metadata"])
        out.append(item)
    return {"scopes": out}


def _acl_item(ctx: Ctx, a: dict) -> dict:
    return {"principal": wire_name(ctx, a["principal"]), "permission": a["permission"]}


@route("/api/2.0/secrets/acls/list")
def secret_acls_list(ctx: Ctx):
    s = _scope(ctx)
    if _scope_level(ctx, s) < 3:
        raise ApiError(403, "PERMISSION_DENIED", f"User {ctx.principal.name} does not have MANAGE permission on scope {s['name']}.")
    return {"items": [_acl_item(ctx, a) for a in s.get("acls") or []]}


@route("/api/2.0/secrets/acls/get")
def secret_acls_get(ctx: Ctx):
    s = _scope(ctx)
    principal = ctx.require("principal")
    if _scope_level(ctx, s) < 3:
        raise ApiError(403, "PERMISSION_DENIED", f"User {ctx.principal.name} does not have MANAGE permission on scope {s['name']}.")
    for a in s.get("acls") or []:
        if wire_name(ctx, a["principal"]) == wire_name(ctx, principal):
            return _acl_item(ctx, a)
    raise not_found(f"No ACL for {principal} on scope {s['name']}.")


@route("/api/2.0/secrets/list")
def secrets_list(ctx: Ctx):
    s = _scope(ctx)
    if _scope_level(ctx, s) < 1:
        raise ApiError(403, "PERMISSION_DENIED", f"User {ctx.principal.name} does not have READ permission on scope {s['name']}.")
    return {"secrets": copy.deepcopy(s.get("secrets") or [])}


# ---------------------------------------------------------------------------- workspace objects


def _norm_path(p: str) -> str:
    p = posixpath.normpath(p or "/")
    return "/" if p in (".", "//") else p


@route("/api/2.0/workspace/list")
def workspace_list(ctx: Ctx):
    path = _norm_path(ctx.require("path"))
    objs = tree(ctx.ws)
    if path not in objs:
        raise not_found(f"Path ({path}) doesn't exist.")
    if objs[path]["object_type"] not in ("DIRECTORY", "REPO"):
        return {"objects": [copy.deepcopy(objs[path])]}
    children = [o for p, o in objs.items() if p != "/" and posixpath.dirname(p) == path]
    after = ctx.qint("notebooks_modified_after")
    if after is not None:
        children = [o for o in children if o["object_type"] == "DIRECTORY" or o.get("modified_at", 0) >= after]
    return {"objects": copy.deepcopy(sorted(children, key=lambda o: o["path"]))}


@route("/api/2.0/workspace/get-status")
def workspace_status(ctx: Ctx):
    path = _norm_path(ctx.require("path"))
    objs = tree(ctx.ws)
    if path not in objs:
        raise not_found(f"Path ({path}) doesn't exist.")
    return copy.deepcopy(objs[path])


_EXT = {"PYTHON": "py", "SQL": "sql", "SCALA": "scala", "R": "r"}


@route("/api/2.0/workspace/export")
def workspace_export(ctx: Ctx):
    path = _norm_path(ctx.require("path"))
    for n in ctx.ws["notebooks"]:
        if n["path"] == path:
            data = n.get("content", "").encode()
            if ctx.qbool("direct_download"):
                return Response(200, raw=data, headers={"Content-Type": "application/octet-stream"})
            ftype = _EXT.get(n.get("language", "PYTHON"), "py") if n.get("object_type", "NOTEBOOK") == "NOTEBOOK" else "file"
            return {"content": base64.b64encode(data).decode(), "file_type": ftype}
    if path in tree(ctx.ws):
        raise bad_request(f"Path ({path}) is a directory or repo; export a notebook or file.")
    raise not_found(f"Path ({path}) doesn't exist.")
