"""Workspace-level data sections.

Each function reads one section through the SDK and returns plain JSON (the wire shape, via the
SDK's ``as_dict``). Where the SDK would silently turn an enum value it does not know into ``None``
(settings, object ACLs, UC grants), we read the raw JSON through the SDK's own ``api_client.do`` so a
new privilege or level can never make a control pass by disappearing.
"""

from __future__ import annotations

from databricks.sdk.errors import BadRequest, NotFound

from . import section

# workspace-conf keys the controls read. The real API rejects unknown keys (a key may be missing on a
# cloud or an older workspace), so on a 400 we fall back to asking key by key and record the absent.
WORKSPACE_CONF_KEYS = (
    "enableTokensConfig", "maxTokenLifetimeDays", "enableIpAccessLists",
    "enableDeprecatedGlobalInitScripts", "enableResultsDownloading", "enableExportNotebook",
    "enableNotebookTableClipboard", "storeInteractiveNotebookResultsInCustomerAccount",
    "enableFileStoreEndpoint", "enableDbfsFileBrowser", "enableVerboseAuditLogs",
    "enableProjectsAllowList", "enableJobViewAcls", "enforceClusterViewAcls",
    "enforceWorkspaceViewAcls", "enableWebTerminal",
)

# settings API types (path segment) the controls read
WORKSPACE_SETTINGS = (
    "restrict_workspace_admins", "shield_csp_enablement_ws_db", "shield_esm_enablement_ws_db",
    "automatic_cluster_update", "disable_legacy_access", "disable_legacy_dbfs", "sql_results_download",
    "enable-export-notebook", "enable-results-downloading", "enable-notebook-table-clipboard",
)


def _dicts(items) -> list[dict]:
    return [i.as_dict() for i in items]


@section("identities", "workspace", title="workspace SCIM users, groups and service principals")
def identities(w, ctx):
    return {
        "users": _dicts(w.users.list()),
        "groups": _dicts(w.groups.list()),
        "service_principals": _dicts(w.service_principals.list()),
    }


@section("tokens", "workspace", title="all personal access tokens (token-management API)")
def tokens(w, ctx):
    # token_management lists every user's tokens; tokens.list() would show only the caller's own.
    return {"token_infos": _dicts(w.token_management.list())}


@section("workspace_conf", "workspace", title="workspace-conf keys")
def workspace_conf(w, ctx):
    try:
        values = dict(w.workspace_conf.get_status(keys=",".join(WORKSPACE_CONF_KEYS)) or {})
        return {"values": values, "unavailable": []}
    except BadRequest:
        values, unavailable = {}, []
        for key in WORKSPACE_CONF_KEYS:
            try:
                values.update(w.workspace_conf.get_status(keys=key) or {})
            except BadRequest:
                unavailable.append(key)
        return {"values": values, "unavailable": unavailable}


@section("settings", "workspace", title="workspace settings API")
def settings(w, ctx):
    values, unset, unavailable = {}, [], {}
    for name in WORKSPACE_SETTINGS:
        try:
            values[name] = w.api_client.do("GET", f"/api/2.0/settings/types/{name}/names/default")
        except NotFound as e:
            # RESOURCE_DOES_NOT_EXIST: never set, the default applies. Anything else (e.g.
            # ENDPOINT_NOT_FOUND/FEATURE_DISABLED): this workspace or cloud has no such setting.
            if e.error_code == "RESOURCE_DOES_NOT_EXIST":
                unset.append(name)
            else:
                unavailable[name] = f"{e.error_code or 'NOT_FOUND'}: {str(e).splitlines()[0]}"
    return {"values": values, "unset": unset, "unavailable": unavailable}


@section("network", "workspace", title="workspace IP access lists")
def network(w, ctx):
    return {"ip_access_lists": _dicts(w.ip_access_lists.list())}


@section("compute", "workspace", title="clusters, policies, pools, global init scripts, runtimes")
def compute(w, ctx):
    return {
        "clusters": _dicts(w.clusters.list()),
        "cluster_policies": _dicts(w.cluster_policies.list()),
        "instance_pools": _dicts(w.instance_pools.list()),
        "global_init_scripts": _dicts(w.global_init_scripts.list()),
        "spark_versions": [v.as_dict() for v in (w.clusters.spark_versions().versions or [])],
    }


@section("jobs", "workspace", title="jobs and pipelines with their run_as identities")
def jobs(w, ctx):
    pipelines = _dicts(w.pipelines.list_pipelines())
    # run_as and spec are only in pipelines.get
    details = ctx.fan_out(lambda p: w.pipelines.get(p["pipeline_id"]).as_dict(), pipelines)
    return {"jobs": _dicts(w.jobs.list(expand_tasks=True)), "pipelines": details}


@section("workspace_objects", "workspace", title="SQL warehouses, serving endpoints, dashboards, repos")
def workspace_objects(w, ctx):
    return {
        "warehouses": _dicts(w.warehouses.list()),
        "serving_endpoints": _dicts(w.serving_endpoints.list()),
        "dashboards": _dicts(w.lakeview.list()),
        "repos": _dicts(w.repos.list()),
    }


# Permissions API object type -> (section, list key, id field) of the objects it applies to
ACL_OBJECTS = (
    ("clusters", "compute", "clusters", "cluster_id"),
    ("cluster-policies", "compute", "cluster_policies", "policy_id"),
    ("instance-pools", "compute", "instance_pools", "instance_pool_id"),
    ("jobs", "jobs", "jobs", "job_id"),
    ("pipelines", "jobs", "pipelines", "pipeline_id"),
    ("warehouses", "workspace_objects", "warehouses", "id"),
    ("serving-endpoints", "workspace_objects", "serving_endpoints", "id"),
    ("dashboards", "workspace_objects", "dashboards", "dashboard_id"),
    ("repos", "workspace_objects", "repos", "id"),
)


@section("authorization_acls", "workspace", title="who may use tokens and password login")
def authorization_acls(w, ctx):
    return {kind: w.api_client.do("GET", f"/api/2.0/permissions/authorization/{kind}")
            for kind in ("tokens", "passwords")}


@section("object_acls", "workspace", needs=("compute", "jobs", "workspace_objects"),
         title="object permissions (clusters, policies, pools, jobs, pipelines, warehouses, ...)")
def object_acls(w, ctx):
    wanted = []
    for obj_type, sec, key, id_field in ACL_OBJECTS:
        for obj in ctx.data(sec).get(key, []):
            if obj.get(id_field) is not None:
                wanted.append((obj_type, str(obj[id_field])))
    acls = ctx.fan_out(lambda t: w.api_client.do("GET", f"/api/2.0/permissions/{t[0]}/{t[1]}"), wanted)
    out: dict[str, dict] = {}
    for (obj_type, obj_id), acl in zip(wanted, acls):
        out[f"{obj_type}/{obj_id}"] = acl
    return {"acls": out}


@section("secrets", "workspace", title="secret scopes and their ACLs")
def secrets(w, ctx):
    scopes = _dicts(w.secrets.list_scopes())
    acls = ctx.fan_out(lambda s: _dicts(w.secrets.list_acls(scope=s["name"])), scopes)
    return {"scopes": [{**s, "acls": a} for s, a in zip(scopes, acls)]}
