"""Escalation edges the access graph adds to a blast radius (shared/access-model.md 1.5).

Pure functions over plain inventory data. The caller (graph/access.py) passes what only the graph
knows: ``reach`` (grantee name -> chain from the principal, for the account or one workspace) and
``power_of(name)`` (what an identity holds: see :func:`severity`). Every finding has a ``path`` that
starts with the principal's chain and then names each edge, so ``" → ".join(path)`` explains it:

    alice → helpdesk → roles/group.manager on platform-admins → platform-admins → ADMIN of ws1

Edges computed here:

* ``group_manager``: ``roles/group.manager`` on group G → can add itself to G → G's access.
* ``sp_user``: ``roles/servicePrincipal.user`` on SP X → can set a job's run_as to X → X's access.
* ``sp_manager``: ``roles/servicePrincipal.manager`` on X → can grant itself the user role → as above.
* ``code_edit_run_as``: CAN_EDIT/CAN_MANAGE on a notebook, file, repo or folder (directly or inherited
  from a folder) holding code a job task or pipeline library runs → the next run executes its code as
  the run_as identity.
* ``cluster_cloud_identity``: CAN_ATTACH_TO/CAN_RESTART/CAN_MANAGE on a cluster with an AWS instance
  profile or a GCP service account → code on the cluster acts as that cloud identity.
* ``policy_cloud_identity``: CAN_USE on a cluster policy that fixes (or allows) an instance profile or
  service account → can create a cluster acting as it.

Not modelled (said in the README): Azure clusters (the cluster spec has no managed-identity field;
Azure storage access goes through UC credentials or secrets in Spark conf, CMP-05), instance profiles
granted to users through SCIM ``roles`` outside a policy, init scripts, driver-log secret leaks.
"""

from __future__ import annotations

import json
from typing import Callable, Iterable

# rule-set principals are "users/<userName>", "groups/<name>", "servicePrincipals/<applicationId>"
RULE_PRINCIPAL_PREFIXES = ("users/", "groups/", "servicePrincipals/")
GROUP_MANAGER = "roles/group.manager"
SP_USER = "roles/servicePrincipal.user"
SP_MANAGER = "roles/servicePrincipal.manager"

# permission levels that let a principal change what a workspace object contains
CODE_EDIT_LEVELS = ("CAN_EDIT", "CAN_MANAGE")
CLUSTER_USE_LEVELS = ("CAN_ATTACH_TO", "CAN_RESTART", "CAN_MANAGE")
TREE_TYPES = ("directories", "notebooks", "files", "repos")
# cluster fields naming the cloud identity the cluster runs as, and the policy paths that set them
CLOUD_IDENTITY_FIELDS = (("aws_attributes", "instance_profile_arn", "instance profile"),
                         ("gcp_attributes", "google_service_account", "GCP service account"))


def _rule_principal(p: str) -> str:
    for prefix in RULE_PRINCIPAL_PREFIXES:
        if p.startswith(prefix):
            return p[len(prefix):]
    return p


def severity(power: dict) -> str:
    """critical: the identity is an account, workspace or metastore admin; high: it holds Unity Catalog
    privileges or ownership beyond what `account users` gives everyone; medium otherwise."""
    if power.get("account_admin") or power.get("workspace_admin") or power.get("metastore_admin"):
        return "critical"
    return "high" if power.get("uc_grants") else "medium"


def describe_power(power: dict) -> str:
    parts = []
    if power.get("account_admin"):
        parts.append("account admin")
    for ws in power.get("workspace_admin") or []:
        parts.append(f"ADMIN of {ws}")
    for ms in power.get("metastore_admin") or []:
        parts.append(f"metastore admin of {ms}")
    if power.get("uc_grants"):
        parts.append(f"{power['uc_grants']} Unity Catalog privilege(s)/ownership(s)")
    return ", ".join(parts) or "no admin role or Unity Catalog privilege found"


# -- roles on identities ----------------------------------------------------------------------------


def identity_role_findings(me: str, rule_sets: list[dict], reach: dict[str, list[str]],
                           power_of: Callable[[str], dict]) -> list[dict]:
    """Findings from the ``identity_roles`` section's rule sets for the principal ``me``."""
    out = []
    for rs in rule_sets:
        target = rs.get("principal")  # the group's name or the SP's applicationId
        for rule in rs.get("grant_rules") or []:
            role = rule.get("role")
            for raw in rule.get("principals") or []:
                grantee = _rule_principal(raw)
                if grantee not in reach or target == me:
                    continue
                via = reach[grantee]
                power = power_of(target)
                gives = describe_power(power)
                if rs.get("resource_kind") == "group" and role == GROUP_MANAGER:
                    if target in reach:
                        continue  # already a member: nothing to gain
                    out.append(_finding("group_manager", severity(power), f"group {target}",
                                        f"group manager of {target}: can add itself to the group, which gives: {gives}",
                                        [*via, f"{role} on {target}", target, gives]))
                elif rs.get("resource_kind") == "service_principal" and role in (SP_USER, SP_MANAGER):
                    name = f"{rs.get('display_name')} ({target})" if rs.get("display_name") else target
                    if role == SP_USER:
                        out.append(_finding("sp_user", severity(power), f"service principal {name}",
                                            f"service principal user of {name}: can run jobs as it, which gives: {gives}",
                                            [*via, f"{role} on {target}", target, gives]))
                    else:
                        out.append(_finding("sp_manager", severity(power), f"service principal {name}",
                                            f"service principal manager of {name}: can grant itself the user role "
                                            f"and run jobs as it, which gives: {gives}",
                                            [*via, f"{role} on {target}", f"{SP_USER} (self-granted)", target,
                                             gives]))
    return out


# -- the workspace tree's ACLs ------------------------------------------------------------------


def tree_gaps(scope: str, data: dict | None) -> list[str]:
    """Why a read ``workspace_acls`` section is still incomplete (the cap, folders not listable)."""
    if not data:
        return []
    out = []
    if data.get("truncated"):
        out.append(f"{scope}/workspace_acls: incomplete: {data.get('found')} folders/notebooks/files/repos, "
                   f"ACLs read for the first {data.get('limit')} only (the collector's cap)")
    errors = data.get("listing_errors") or []
    if errors:
        out.append(f"{scope}/workspace_acls: incomplete: {len(errors)} folder(s) could not be listed, e.g. "
                   f"{errors[0].get('path')}: {errors[0].get('reason')}")
    return out


def tree_permissions(ws_name: str, ws_id, data: dict | None, ws_reach: dict[str, list[str]],
                     have: Iterable[tuple[str, str]] = ()) -> list[dict]:
    """Object permission records (the ``workspace_object_permissions`` shape) for folders, notebooks,
    files and repos. ``have``: (type, id) already reported from the ``acls_*`` sections (repos are in both)."""
    have = set(have)
    out = []
    for obj in (data or {}).get("objects") or []:
        otype, oid = obj.get("permissions_type"), str(obj.get("object_id"))
        if (otype, oid) in have:
            continue
        for ace in (obj.get("acl") or {}).get("access_control_list") or []:
            grantee = ace.get("user_name") or ace.get("service_principal_name") or ace.get("group_name")
            if grantee not in ws_reach:
                continue
            for perm in ace.get("all_permissions") or []:
                out.append({"object_type": otype, "object_id": oid, "object_name": obj.get("path"),
                            "permission_level": perm.get("permission_level"), "workspace_name": ws_name,
                            "workspace_id": ws_id, "via": ws_reach[grantee],
                            "inherited": bool(perm.get("inherited")),
                            "inherited_from_object": perm.get("inherited_from_object") or None})
    return out


# -- code a job runs --------------------------------------------------------------------------


def _workspace_path(path) -> str | None:
    if not isinstance(path, str) or not path.startswith("/"):
        return None
    return path[len("/Workspace"):] if path.startswith("/Workspace/") else path


def code_refs(jobs_data: dict | None, run_as_of: dict[tuple[str, str], str | None]) -> list[dict]:
    """Workspace code run by job tasks and pipeline libraries: [{path, kind, id, name, run_as}], the
    identity each runs as taken from ``run_as_of`` ((jobs|pipelines, id) -> identity, the graph's
    index). A task whose source is GIT (the default when the job has a git_source) is edited outside
    Databricks."""
    out = []
    data = jobs_data or {}

    def tasks_of(tasks):
        for t in tasks or []:
            yield t
            nested = (t.get("for_each_task") or {}).get("task")
            if isinstance(nested, dict):
                yield from tasks_of([nested])

    for j in data.get("jobs") or []:
        settings = j.get("settings") or {}
        run_as = run_as_of.get(("jobs", str(j.get("job_id"))))
        default = "GIT" if settings.get("git_source") else "WORKSPACE"
        for t in tasks_of(settings.get("tasks")):
            for task_type, field in (("notebook_task", "notebook_path"), ("spark_python_task", "python_file")):
                body = t.get(task_type) or {}
                path = _workspace_path(body.get(field))
                if path and (body.get("source") or default) == "WORKSPACE":
                    out.append({"path": path, "kind": "job", "id": str(j.get("job_id")),
                                "name": settings.get("name"), "run_as": run_as})
    for p in data.get("pipelines") or []:
        run_as = run_as_of.get(("pipelines", str(p.get("pipeline_id"))))
        for lib in (p.get("spec") or {}).get("libraries") or []:
            for kind in ("notebook", "file"):
                path = _workspace_path((lib.get(kind) or {}).get("path"))
                if path:
                    out.append({"path": path, "kind": "pipeline", "id": str(p.get("pipeline_id")),
                                "name": p.get("name"), "run_as": run_as})
    return out


def _contains(obj_type: str, obj_path: str, code_path: str) -> bool:
    if obj_type in ("notebooks", "files"):
        return code_path == obj_path
    return code_path.startswith(obj_path.rstrip("/") + "/")  # folders and repos hold the code below them


def code_edit_findings(me: str, records: list[dict], refs_by_ws: dict[str, list[dict]],
                       power_of: Callable[[str, str], dict], label: Callable[[str], str] = str) -> list[dict]:
    """Edit rights on code a job or pipeline runs as another identity. ``records``: the principal's
    object permission records; ``power_of(identity, workspace)``; ``label(identity)`` names it for people."""
    out = []
    # direct entries first: the shortest explanation wins when one job is reachable several ways
    for r in sorted(records, key=lambda r: (r["inherited"], len(r["via"]))):
        if r["object_type"] not in TREE_TYPES or r["permission_level"] not in CODE_EDIT_LEVELS:
            continue
        path = r.get("object_name")
        if not path:
            continue
        for ref in refs_by_ws.get(r["workspace_name"], []):
            if not ref["run_as"] or ref["run_as"] == me or not _contains(r["object_type"], path, ref["path"]):
                continue
            power = power_of(ref["run_as"], r["workspace_name"])
            inherited = f" (inherited from {', '.join(r['inherited_from_object'] or ['a folder'])})" \
                if r["inherited"] else ""
            obj = r["object_type"][:-1] if r["object_type"] != "directories" else "folder"
            what = f"{ref['kind']} {ref['name'] or ref['id']} ({r['workspace_name']})"
            # running code as another identity is high at least (as run_as_takeover); critical for an admin
            sev = "critical" if severity(power) == "critical" else "high"
            out.append(_finding(
                "code_edit_run_as", sev, what,
                f"{r['permission_level']}{inherited} on {obj} {path}, whose code {ref['path']} the {ref['kind']} runs "
                f"as {label(ref['run_as'])}: edit it and the next run executes as that identity "
                f"({describe_power(power)})",
                [*r["via"], f"{r['permission_level']} on {obj} {path}", f"{ref['kind']} {ref['name'] or ref['id']}",
                 ref["run_as"]], object_type=r["object_type"]))
    return out


# -- compute that runs as a cloud identity -----------------------------------------------------------


def cluster_identities(cluster: dict) -> list[tuple[str, str]]:
    """(label, identity) for the cloud identities a cluster runs as."""
    out = []
    for attrs, field, label in CLOUD_IDENTITY_FIELDS:
        value = (cluster.get(attrs) or {}).get(field)
        if value:
            out.append((label, value))
    return out


def policy_identities(policy: dict) -> list[tuple[str, str, str]]:
    """(label, identity, how) for the cloud identities a cluster policy fixes or allows. A definition
    that cannot be parsed yields nothing here (CMP controls judge policies themselves)."""
    try:
        definition = json.loads(policy.get("definition") or "{}")
    except (TypeError, ValueError):
        return []
    out = []
    for attrs, field, label in CLOUD_IDENTITY_FIELDS:
        rule = definition.get(f"{attrs}.{field}") if isinstance(definition, dict) else None
        if not isinstance(rule, dict):
            continue
        kind = rule.get("type")
        if kind == "fixed" and rule.get("value"):
            out.append((label, str(rule["value"]), "fixed by the policy"))
        elif kind == "allowlist":
            out += [(label, str(v), "allowed by the policy") for v in rule.get("values") or []]
        elif rule.get("defaultValue"):
            out.append((label, str(rule["defaultValue"]), "the policy's default"))
    return out


def cloud_identity_findings(records: list[dict], compute_by_ws: dict[str, dict]) -> list[dict]:
    """Cluster and cluster-policy permissions that let the principal act as a cloud identity."""
    out = []
    for r in sorted(records, key=lambda r: len(r["via"])):
        compute = compute_by_ws.get(r["workspace_name"]) or {}
        if r["object_type"] == "clusters" and r["permission_level"] in CLUSTER_USE_LEVELS:
            cluster = next((c for c in compute.get("clusters") or [] if str(c.get("cluster_id")) == r["object_id"]), {})
            name = cluster.get("cluster_name") or r["object_id"]
            for label, identity in cluster_identities(cluster):
                note = ""
                if cluster.get("data_security_mode") in ("USER_ISOLATION", "DATA_SECURITY_MODE_STANDARD"):
                    note = " (standard/shared access mode restricts direct use of the instance credentials [verify])"
                out.append(_finding(
                    "cluster_cloud_identity", "high", f"{label} {identity} ({r['workspace_name']})",
                    f"{r['permission_level']} on cluster {name}, which runs as {label} {identity}: code attached "
                    f"to it acts as that cloud identity{note}",
                    [*r["via"], f"{r['permission_level']} on cluster {name}", f"{label} {identity}"],
                    object_type="clusters"))
        elif r["object_type"] == "cluster-policies" and r["permission_level"] == "CAN_USE":
            policy = next((p for p in compute.get("cluster_policies") or [] if str(p.get("policy_id")) == r["object_id"]),
                          {})
            name = policy.get("name") or r["object_id"]
            for label, identity, how in policy_identities(policy):
                out.append(_finding(
                    "policy_cloud_identity", "high", f"{label} {identity} ({r['workspace_name']})",
                    f"CAN_USE on cluster policy {name} ({label} {how}): can create a cluster that acts as {identity}",
                    [*r["via"], f"CAN_USE on cluster policy {name}", f"{label} {identity}"],
                    object_type="cluster-policies"))
    return out


def _finding(kind, sev, target, reason, path, **extra) -> dict:
    return {"kind": kind, "severity": sev, "target": target, "reason": reason, "path": path, **extra}
