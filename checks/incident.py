"""INC: post-incident verification of one principal (only with ``--dbsec-principal``).

"A credential leaked and we contained it -- prove nothing is left." Each control asks the access
graph (pytest_dbsec/graph/access.py) for one kind of access the principal still has, across the
account and every audited workspace, and fails listing each remaining path with its chain
(``principal → group → ... → grantee``). All seven pass only when the identity is fully contained.

The controls are account-scoped (run once): the graph spans every workspace, which a workspace
control could not see. The workspace data is read by the ``access_graph`` fixture.

Semantic decisions (the report of issue 5 repeats them):
* An answer resting on a section that could not be read is an ERROR, never a pass: each control
  names the sections its answer depends on (``NEEDS``), so a denied secrets read errors INC-07 but
  still lets INC-04 judge the tokens.
* ``account users`` holds every user and service principal while the identity exists; a grant to it
  cannot be taken away from one principal. Such paths count as remaining access while the identity
  is active and are neutralised by deactivating it (INC-06 demands that anyway).
* UC grants are reported once, where they are granted (catalog/schema/table), with the number of
  children they reach by inheritance: one finding per REVOKE, not one per table.
* A token counts until it expires (judged at the time the data was read); an OAuth secret counts
  unless its status says otherwise or it has expired. Unknown status or expiry counts (fail closed).
* INC-03 covers the object types the ``acls_*`` sections (one per Permissions API type) and
  ``authorization_acls`` read, and every folder,
  notebook, file and repo of the workspace tree (``workspace_acls``, entries inherited from folders
  included). That tree is read up to a cap; a tree over the cap or a folder that could not be listed
  makes INC-03 ERROR (the remaining access cannot be proven absent), never pass.

* A workspace of the account this run has no data for -- in the run but unread (status not RUNNING,
  the credential refused, no answer), or left out by ``--dbsec-workspaces`` -- keeps every INC
  control at ERROR, naming each such workspace with its account status: a FAILED or BANNED workspace
  can come back with its tokens and ACLs, so it is never guessed harmless. The responder can accept
  exactly that gap with a baseline waiver naming the control and ``resource: workspace/<name>``
  (exactly, no glob), with a justification, an approver and an expiry. While it is valid the control
  is judged on the workspaces that were read and the gap is recorded as a waived finding, visible in
  every report; expired, it protects nothing. A section that failed in a workspace that was read is
  not such a gap: it stays ERROR.

``remaining()`` and ``containment_plan()`` are shared with the plugin, which prints the plan.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pytest_dbsec.findings import Disposition, day
from pytest_dbsec.graph import ACCOUNT_USERS, GROUP, SERVICE_PRINCIPAL
from pytest_dbsec.graph.access import ACCOUNT_SECTIONS
from pytest_dbsec.inventory import ACCOUNT, ACL_SECTIONS, OK, SectionUnavailable, parse_iso

# What each control's answer depends on: a gap in any of these makes it ERROR. The plugin's
# access_graph fixture reads the union of the NEEDS of the INC controls selected, nothing more (the
# graph treats a section not read as a gap, which errors only the controls that need it).
# account_workspaces is in every one: without the account's list of workspaces nobody can tell
# whether every workspace is in the run.
NEEDS = {
    "INC-01": {"account_identities", "account_workspaces", "identities"},
    "INC-02": {"account_identities", "account_workspaces", "identities", "uc"},
    "INC-03": {"account_identities", "account_workspaces", "identities", *ACL_SECTIONS, "authorization_acls",
               "compute", "jobs", "workspace_objects", "workspace_acls"},
    "INC-04": {"account_identities", "account_workspaces", "tokens", "sp_secrets"},
    "INC-05": {"account_identities", "account_workspaces", "jobs"},
    "INC-06": {"account_identities", "account_workspaces", "identities"},
    "INC-07": {"account_identities", "account_workspaces", "identities", "secrets"},
}
# how a baseline waiver names a workspace this run could not read (see workspace_gaps)
GAP_RESOURCE = "workspace/{}"

CONTAINED = "nothing: the identity is contained"


def chain(via) -> str:
    return " → ".join(via)


def read_at(inventory) -> dt.datetime:
    """When the data was read (the earliest section): expiry is judged against it, so a replay agrees."""
    times = [s.collected_at for sc in inventory.scopes() for s in sc.sections.values() if s.collected_at]
    return parse_iso(min(times)) if times else dt.datetime.now(dt.timezone.utc)


class WorkspacesUnread(SectionUnavailable):
    """Workspaces of the account that this run has no data for and no valid waiver accepts: the
    control ERRORs, naming each with its account status and the waiver that would accept it."""

    def __init__(self, control_id: str, gaps: list[dict], sections: list[str]):
        self.gaps = gaps
        parts = []
        for g in gaps:
            text = f"workspace {g['workspace']} (status {g['status'] or 'unknown'}) "
            text += "is not part of this run" if not g["in_run"] else f"could not be read: {g['reason']}"
            if g.get("expired") is not None:
                w = g["expired"]
                text += f"; its waiver ({w.source}) expired on {w.expires.isoformat()}"
            parts.append(text)
        example = gaps[0]["workspace"]
        why = "" if all(g["status"] == "RUNNING" for g in gaps) else \
            " (a workspace that is not RUNNING can come back with its tokens and ACLs)"
        reason = (f"containment cannot be proven without every workspace of the account{why}: " + "; ".join(parts)
                  + ". Audit it, or accept exactly this gap with a baseline waiver per workspace: "
                  f"{{control: {control_id}, resource: {GAP_RESOURCE.format(example)!r}, justification: ..., "
                  "approver: ..., expires: YYYY-MM-DD}")
        super().__init__(gaps[0]["workspace"], ", ".join(sections), reason)

    def __str__(self) -> str:
        return self.reason


def check_complete(graph, inventory, control_id: str, baseline=None, today: dt.date | None = None) -> list[dict]:
    """Raise SectionUnavailable (-> ERROR) if the answer of this control rests on data not read.

    Returns the workspace gaps a valid baseline waiver accepts (each with its ``waiver``): the control
    is then judged on the workspaces that were read, and records each gap as a waived finding."""
    needs = NEEDS[control_id]
    gaps = workspace_gaps(inventory)
    unread = {g["workspace"] for g in gaps if g["in_run"]}
    for scope in inventory.scopes():
        if scope.kind == "workspace" and scope.name in unread:
            continue  # one gap for the whole workspace, below
        for name in sorted(needs):
            if (scope.kind == "account") != (name in ACCOUNT_SECTIONS):
                continue
            sec = scope.section(name)
            if sec.status != OK:
                raise SectionUnavailable(scope.name, name, sec.error if sec.status == "error" else "not collected")
    # a workspace of the account that this run did not read may hold tokens, ACLs, admins members:
    # "contained" cannot be said without it, unless a waiver accepts exactly that workspace
    ws_needs = sorted(needs - set(ACCOUNT_SECTIONS))
    accepted = []
    if ws_needs and gaps:
        today = today or read_at(inventory).date()
        not_accepted = []
        for g in gaps:
            active, expired = (baseline.gap_waiver_for(control_id, GAP_RESOURCE.format(g["workspace"]), today)
                               if baseline is not None else (None, None))
            if active is not None:
                accepted.append({**g, "waiver": active})
            else:
                not_accepted.append({**g, "expired": expired})
        if not_accepted:
            raise WorkspacesUnread(control_id, not_accepted, ws_needs)
    for gap in graph.gaps:  # what the graph itself could not build (no account scope, no assignments)
        if any(gap.startswith(f"{ws}/") for ws in unread):
            continue  # an unread workspace: a gap of its own, accepted above
        where = gap.split(": ", 1)[0]
        section = where.split("/", 1)[1] if "/" in where else None
        if section is None or section in needs or (section == "workspace assignments" and control_id == "INC-01"):
            raise SectionUnavailable(where.split("/", 1)[0], section or "account", gap)
    return accepted


def _listed_workspaces(inventory) -> list[dict]:
    if inventory.account is None or inventory.account.section("account_workspaces").status != OK:
        return []
    return list((inventory.account.section("account_workspaces").data or {}).get("workspaces") or [])


def unaudited_workspaces(inventory) -> list[str]:
    """Workspaces the account lists that this run did not read (matched by id, else by name)."""
    ids = {str(sc.id) for sc in inventory.workspaces.values() if sc.id is not None}
    return [w.get("workspace_name") for w in _listed_workspaces(inventory)
            if w.get("workspace_name") and str(w.get("workspace_id")) not in ids
            and w.get("workspace_name") not in inventory.workspaces]


def workspace_gaps(inventory) -> list[dict]:
    """The workspaces of the account this run has no data for: {workspace, status (the account's
    workspace_status, None if unknown), reason, in_run}. In the run but unread (``Scope.unread``), or
    listed by the account and left out of the run (``--dbsec-workspaces``)."""
    listed = _listed_workspaces(inventory)
    by_id = {str(w.get("workspace_id")): w for w in listed}
    by_name = {w.get("workspace_name"): w for w in listed}
    out = []
    for scope in inventory.workspaces.values():
        if scope.unread:
            w = by_id.get(str(scope.id)) or by_name.get(scope.name) or {}
            out.append({"workspace": scope.name, "status": w.get("workspace_status"), "reason": scope.unread,
                        "in_run": True})
    for name in unaudited_workspaces(inventory):
        out.append({"workspace": name, "status": by_name.get(name, {}).get("workspace_status"),
                    "reason": "not part of this run", "in_run": False})
    return out


def record_gap(findings, gap: dict) -> None:
    """A workspace gap a waiver accepts: a finding carrying that waiver, so that every report shows it."""
    w = gap["waiver"]
    f = findings.fail(resource_type="workspace", resource_id=GAP_RESOURCE.format(gap["workspace"]),
                      resource_name=gap["workspace"],
                      seen=f"workspace not read (status {gap['status'] or 'unknown'}): {gap['reason']}",
                      expected="every workspace of the account read, to prove containment",
                      gap="workspace not read", workspace=gap["workspace"], workspace_status=gap["status"],
                      in_run=gap["in_run"])
    f.disposition = Disposition("waived", w.justification, w.approver, w.expires.isoformat(), w.source)


def _counts(active: bool, via) -> bool:
    # a path through `account users` is closed only by deactivating (or deleting) the identity
    return active or ACCOUNT_USERS not in via


def _live_secret(s: dict, now: dt.datetime) -> bool:
    if str(s.get("status") or "").upper() not in ("", "ACTIVE"):
        return False
    try:
        return not s.get("expire_time") or parse_iso(str(s["expire_time"])) > now
    except ValueError:
        return True  # an expiry we cannot read must not pass


def remaining(graph, principal: str, now: dt.datetime) -> dict:
    """What the principal can still reach, per INC control. Raises UnknownPrincipal."""
    br = graph.blast_radius(principal)
    p = br["principal"]
    active = p["active"] or p["kind"] == GROUP  # a group has no active flag
    now_ms = now.timestamp() * 1000

    uc = []
    for r in br["uc_grants"]:
        if r["inherited_from"] is not None or not _counts(active, r["via"]):
            continue
        uc.append({**r, "inherited_by": r.get("inherited_by", 0)})  # the graph counts the children

    creds = []
    for c in br["credentials"]:
        if c["type"] == "pat":
            if c["never_expires"] or c["expiry"] is None or c["expiry"] > now_ms:
                creds.append(c)
        elif _live_secret(c, now):
            creds.append(c)

    groups = [m for m in br["group_memberships"] if m["group"] != ACCOUNT_USERS]
    return {
        "principal": p,
        "INC-01": [r for r in br["workspace_roles"] if _counts(active, r["via"])],
        "INC-02": uc,
        "INC-03": [r for r in br["workspace_object_permissions"] if _counts(active, r["via"])],
        "INC-04": creds,
        "INC-05": list(br["run_as"]),
        "INC-06": groups,
        "INC-07": [r for r in br["secret_scopes"] if _counts(active, r["via"])],
        "active": p["kind"] != GROUP and p["active"],
    }


def _who(p: dict) -> str:
    return f"{p['name']} ({p['display_name']})" if p["display_name"] and p["display_name"] != p["name"] else p["name"]


def _judge(access_graph, dbsec_inventory, dbsec_principal, control_id: str, baseline=None, findings=None) -> dict:
    now = read_at(dbsec_inventory)
    accepted = check_complete(access_graph, dbsec_inventory, control_id, baseline, now.date())
    left = remaining(access_graph, dbsec_principal, now)
    for gap in accepted:
        record_gap(findings, gap)
    return left


_REFS = {"seeds": ["incident response"], "NIST": ["IR-4", "AC-2"]}
_REMEDIATION = ("Run with --dbsec-containment-plan for the ordered steps (printed, never executed); apply them and "
                "re-run until INC-01..INC-07 pass.")


@pytest.mark.dbsec(
    id="INC-01", title="No workspace access left", severity="critical", scope="account",
    sections=["account_identities", "account_workspaces"], refs=_REFS,
    rationale="A compromised identity that can still reach a workspace, directly or through any group chain, "
              "can still act there.",
    remediation="Remove its workspace assignments and the group memberships that carry one. " + _REMEDIATION,
)
def test_INC_01_no_workspace_access_left(access_graph, dbsec_inventory, dbsec_principal, baseline, findings):
    left = _judge(access_graph, dbsec_inventory, dbsec_principal, "INC-01", baseline, findings)
    for r in left["INC-01"]:
        findings.fail(resource_type="workspace", resource_id=f"{r['workspace_name']}:{r['permission_level']}:{r['via'][-1]}",
                      resource_name=r["workspace_name"], owner=_who(left["principal"]),
                      seen=f"{r['permission_level']} via {chain(r['via'])} ({r['source']})",
                      expected="no workspace access", via=r["via"], workspace_id=r["workspace_id"])


@pytest.mark.dbsec(
    id="INC-02", title="No data access left", severity="critical", scope="account",
    sections=["account_identities"], refs=_REFS,
    rationale="Any Unity Catalog privilege or ownership left to the identity -- direct, inherited or through a "
              "group -- is data it can still read, change or grant.",
    remediation="REVOKE direct grants, transfer ownership (ALTER ... OWNER TO), remove the memberships that carry "
                "group grants. " + _REMEDIATION,
)
def test_INC_02_no_data_access_left(access_graph, dbsec_inventory, dbsec_principal, baseline, findings):
    left = _judge(access_graph, dbsec_inventory, dbsec_principal, "INC-02", baseline, findings)
    for r in left["INC-02"]:
        what = "owner" if r["ownership"] else r["privilege"]
        inherited = f"; inherited by {r['inherited_by']} children" if r["inherited_by"] else ""
        findings.fail(resource_type=r["securable_type"].lower(),
                      resource_id=f"{r['full_name']}:{r['privilege']}:{r['via'][-1]}",
                      resource_name=r["full_name"], owner=_who(left["principal"]),
                      seen=f"{what} via {chain(r['via'])}{inherited}", expected="no privilege, no ownership",
                      via=r["via"], privilege=r["privilege"], ownership=r["ownership"],
                      inherited_by=r["inherited_by"], **({"note": r["note"]} if r.get("note") else {}))


@pytest.mark.dbsec(
    id="INC-03", title="No object permissions left", severity="critical", scope="account",
    sections=["account_identities"], refs=_REFS,
    rationale="An ACL on a job, cluster, pipeline, warehouse, dashboard, serving endpoint, repo, folder, notebook or "
              "file lets the identity run, read or change it (and act as the run_as identity of a job whose code it "
              "can edit).",
    remediation="Remove its entries from the object ACLs (Permissions API) and transfer ownership. " + _REMEDIATION,
)
def test_INC_03_no_object_permissions_left(access_graph, dbsec_inventory, dbsec_principal, baseline, findings):
    left = _judge(access_graph, dbsec_inventory, dbsec_principal, "INC-03", baseline, findings)
    for r in left["INC-03"]:
        inherited = ""
        if r["inherited"]:
            inherited = f" (inherited from {', '.join(r['inherited_from_object'] or ['a parent'])})"
        findings.fail(resource_type=r["object_type"],
                      resource_id=f"{r['workspace_name']}/{r['object_type']}/{r['object_id']}:"
                                  f"{r['permission_level']}:{r['via'][-1]}",
                      resource_name=r["object_name"] or r["object_id"], owner=_who(left["principal"]),
                      seen=f"{r['permission_level']}{inherited} via {chain(r['via'])}",
                      expected="no permission on the object", via=r["via"], workspace=r["workspace_name"])


@pytest.mark.dbsec(
    id="INC-04", title="No credentials left", severity="critical", scope="account",
    sections=["account_identities", "sp_secrets"], refs=_REFS,
    rationale="An unexpired personal access token or an active OAuth secret keeps working after the password is "
              "changed or the session revoked.",
    remediation="Revoke each token (token-management DELETE) and delete each OAuth secret. " + _REMEDIATION,
)
def test_INC_04_no_credentials_left(access_graph, dbsec_inventory, dbsec_principal, baseline, findings):
    left = _judge(access_graph, dbsec_inventory, dbsec_principal, "INC-04", baseline, findings)
    for c in left["INC-04"]:
        if c["type"] == "pat":
            expiry = "never expires" if c["never_expires"] else (
                f"expires {day(c['expiry'])}"
                if c["expiry"] else "expiry unknown")
            findings.fail(resource_type="token", resource_id=f"{c['workspace_name']}/{c['token_id']}",
                          resource_name=c["comment"] or c["token_id"], owner=_who(left["principal"]),
                          seen=f"personal access token in {c['workspace_name']}, {expiry}",
                          expected="no live token", workspace=c["workspace_name"])
        else:
            findings.fail(resource_type="oauth_secret", resource_id=str(c["id"]), owner=_who(left["principal"]),
                          seen=f"OAuth secret, status {c['status']}, expires {c['expire_time'] or 'unknown'}",
                          expected="no active OAuth secret")


@pytest.mark.dbsec(
    id="INC-05", title="Not a run-as identity", severity="critical", scope="account",
    sections=["account_identities"], refs=_REFS,
    rationale="A job or pipeline that runs as the identity keeps executing with its rights, whoever triggers it.",
    remediation="Change run_as to another identity, or pause the job / stop the pipeline. " + _REMEDIATION,
)
def test_INC_05_not_a_run_as_identity(access_graph, dbsec_inventory, dbsec_principal, baseline, findings):
    left = _judge(access_graph, dbsec_inventory, dbsec_principal, "INC-05", baseline, findings)
    for r in left["INC-05"]:
        findings.fail(resource_type=r["kind"], resource_id=f"{r['workspace_name']}/{r['kind']}/{r['id']}",
                      resource_name=r["name"] or r["id"], owner=_who(left["principal"]),
                      seen=f"runs as {r['run_as']} ({r['source']}) in {r['workspace_name']}",
                      expected="runs as another identity", workspace=r["workspace_name"])


@pytest.mark.dbsec(
    id="INC-06", title="No group memberships, deactivated", severity="high", scope="account",
    sections=["account_identities"], refs=_REFS,
    rationale="Group memberships carry access back the moment the identity is re-enabled, and an active identity "
              "can still sign in or be issued credentials.",
    remediation="Remove it from every group (SCIM PATCH per group) and deactivate it (SCIM active=false). "
                + _REMEDIATION,
)
def test_INC_06_no_group_memberships_deactivated(access_graph, dbsec_inventory, dbsec_principal, baseline, findings):
    left = _judge(access_graph, dbsec_inventory, dbsec_principal, "INC-06", baseline, findings)
    p = left["principal"]
    if left["active"]:
        findings.fail(resource_type=p["kind"], resource_id=p["name"], resource_name=p["display_name"] or p["name"],
                      seen="active", expected="deactivated (active: false)")
    for m in left["INC-06"]:
        where = m["workspace_name"] or ACCOUNT
        findings.fail(resource_type="group", resource_id=f"{where}/{m['group']}", resource_name=m["group"],
                      owner=_who(p), seen=f"member via {chain(m['chain'])}"
                      + (f" (workspace-local group of {m['workspace_name']})" if m["workspace_name"] else ""),
                      expected="no membership", via=m["chain"])


@pytest.mark.dbsec(
    id="INC-07", title="No secret access left", severity="critical", scope="account",
    sections=["account_identities"], refs=_REFS,
    rationale="A secret scope ACL lets the identity read (or poison) the credentials stored there.",
    remediation="Delete its secret ACLs (secrets delete-acl) and remove the memberships that carry group ACLs; "
                "rotate the secrets it could read. " + _REMEDIATION,
)
def test_INC_07_no_secret_access_left(access_graph, dbsec_inventory, dbsec_principal, baseline, findings):
    left = _judge(access_graph, dbsec_inventory, dbsec_principal, "INC-07", baseline, findings)
    for r in left["INC-07"]:
        findings.fail(resource_type="secret_scope",
                      resource_id=f"{r['workspace_name']}/{r['scope']}:{r['permission']}:{r['via'][-1]}",
                      resource_name=r["scope"], owner=_who(left["principal"]),
                      seen=f"{r['permission']} via {chain(r['via'])}", expected="no secret scope ACL",
                      via=r["via"], workspace=r["workspace_name"])


# -- the containment plan ----------------------------------------------------------------------------

_PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _sql_name(name: str) -> str:
    return ".".join(f"`{part}`" for part in name.split("."))


def _local_group_id(graph, ws_name: str, group: str) -> str:
    ws = graph.workspaces.get(ws_name)
    for g in ((ws.sections.get("identities") or {}).get("groups") or []) if ws else []:
        if g.get("displayName") == group:
            return str(g["id"])
    return f"<id of group {group}>"


def containment_plan(graph, principal: str, now: dt.datetime, account_id: str | None = None) -> dict:
    """The ordered steps that remove what remains: {principal, steps: [{target, action, request}], notes}.
    Text only: nothing is ever sent (the tool never changes a workspace)."""
    left = remaining(graph, principal, now)
    p = left["principal"]
    acct = account_id or "<account_id>"
    name = p["name"]
    scim_kind = "ServicePrincipals" if p["kind"] == SERVICE_PRINCIPAL else "Users"
    steps: list[dict] = []
    notes: list[str] = []

    def step(target, action, request):
        steps.append({"target": target, "action": action, "request": request})

    def remove_member(body_id):
        return json.dumps({"schemas": [_PATCH_OP], "Operations": [
            {"op": "remove", "path": f'members[value eq "{body_id}"]'}]})

    # 1. stop the identity first: nothing new can be issued or used while the rest is cleaned up
    if left["active"]:
        step(ACCOUNT, f"deactivate {_who(p)}",
             f"PATCH /api/2.0/accounts/{acct}/scim/v2/{scim_kind}/{p['id']} "
             + json.dumps({"schemas": [_PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": False}]}))
    # 2-3. credentials
    for c in left["INC-04"]:
        if c["type"] == "pat":
            step(c["workspace_name"], f"revoke token {c['token_id']} ({c['comment'] or 'no comment'})",
                 f"DELETE /api/2.0/token-management/tokens/{c['token_id']}")
    for c in left["INC-04"]:
        if c["type"] == "oauth_secret":
            step(ACCOUNT, f"delete OAuth secret {c['id']}",
                 f"DELETE /api/2.0/accounts/{acct}/servicePrincipals/{p['id']}/credentials/secrets/{c['id']}")
    # 4. direct memberships (the transitive ones go with them)
    for m in left["INC-06"]:
        if len(m["chain"]) != 2:
            continue
        group = m["group"]
        if m["workspace_name"] is None:
            gid = graph.principals[group].id if group in graph.principals else f"<id of group {group}>"
            step(ACCOUNT, f"remove from group {group}",
                 f"PATCH /api/2.0/accounts/{acct}/scim/v2/Groups/{gid} {remove_member(p['id'])}")
        elif group == "users":
            continue  # follows from workspace access: closed by step 5
        else:
            step(m["workspace_name"], f"remove from workspace group {group}",
                 f"PATCH /api/2.0/preview/scim/v2/Groups/{_local_group_id(graph, m['workspace_name'], group)} "
                 f"{remove_member(p['id'])}")
    # 5. direct workspace assignments
    for r in left["INC-01"]:
        if len(r["via"]) == 1:
            step(ACCOUNT, f"remove the {r['permission_level']} assignment to workspace {r['workspace_name']}",
                 f"DELETE /api/2.0/accounts/{acct}/workspaces/{r['workspace_id']}/permissionassignments/"
                 f"principals/{p['id']}")
        elif r["via"][1] == "users":
            step(r["workspace_name"], f"remove from workspace {r['workspace_name']} (workspace users group)",
                 f"PATCH /api/2.0/preview/scim/v2/Groups/{_local_group_id(graph, r['workspace_name'], 'users')} "
                 f"{remove_member(p['id'])}")
    # 6-7. Unity Catalog: REVOKE direct grants, hand over ownership
    for r in left["INC-02"]:
        if len(r["via"]) != 1 or r["ownership"]:
            continue
        step(_uc_target(graph, r), f"revoke {r['privilege']} on {r['securable_type'].lower()} {r['full_name']}",
             f"REVOKE {r['privilege'].replace('_', ' ')} ON {r['securable_type'].replace('_', ' ')} "
             f"{_sql_name(r['full_name'])} FROM `{name}`")
    for r in left["INC-02"]:
        if len(r["via"]) == 1 and r["ownership"]:
            if r["securable_type"] == "METASTORE":
                step(ACCOUNT, f"transfer metastore admin of {r['full_name']}",
                     f"PUT /api/2.0/accounts/{acct}/metastores/{r['full_name']} "
                     + json.dumps({"metastore_info": {"owner": "<new owner>"}}))
            else:
                step(_uc_target(graph, r), f"transfer ownership of {r['securable_type'].lower()} {r['full_name']}",
                     f"ALTER {r['securable_type'].replace('_', ' ')} {_sql_name(r['full_name'])} OWNER TO `<new owner>`")
    # 8. object ACLs (the Permissions API has no per-entry delete: PUT replaces the whole list)
    for r in left["INC-03"]:
        if len(r["via"]) != 1:
            continue
        path = f"/api/2.0/permissions/{r['object_type']}/{r['object_id']}"
        if r["inherited"]:
            step(r["workspace_name"], f"{r['permission_level']} on {r['object_type']} {r['object_name'] or r['object_id']} "
                 f"is inherited from {', '.join(r['inherited_from_object'] or ['a parent'])}",
                 "remove the entry on that parent object (PUT /api/2.0/permissions/<parent> without it)")
        elif r["permission_level"] == "IS_OWNER":
            step(r["workspace_name"], f"transfer ownership of {r['object_type']} {r['object_name'] or r['object_id']}",
                 f"PUT {path} with the current access_control_list, IS_OWNER given to <new owner> and {name} removed")
        else:
            step(r["workspace_name"], f"remove {r['permission_level']} on {r['object_type']} "
                 f"{r['object_name'] or r['object_id']}",
                 f"PUT {path} with the current access_control_list minus the entry for {name}")
    # 9. secret scope ACLs
    for r in left["INC-07"]:
        if len(r["via"]) == 1:
            step(r["workspace_name"], f"delete the {r['permission']} ACL on secret scope {r['scope']}",
                 "POST /api/2.0/secrets/acls/delete " + json.dumps({"scope": r["scope"], "principal": name}))
    # 10. jobs and pipelines running as it
    for r in left["INC-05"]:
        if r["kind"] == "job":
            step(r["workspace_name"], f"pause job {r['name'] or r['id']} and change its run_as",
                 "POST /api/2.1/jobs/update " + json.dumps({"job_id": int(r["id"]) if r["id"].isdigit() else r["id"],
                                                            "new_settings": {"run_as": {"user_name": "<other identity>"}}})
                 + "; pause it meanwhile: set pause_status PAUSED on its schedule/trigger (keep the cron)")
        else:
            step(r["workspace_name"], f"stop pipeline {r['name'] or r['id']} and change its run_as",
                 f"POST /api/2.0/pipelines/{r['id']}/stop; then PUT /api/2.0/pipelines/{r['id']} with "
                 "run_as set to <other identity>")
    # paths through groups and `account users`: said once, so nobody edits an ACL shared by the group
    via_groups = sorted({r["via"][1] for k in ("INC-01", "INC-02", "INC-03", "INC-07") for r in left[k]
                         if len(r["via"]) > 1 and r["via"][1] not in (ACCOUNT_USERS, "users")})
    for g in via_groups:
        notes.append(f"access through group {g} goes with the membership removed above; do not edit the "
                     "group's own grants or ACLs (they serve its other members)")
    if any(ACCOUNT_USERS in r["via"] for k in ("INC-01", "INC-02", "INC-03", "INC-07") for r in left[k]):
        notes.append("grants to `account users` reach every identity while it exists: closed by deactivating it")
    return {"principal": p, "steps": steps, "notes": notes}


def _uc_target(graph, r) -> str:
    ms = graph.securables.get((r["securable_type"], r["full_name"]), {}).get("metastore")
    return graph.metastores.get(ms, "-")  # a workspace of the metastore, where the SQL can run
