"""Workspace-level data sections.

Each function reads one section through the SDK and returns plain JSON (the wire shape, via the
SDK's ``as_dict``). Where the SDK would silently turn an enum value it does not know into ``None``
(settings, object ACLs, UC grants), we read the raw JSON through the SDK's own ``api_client.do`` so a
new privilege or level can never make a control pass by disappearing.
"""

from __future__ import annotations

from databricks.sdk.errors import BadRequest, NotFound

from ..credentials import scrub_list, scrub_mapping
from ..inventory import acl_section
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


# page size for jobs/clusters lists: the jobs API's maximum (its default is 20)
LIST_PAGE = 100


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
    # the largest pages the APIs give (the defaults are 20-50): fewer sequential round trips
    clusters = _dicts(w.clusters.list(page_size=LIST_PAGE))
    matches: list[dict] = []
    for c in clusters:
        # a credential in a cluster's configuration never enters the inventory: its value is replaced
        # by a marker and only its location and a redacted preview are kept (CMP-05)
        _scrub_cluster_spec(c, "", matches, object_type="cluster", object_id=c.get("cluster_id"),
                            object_name=c.get("cluster_name"), owner=c.get("creator_user_name"))
    cloud, cloud_source = _cloud(w)
    return {
        "clusters": clusters,
        "cluster_policies": _dicts(w.cluster_policies.list()),
        "instance_pools": _dicts(w.instance_pools.list()),
        "global_init_scripts": _dicts(w.global_init_scripts.list()),
        "spark_versions": [v.as_dict() for v in (w.clusters.spark_versions().versions or [])],
        "cloud": cloud,  # aws | azure | gcp, or None when it cannot be told
        "cloud_source": cloud_source,
        "credential_matches": matches,
    }


def _cloud(w) -> tuple[str | None, str | None]:
    """The workspace's cloud: from the host metadata the SDK read, else from a known host name."""
    from urllib.parse import urlparse

    from databricks.sdk.environments import ALL_ENVS

    cfg = w.config
    if getattr(cfg, "cloud", None):
        return cfg.cloud.value.lower(), "host metadata"
    host = urlparse(cfg.host or "").hostname or ""
    for env in ALL_ENVS:
        if host.endswith(env.dns_zone):
            return env.cloud.value.lower(), "host name"
    return None, None


def _scrub_cluster_spec(spec, where: str, out: list[dict], **context) -> None:
    """Credentials in a cluster spec (a cluster, or a job's/pipeline's new cluster)."""
    if not isinstance(spec, dict):
        return
    for field in ("spark_env_vars", "spark_conf"):
        scrub_mapping(spec.get(field), f"{where}{field}", out, area="cluster_conf", **context)
    docker = spec.get("docker_image")
    if isinstance(docker, dict):
        scrub_mapping(docker.get("basic_auth"), f"{where}docker_image.basic_auth", out, area="cluster_conf", **context)


# task fields holding parameters: (task type, field) -> mapping or list
_TASK_PARAMS = (
    ("notebook_task", "base_parameters"), ("python_wheel_task", "named_parameters"),
    ("python_wheel_task", "parameters"), ("spark_python_task", "parameters"), ("spark_jar_task", "parameters"),
    ("spark_submit_task", "parameters"), ("sql_task", "parameters"), ("run_job_task", "job_parameters"),
    ("run_job_task", "notebook_params"), ("run_job_task", "python_named_params"),
    ("run_job_task", "jar_params"), ("run_job_task", "python_params"), ("run_job_task", "spark_submit_params"),
    ("run_job_task", "sql_params"), ("dbt_task", "commands"),
)


def _scrub_params(value, where: str, out: list[dict], **context) -> None:
    if isinstance(value, dict):
        scrub_mapping(value, where, out, area="parameter", **context)
    elif isinstance(value, list):
        scrub_list(value, where, out, area="parameter", **context)


def _scrub_task(task: dict, where: str, out: list[dict], **context) -> None:
    for task_type, field in _TASK_PARAMS:
        body = task.get(task_type)
        if isinstance(body, dict):
            _scrub_params(body.get(field), f"{where}.{task_type}.{field}", out, **context)
    _scrub_cluster_spec(task.get("new_cluster"), f"{where}.new_cluster.", out, **context)
    for i, lib in enumerate(task.get("libraries") or []):
        pypi = lib.get("pypi") if isinstance(lib, dict) else None
        if isinstance(pypi, dict):
            _scrub_params(pypi, f"{where}.libraries[{i}].pypi", out, **context)
    nested = (task.get("for_each_task") or {}).get("task")
    if isinstance(nested, dict):
        _scrub_task(nested, f"{where}.for_each_task.task", out, **context)


def _scrub_job(job: dict, out: list[dict]) -> None:
    """Credentials in a job definition: parameters, task parameters, job cluster env/conf, dependencies."""
    settings = job.get("settings") or {}
    context = {"object_type": "job", "object_id": job.get("job_id"), "object_name": settings.get("name"),
               "owner": job.get("creator_user_name")}
    for p in settings.get("parameters") or []:
        if isinstance(p, dict) and isinstance(p.get("default"), str):
            holder = {p.get("name") or "?": p["default"]}
            scrub_mapping(holder, "parameters", out, area="parameter", **context)
            p["default"] = next(iter(holder.values()))
    for jc in settings.get("job_clusters") or []:
        _scrub_cluster_spec(jc.get("new_cluster"), f"job_clusters[{jc.get('job_cluster_key')}].new_cluster.", out,
                            **context)
    for task in settings.get("tasks") or []:
        _scrub_task(task, f"tasks[{task.get('task_key')}]", out, **context)
    for env in settings.get("environments") or []:
        spec = env.get("spec") if isinstance(env, dict) else None
        if isinstance(spec, dict):
            _scrub_params(spec.get("dependencies"), f"environments[{env.get('environment_key')}].spec.dependencies",
                          out, **context)
    _scrub_params(settings.get("git_source"), "git_source", out, **context)


def _scrub_pipeline(p: dict, out: list[dict]) -> None:
    spec = p.get("spec") or {}
    context = {"object_type": "pipeline", "object_id": p.get("pipeline_id"), "object_name": p.get("name"),
               "owner": p.get("creator_user_name")}
    _scrub_params(spec.get("configuration"), "configuration", out, **context)
    for c in spec.get("clusters") or []:
        _scrub_cluster_spec(c, f"clusters[{c.get('label', '?')}].", out, **context)


@section("jobs", "workspace", title="jobs and pipelines with their run_as identities")
def jobs(w, ctx):
    pipelines = _dicts(w.pipelines.list_pipelines())
    # run_as and spec are only in pipelines.get
    details = ctx.fan_out(lambda p: w.pipelines.get(p["pipeline_id"]).as_dict(), pipelines)
    job_list = _dicts(w.jobs.list(expand_tasks=True, limit=LIST_PAGE))
    # the list may leave out run_as (BaseJob has no run_as_user_name): ask jobs.get for those jobs
    missing = [j for j in job_list if not (j.get("settings") or {}).get("run_as")]
    for j, full in zip(missing, ctx.fan_out(lambda j: w.jobs.get(j["job_id"]).as_dict(), missing)):
        if full.get("run_as_user_name"):
            j["run_as_user_name"] = full["run_as_user_name"]
        if (full.get("settings") or {}).get("run_as"):
            j.setdefault("settings", {})["run_as"] = full["settings"]["run_as"]
    # credentials in job and pipeline definitions are replaced by markers; only where they were and a
    # redacted preview are kept (SEC-04, CMP-05)
    matches: list[dict] = []
    for j in job_list:
        _scrub_job(j, matches)
    for p in details:
        _scrub_pipeline(p, matches)
    return {"jobs": job_list, "pipelines": details, "credential_matches": matches}


@section("workspace_objects", "workspace", title="SQL warehouses, serving endpoints, dashboards, repos")
def workspace_objects(w, ctx):
    return {
        "warehouses": _dicts(w.warehouses.list()),
        "serving_endpoints": _dicts(w.serving_endpoints.list()),
        "dashboards": _dicts(w.lakeview.list()),
        "repos": _dicts(w.repos.list()),
    }


# Permissions API object type -> (section, list key, id field, what it is) of the objects it applies to.
# Each type is its own data section (``acls_<type>``, inventory.acl_section): one call per object, so
# a run reads the permissions of only the object types its selected controls declare.
ACL_OBJECTS = (
    ("clusters", "compute", "clusters", "cluster_id", "cluster"),
    ("cluster-policies", "compute", "cluster_policies", "policy_id", "cluster policy"),
    ("instance-pools", "compute", "instance_pools", "instance_pool_id", "instance pool"),
    ("jobs", "jobs", "jobs", "job_id", "job"),
    ("pipelines", "jobs", "pipelines", "pipeline_id", "pipeline"),
    ("warehouses", "workspace_objects", "warehouses", "id", "SQL warehouse"),
    ("serving-endpoints", "workspace_objects", "serving_endpoints", "id", "serving endpoint"),
    ("dashboards", "workspace_objects", "dashboards", "dashboard_id", "dashboard"),
    ("repos", "workspace_objects", "repos", "id", "repo"),
)

@section("authorization_acls", "workspace", title="who may use tokens and password login")
def authorization_acls(w, ctx):
    return {kind: w.api_client.do("GET", f"/api/2.0/permissions/authorization/{kind}")
            for kind in ("tokens", "passwords")}


def _read_acls(w, ctx, obj_type: str, list_section: str, key: str, id_field: str) -> dict:
    ids = [str(obj[id_field]) for obj in ctx.data(list_section).get(key, []) if obj.get(id_field) is not None]

    def get(obj_id):
        try:
            return w.api_client.do("GET", f"/api/2.0/permissions/{obj_type}/{obj_id}")
        except NotFound:
            return None  # deleted between the listing and this call: nothing left to judge

    out: dict[str, dict] = {}
    vanished: list[str] = []
    for obj_id, acl in zip(ids, ctx.fan_out(get, ids)):
        if acl is None:
            vanished.append(f"{obj_type}/{obj_id}")
        else:
            out[f"{obj_type}/{obj_id}"] = acl
    return {"acls": out, "vanished": vanished}


def _register_acl_section(obj_type: str, list_section: str, key: str, id_field: str, what: str) -> None:
    def read(w, ctx):
        return _read_acls(w, ctx, obj_type, list_section, key, id_field)

    read.__qualname__ = f"acls[{obj_type}]"  # one function per section (the registry tells them apart by name)
    section(acl_section(obj_type), "workspace", needs=(list_section,),
            title=f"permissions of each {what} (one call each)")(read)


for _args in ACL_OBJECTS:
    _register_acl_section(*_args)


@section("secrets", "workspace", title="secret scopes and their ACLs")
def secrets(w, ctx):
    scopes = _dicts(w.secrets.list_scopes())
    acls = ctx.fan_out(lambda s: _dicts(w.secrets.list_acls(scope=s["name"])), scopes)
    return {"scopes": [{**s, "acls": a} for s, a in zip(scopes, acls)]}
