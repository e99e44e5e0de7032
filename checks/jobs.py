"""JOB: automation identities -- who jobs and pipelines run as, and who can change what they run.

Identities: a run_as names a user (userName), a service principal (applicationId) or a group; the
``identities`` section (workspace SCIM) tells which. Group membership is transitive
(``pytest_dbsec.graph.Membership``); a workspace admin is a transitive member of the workspace
``admins`` group (which holds every ADMIN-assigned principal).

JOB-04, the exact rule. For every job (and pipeline) whose run_as identity R is known, a principal P is
reported when

1. P can change what runs as R: P holds CAN_MANAGE or IS_OWNER on the job (pipeline), or CAN_EDIT or
   CAN_MANAGE on a notebook or workspace file a task runs (``notebook_task.notebook_path``,
   ``spark_python_task.python_file`` from the workspace; pipeline notebook/file libraries) or on the
   repo holding it; a permission level the tool does not know counts as able to change;
2. P is not R, not the ``admins`` group, and not a workspace admin (admins can change any job and its
   run_as anyway, so they gain nothing);
3. R is more privileged than P: R is a workspace admin (then even the job's creator and owner are
   reported: whoever controls the job is effectively an admin), or -- for principals other than the
   job's creator and IS_OWNER, who set its run_as, which needs the service principal's
   servicePrincipal.user role, an authorized delegation -- R holds something P does not: a Unity
   Catalog privilege on a securable (P holding it directly, on a parent catalog/schema, through
   ALL_PRIVILEGES, or as owner of it or a parent covers it; a metastore admin covers everything), the
   ownership of a securable, metastore admin, or a higher secret scope permission. Privileges are
   counted through transitive group membership, ``users`` and ``account users``; for a group P, only
   what the group itself holds (what every member surely has) is counted.
"""

from __future__ import annotations

import pytest

from pytest_dbsec.graph import GROUP, SERVICE_PRINCIPAL, USER, Membership

MANAGE_LEVELS = ("CAN_MANAGE", "IS_OWNER")
KNOWN_JOB_LEVELS = ("CAN_VIEW", "CAN_MANAGE_RUN", "CAN_MANAGE", "IS_OWNER")
EDIT_LEVELS = ("CAN_EDIT", "CAN_MANAGE")
KNOWN_CODE_LEVELS = ("CAN_READ", "CAN_VIEW", "CAN_RUN", "CAN_EDIT", "CAN_MANAGE")
ADMINS = "admins"
EVERYONE = ("users", "account users")
SECRET_RANK = {"READ": 1, "WRITE": 2, "MANAGE": 3}
# ALL_PRIVILEGES expands to every privilege except these (shared/access-model.md 1.2)
NOT_IN_ALL = ("MANAGE", "EXTERNAL_USE_SCHEMA", "EXTERNAL_USE_LOCATION")


def _membership(workspace) -> Membership:
    ids = workspace.data("identities")
    return Membership(ids.get("users") or [], ids.get("groups") or [], ids.get("service_principals") or [])


def _kind(m: Membership, name: str, hint: str | None = None) -> str:
    p = m.get(name)
    if p is not None:
        return p.kind
    return hint or USER


def _label(m: Membership, name: str) -> str:
    p = m.get(name)
    if p is not None and p.kind == SERVICE_PRINCIPAL and p.display_name and p.display_name != name:
        return f"{p.display_name} ({name})"
    return name


def run_as_of(m: Membership, obj: dict, settings_key: str | None = "settings") -> tuple[str | None, str | None]:
    """(kind, name) of a job's (settings.run_as) or pipeline's (run_as) identity; the creator when none
    is declared (the service's default); (None, None) when unknown."""
    holder = (obj.get(settings_key) or {}) if settings_key else obj
    ra = holder.get("run_as") or {}
    if ra.get("service_principal_name"):
        return SERVICE_PRINCIPAL, ra["service_principal_name"]
    if ra.get("group_name"):
        return GROUP, ra["group_name"]
    name = ra.get("user_name") or obj.get("run_as_user_name") or obj.get("creator_user_name")
    if not name:
        return None, None
    return _kind(m, name), name


def _is_admin(m: Membership, name: str, kind: str | None = None) -> bool:
    if name == ADMINS:
        return True
    if (kind or _kind(m, name)) == GROUP:
        return ADMINS in m.groups_of(name)
    return m.is_member(name, ADMINS)


def _acl_entries(acl: dict | None):
    """(principal, kind, [levels]) of each entry of a Permissions API answer."""
    for e in (acl or {}).get("access_control_list") or []:
        for key, kind in (("user_name", USER), ("service_principal_name", SERVICE_PRINCIPAL), ("group_name", GROUP)):
            if e.get(key):
                levels = [p.get("permission_level") for p in e.get("all_permissions") or []]
                yield e[key], kind, levels
                break


def _job_name(job: dict) -> str:
    return (job.get("settings") or {}).get("name") or str(job.get("job_id"))


# -- JOB-01 / JOB-02 ------------------------------------------------------------------------------


@pytest.mark.dbsec(
    id="JOB-01", title="Jobs run as service principals", severity="medium", scope="workspace",
    sections=["jobs", "identities"], refs={"SAT": ["GOV-42"], "seeds": ["run as service principal"]},
    rationale="A job running as a person stops or changes behaviour when that person leaves or changes role, "
              "and everyone who can edit the job acts with that person's rights.",
    remediation="Set the job's run_as to a service principal: `databricks jobs update <job-id> --json "
                "'{\"new_settings\": {\"run_as\": {\"service_principal_name\": \"<application-id>\"}}}'` "
                "(POST /api/2.2/jobs/update; needs the servicePrincipal.user role on the SP).",
)
def test_JOB_01_jobs_run_as_service_principals(workspace, baseline, findings):
    m = _membership(workspace)
    allowed = set(baseline.get("jobs.user_run_as_allowed") or [])
    for job in workspace.data("jobs").get("jobs") or []:
        kind, name = run_as_of(m, job)
        if kind == SERVICE_PRINCIPAL or (kind == USER and name in allowed):
            continue
        seen = "run_as unknown" if name is None else f"runs as {kind.replace('_', ' ')} {name}"
        findings.fail(resource_type="job", resource_id=job.get("job_id"), resource_name=_job_name(job),
                      owner=job.get("creator_user_name"), seen=seen,
                      expected="runs as a service principal (or a user in jobs.user_run_as_allowed)",
                      run_as=name)


@pytest.mark.dbsec(
    id="JOB-02", title="Pipelines run as service principals", severity="medium", scope="workspace",
    sections=["jobs", "identities"], refs={"seeds": ["run as service principal"]},
    rationale="A pipeline running as a person depends on that person's account and rights.",
    remediation="Set the pipeline's run_as to a service principal: `databricks pipelines update <pipeline-id> "
                "--json '{\"run_as\": {\"service_principal_name\": \"<application-id>\"}, ...}'` "
                "(PUT /api/2.0/pipelines/{pipeline_id}).",
)
def test_JOB_02_pipelines_run_as_service_principals(workspace, findings):
    m = _membership(workspace)
    for p in workspace.data("jobs").get("pipelines") or []:
        kind, name = run_as_of(m, p, settings_key=None)
        if kind == SERVICE_PRINCIPAL:
            continue
        seen = "run_as unknown" if name is None else f"runs as {kind.replace('_', ' ')} {name}"
        findings.fail(resource_type="pipeline", resource_id=p.get("pipeline_id"), resource_name=p.get("name"),
                      owner=p.get("creator_user_name"), seen=seen, expected="runs as a service principal",
                      run_as=name)


# -- JOB-03 -----------------------------------------------------------------------------------------


def _allowed_manager(m: Membership, name: str, kind: str, managers: set[str]) -> bool:
    """In jobs.managers: by name, or (transitively) inside a group listed there."""
    if name in managers:
        return True
    p = m.get(name)
    if p is not None and p.kind == SERVICE_PRINCIPAL and p.display_name in managers:
        return True
    return bool(m.groups_of(name) & managers)


@pytest.mark.dbsec(
    id="JOB-03", title="No job management for non-admins", severity="high", scope="workspace",
    sections=["jobs", "acls_jobs", "identities"], refs={"SAT": ["GOV-45"]},
    rationale="CAN_MANAGE/IS_OWNER on a job lets a principal change its code, cluster and permissions; "
              "management should stay with its creator, the workspace admins and an approved team.",
    remediation="Lower the permission to CAN_MANAGE_RUN or CAN_VIEW: `databricks jobs set-permissions <job-id> "
                "--json '{\"access_control_list\": [...]}'` (PUT /api/2.0/permissions/jobs/{job_id}); list "
                "approved managers in jobs.managers.",
)
def test_JOB_03_no_job_management_for_non_admins(workspace, baseline, findings):
    m = _membership(workspace)
    managers = set(baseline.get("jobs.managers") or [])
    acls = workspace.data("acls_jobs").get("acls") or {}
    vanished = set(workspace.data("acls_jobs").get("vanished") or [])
    for job in workspace.data("jobs").get("jobs") or []:
        jid, creator = job.get("job_id"), job.get("creator_user_name")
        acl = acls.get(f"jobs/{jid}")
        if f"jobs/{jid}" in vanished:
            continue  # deleted while the audit ran
        if acl is None:
            findings.fail(resource_type="job-permission", resource_id=f"{jid}:?", resource_name=_job_name(job),
                          owner=creator, seen="permissions unknown (not in the collected ACLs)",
                          expected="CAN_MANAGE/IS_OWNER only for its creator, workspace admins and jobs.managers")
            continue
        _, run_as = run_as_of(m, job)
        for name, kind, levels in _acl_entries(acl):
            strong = [lv for lv in levels if lv in MANAGE_LEVELS or lv not in KNOWN_JOB_LEVELS]
            if not strong:
                continue
            if name == creator or _is_admin(m, name, kind) or _allowed_manager(m, name, kind, managers):
                continue
            if name == run_as:
                continue  # the job's own run-as identity: owning the job adds nothing to what it runs as
            findings.fail(resource_type="job-permission", resource_id=f"{jid}:{name}",
                          resource_name=f"{_job_name(job)}: {_label(m, name)}", owner=creator,
                          seen=f"{kind.replace('_', ' ')} {_label(m, name)} holds "
                               f"{', '.join(str(lv) for lv in strong)}",
                          expected="CAN_MANAGE/IS_OWNER only for its creator, workspace admins and jobs.managers",
                          principal=name, principal_type=kind, levels=[str(lv) for lv in strong])


# -- JOB-04 -----------------------------------------------------------------------------------------


def _ancestors(key: str) -> list[str]:
    """Securables whose grants and ownership cover this one: table -> schema, catalog; schema -> catalog."""
    kind, _, name = key.partition("/")
    parts = name.split(".")
    if kind == "table" and len(parts) >= 3:
        return [f"schema/{parts[0]}.{parts[1]}", f"catalog/{parts[0]}"]
    if kind == "schema" and len(parts) >= 2:
        return [f"catalog/{parts[0]}"]
    return []


class Privileges:
    """What a principal holds in Unity Catalog and in secret scopes, through all its groups."""

    def __init__(self, m: Membership, uc: dict, secrets: dict):
        self.m = m
        self.grants: dict[str, dict[str, set[str]]] = {}  # principal -> securable -> privileges
        for key, assignments in (uc.get("grants") or {}).items():
            for a in assignments or []:
                privs = {str(p) for p in a.get("privileges") or [] if p is not None}
                self.grants.setdefault(a.get("principal"), {}).setdefault(key, set()).update(privs)
        self.owned: dict[str, set[str]] = {}  # principal -> securables owned
        for kind, items, field in (("catalog", uc.get("catalogs"), "name"), ("schema", uc.get("schemas"), "full_name"),
                                   ("table", uc.get("tables"), "full_name"),
                                   ("external_location", uc.get("external_locations"), "name"),
                                   ("storage_credential", uc.get("storage_credentials"), "name")):
            for it in items or []:
                if it.get("owner") and it.get(field):
                    self.owned.setdefault(it["owner"], set()).add(f"{kind}/{it[field]}")
        self.metastore_owner = (uc.get("metastore") or {}).get("owner")
        self.scopes: dict[str, dict[str, int]] = {}  # principal -> scope -> rank
        for s in secrets.get("scopes") or []:
            for a in s.get("acls") or []:
                rank = SECRET_RANK.get(a.get("permission"), 3)  # unknown level: assume the strongest
                cur = self.scopes.setdefault(a.get("principal"), {})
                cur[s.get("name")] = max(cur.get(s.get("name"), 0), rank)

    def _holders(self, name: str) -> set[str]:
        return {name, *self.m.groups_of(name), *EVERYONE}

    def summary(self, name: str) -> dict:
        holders = self._holders(name)
        grants: dict[str, set[str]] = {}
        for h in holders:
            for key, privs in self.grants.get(h, {}).items():
                grants.setdefault(key, set()).update(privs)
        owned = set().union(*(self.owned.get(h, set()) for h in holders))
        scopes: dict[str, int] = {}
        for h in holders:
            for scope, rank in self.scopes.get(h, {}).items():
                scopes[scope] = max(scopes.get(scope, 0), rank)
        return {"grants": grants, "owned": owned, "metastore_admin": self.metastore_owner in holders,
                "scopes": scopes}

    @staticmethod
    def _covers(p: dict, key: str, priv: str) -> bool:
        if p["metastore_admin"]:
            return True
        for k in [key, *_ancestors(key)]:
            if k in p["owned"]:
                return True
            held = p["grants"].get(k, set())
            if priv in held or "MANAGE" in held or ("ALL_PRIVILEGES" in held and priv not in NOT_IN_ALL):
                return True
        return False

    def lacking(self, r: dict, p: dict) -> list[str]:
        """What R holds that P does not (empty: P already has everything R has)."""
        out = []
        if r["metastore_admin"] and not p["metastore_admin"]:
            out.append("metastore admin")
        for key in sorted(r["owned"]):
            if not self._covers(p, key, "OWNER"):
                out.append(f"owner of {key.replace('/', ' ', 1)}")
        for key in sorted(r["grants"]):
            for priv in sorted(r["grants"][key]):
                if not self._covers(p, key, priv):
                    out.append(f"{priv} on {key.replace('/', ' ', 1)}")
        for scope, rank in sorted(r["scopes"].items()):
            if p["scopes"].get(scope, 0) < rank:
                level = next(k for k, v in SECRET_RANK.items() if v == rank)
                out.append(f"{level} on secret scope {scope}")
        return out


def _owners(acl: dict | None, creator: str | None) -> set[str]:
    """The creator and the IS_OWNER holders of a job or pipeline."""
    return {creator} - {None} | {name for name, _kind, levels in _acl_entries(acl) if "IS_OWNER" in levels}


def _editors(acl: dict | None, levels_wanted, known) -> dict[str, tuple[str, list[str]]]:
    out = {}
    for name, kind, levels in _acl_entries(acl):
        strong = [str(lv) for lv in levels if lv in levels_wanted or lv not in known]
        if strong:
            out[name] = (kind, strong)
    return out


@pytest.mark.dbsec(
    id="JOB-04", title="No run-as escalation", severity="critical", scope="workspace",
    sections=["jobs", "acls_jobs", "acls_pipelines", "job_code", "identities", "uc", "secrets"],
    refs={"seeds": ["escalation"]},
    rationale="A job runs as its run_as identity whoever changes it: a principal that can edit the job or the "
              "code it runs executes its own code with that identity's rights -- an admin's, or a service "
              "principal's grants and secrets.",
    remediation="Remove the edit path: lower the principal's job permission to CAN_MANAGE_RUN/CAN_VIEW "
                "(PUT /api/2.0/permissions/jobs/{job_id}) and its notebook permission to CAN_RUN/CAN_READ "
                "(PUT /api/2.0/permissions/notebooks/{object_id}), move the code to a folder only the job's owners "
                "can edit, or run the job as an identity with no more rights than its editors.",
)
def test_JOB_04_no_run_as_escalation(workspace, findings):
    m = _membership(workspace)
    privileges = Privileges(m, workspace.data("uc"), workspace.data("secrets"))
    acl_sections = ("acls_jobs", "acls_pipelines")
    acls = {k: v for name in acl_sections for k, v in (workspace.data(name).get("acls") or {}).items()}
    vanished = {k for name in acl_sections for k in workspace.data(name).get("vanished") or []}
    code = workspace.data("job_code")
    repo_acl = {r.get("path"): r.get("acl") for r in code.get("repos") or []}
    summaries: dict[str, dict] = {}

    def summary(name):
        if name not in summaries:
            summaries[name] = privileges.summary(name)
        return summaries[name]

    def code_editors(ref_key, ref_id) -> dict[str, list[str]]:
        """principal -> ["CAN_EDIT on notebook /x (task t)", ...] for the code a job/pipeline runs."""
        out: dict[str, list[str]] = {}
        for c in code.get("code") or []:
            uses = [u for u in c.get("used_by") or [] if u.get(ref_key) == ref_id]
            if not uses:
                continue
            task = ", ".join(sorted({str(u["task_key"]) for u in uses if u.get("task_key")}))
            what = f"{(c.get('object') or {}).get('object_type', 'code').lower()} {c.get('path')}" + \
                (f" (task {task})" if task else "")
            for name, (kind, levels) in _editors(c.get("acl"), EDIT_LEVELS, KNOWN_CODE_LEVELS).items():
                out.setdefault(name, []).append(f"{'/'.join(levels)} on {what}")
            if c.get("repo"):
                for name, (kind, levels) in _editors(repo_acl.get(c["repo"]), EDIT_LEVELS, KNOWN_CODE_LEVELS).items():
                    out.setdefault(name, []).append(f"{'/'.join(levels)} on repo {c['repo']} holding {c.get('path')}")
        return out

    def judge(resource_type, rid, rname, owner, run_kind, run_as, paths: dict[str, list[str]], delegated: set[str],
              acl_known: bool):
        if not run_as:
            return  # JOB-01/JOB-02 report an unknown run_as
        if not acl_known:
            findings.fail(resource_type=resource_type, resource_id=f"{rid}:?", resource_name=rname, owner=owner,
                          seen=f"permissions unknown (not in the collected ACLs); it runs as {_label(m, run_as)}",
                          expected="only the run-as identity itself and workspace admins can change what runs as it")
        r_admin = _is_admin(m, run_as, run_kind)
        for name in sorted(paths):
            kind = _kind(m, name)
            if name == run_as or _is_admin(m, name, kind):
                continue
            if r_admin:
                why = "a workspace admin"
                tier = "admin"
            elif name in delegated:
                continue  # its creator/owner set this run_as (which needs the servicePrincipal.user role)
            else:
                lacks = privileges.lacking(summary(run_as), summary(name))
                if not lacks:
                    continue
                shown = "; ".join(lacks[:3]) + (f"; and {len(lacks) - 3} more" if len(lacks) > 3 else "")
                why = f"holding what {_label(m, name)} lacks: {shown}"
                tier = "privileges"
            findings.fail(resource_type=resource_type, resource_id=f"{rid}:{name}",
                          resource_name=f"{rname}: {_label(m, name)}", owner=owner,
                          seen=f"{kind.replace('_', ' ')} {_label(m, name)} can change what runs "
                               f"({'; '.join(paths[name])}); it runs as {_label(m, run_as)}, {why}",
                          expected="only the run-as identity itself and workspace admins can change what runs as it",
                          principal=name, run_as=run_as, escalation=tier, paths=paths[name])

    for job in workspace.data("jobs").get("jobs") or []:
        jid = job.get("job_id")
        run_kind, run_as = run_as_of(m, job)
        paths: dict[str, list[str]] = {}
        for name, (kind, levels) in _editors(acls.get(f"jobs/{jid}"), MANAGE_LEVELS, KNOWN_JOB_LEVELS).items():
            paths.setdefault(name, []).append(f"{'/'.join(levels)} on the job")
        for name, why in code_editors("job_id", jid).items():
            paths.setdefault(name, []).extend(why)
        judge("job", jid, _job_name(job), job.get("creator_user_name"), run_kind, run_as, paths,
              _owners(acls.get(f"jobs/{jid}"), job.get("creator_user_name")),
              f"jobs/{jid}" in acls or f"jobs/{jid}" in vanished)

    for p in workspace.data("jobs").get("pipelines") or []:
        pid = p.get("pipeline_id")
        run_kind, run_as = run_as_of(m, p, settings_key=None)
        paths = {}
        known = ("CAN_VIEW", "CAN_RUN", "CAN_MANAGE", "IS_OWNER")
        for name, (kind, levels) in _editors(acls.get(f"pipelines/{pid}"), MANAGE_LEVELS, known).items():
            paths.setdefault(name, []).append(f"{'/'.join(levels)} on the pipeline")
        for name, why in code_editors("pipeline_id", pid).items():
            paths.setdefault(name, []).extend(why)
        judge("pipeline", pid, p.get("name") or pid, p.get("creator_user_name"), run_kind, run_as, paths,
              _owners(acls.get(f"pipelines/{pid}"), p.get("creator_user_name")),
              f"pipelines/{pid}" in acls or f"pipelines/{pid}" in vanished)
