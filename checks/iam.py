"""IAM: identities, admins, break-glass accounts, just-in-time elevations.

Who is a workspace admin: every user and service principal that is a transitive member of the
workspace's ``admins`` group (workspace SCIM, ``identities``), plus every principal with an ``ADMIN``
permission assignment on the workspace at the account (``admin_assignments``), a group assignment
expanded to its members transitively. An account admin holds the ``account_admin`` role in account
SCIM, on itself or on a group it belongs to (transitively).

Principals are named as grants and ACLs name them: users by userName, service principals by
applicationId (a baseline may also name an SP by its display name), groups by display name.

The audit log (``system.access.audit``) is read only with ``--dbsec-warehouse-id`` (section
``audit_activity``). Without it IAM-06 and IAM-07 judge what the other data proves and say in their
findings that audit-log evidence was not evaluated; with it a failed query makes them ERROR.

Decisions where the catalog is silent:

* IAM-01: besides the ``admins`` group, users and SPs that are themselves workspace admins may hold
  password login; any other group (even one of admins only) fails, since it can gain members.
* IAM-02: the share is over active users plus groups (service principals are not provisioned from an
  IdP); the ``admins``/``users`` system groups are not counted, workspace-local groups are; deactivated
  users are IAM-10's. Excluded names leave both the numerator and the denominator.
* IAM-03/IAM-04: admins are users and service principals, deactivated ones included (they keep the
  right). IAM-04 also reports the groups that confer admin and are not approved; a principal is
  approved by its name, its display name, or any group it belongs to transitively. Account admins are
  judged in every workspace's result (the account is shared).
* IAM-05: a user is admin "without a group" through a direct ADMIN assignment or a direct membership of
  the workspace ``admins`` group; service principals are not this control's business.
* IAM-06: standing access = workspace admin, account admin, a UC grant or ownership, an object ACL
  entry (directly, or through a group other than ``users``/``admins``/``account users``), or an unexpired
  token. Inside a declared window the control is skipped (standing access is expected then). With the
  audit log: every event of the principal in the last ``AUDIT_ACTIVITY_DAYS`` (any workspace of the
  warehouse's region, account-level events included) that no declared window contains is a use outside a
  window; a login is a use. Events beyond the section's cap are not judged and the finding says so.
* IAM-07: privileged = workspace admins, owners of UC securables and MANAGE holders that are members
  of the workspace (users and SPs; groups are not accounts). Activity = the latest ``last_used_day`` of
  any token the principal owns, expired ones included, and with the audit log the principal's last event
  (users by userName, SPs by applicationId; any workspace of the region counts: the account is in use).
  No activity on record fails (conservative: it cannot be shown to be in use). Break-glass principals
  (IAM-06) and deactivated ones (IAM-10) are left out.
* IAM-08: an elevation's securable is the workspace (``ws1``, its id, ``workspace``) for ADMIN, an object
  ``<type>/<id>`` as the Permissions API names it for ACL levels (the same or a higher level counts), else
  a UC securable (``type/full.name`` or a bare full name) where a direct grant of the privilege, or of
  ALL_PRIVILEGES (except MANAGE/EXTERNAL_USE_*), on it or its schema or catalog counts. Grants through
  groups are not the elevation. No elevations declared: skipped.
* IAM-09: a secret counts unless its status says it is not usable (EXPIRED, REVOKED, ...) or it has
  expired; an unknown status counts; an unreadable time fails.
* IAM-10: group memberships are direct ones (transitive ones are named with them), ``users`` excepted;
  grants/ownership/ACL entries are the principal's own; tokens only while unexpired.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import pytest

from pytest_dbsec.findings import day
from pytest_dbsec.graph import ACCOUNT_USERS, GROUP, SERVICE_PRINCIPAL, USER, Membership, Principal
from pytest_dbsec.inventory import ACL_SECTIONS, SectionUnavailable

DAY_MS = 86_400_000
ADMINS, USERS = "admins", "users"  # the workspace-local system groups
ACCOUNT_ADMIN_ROLE = "account_admin"
NO_AUDIT_LOG = "audit-log evidence not evaluated: no SQL warehouse given (--dbsec-warehouse-id)"
KIND_LABEL = {USER: "user", SERVICE_PRINCIPAL: "service principal", GROUP: "group"}


# -- shared helpers ----------------------------------------------------------------------------------


def _membership(data: dict) -> Membership:
    return Membership(data.get("users") or [], data.get("groups") or [], data.get("service_principals") or [])



def _label(p: Principal) -> str:
    """How a finding names a principal: SPs by display name and applicationId."""
    if p.kind == SERVICE_PRINCIPAL and p.display_name and p.display_name != p.name:
        return f"{p.display_name} ({p.name})"
    return p.name


def _roles(entry: dict) -> set[str]:
    return {r.get("value") for r in entry.get("roles") or [] if isinstance(r, dict)}


def _acl_name(entry: dict) -> tuple[str | None, str | None]:
    """(kind, name) of a Permissions API ACL entry."""
    for key, kind in (("user_name", USER), ("service_principal_name", SERVICE_PRINCIPAL), ("group_name", GROUP)):
        if entry.get(key):
            return kind, entry[key]
    return None, None


def _assignment_name(principal: dict) -> tuple[str | None, str | None]:
    """(kind, name) of an account permission assignment's principal."""
    for key, kind in (("user_name", USER), ("service_principal_name", SERVICE_PRINCIPAL), ("group_name", GROUP)):
        if principal.get(key):
            return kind, principal[key]
    return None, None


@dataclass
class Admin:
    """A user or service principal with admin rights, and every route that gives them."""

    name: str
    kind: str
    display: str
    active: bool = True
    via: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.kind == SERVICE_PRINCIPAL and self.display and self.display != self.name:
            return f"{self.display} ({self.name})"
        return self.name


@dataclass
class WorkspaceAdmins:
    members: Membership
    admins: dict[str, Admin]  # users and service principals, by name
    groups: dict[str, list[str]]  # groups that confer admin (directly), by name -> how
    direct_users: dict[str, list[str]]  # users who are admin without a group: name -> how


def _workspace_admins(workspace) -> WorkspaceAdmins:
    """Transitive members of the workspace ``admins`` group, plus ADMIN assignments at the account."""
    ids = workspace.data("identities")
    m = _membership(ids)
    admins: dict[str, Admin] = {}
    groups: dict[str, list[str]] = {}
    direct: dict[str, list[str]] = {}

    def add(name: str, kind: str, display: str, how: str) -> None:
        p = m.get(name)
        a = admins.setdefault(name, Admin(name, p.kind if p else kind, p.display_name if p else display,
                                          p.active if p else True))
        if how not in a.via:
            a.via.append(how)

    admin_group = m.get(ADMINS)
    if admin_group is not None and admin_group.kind == GROUP:
        direct_members = _direct_members(ids, m, ADMINS)
        direct_groups = {g for g in direct_members if m.get(g) is not None and m.get(g).kind == GROUP}
        for g in sorted(direct_groups):
            groups.setdefault(g, []).append("member of the workspace admins group")
        for name in sorted(m.members_of(ADMINS)):
            p = m.get(name)
            if name in direct_members:
                add(name, p.kind, p.display_name, "direct member of the workspace admins group")
                if p.kind == USER:
                    direct.setdefault(name, []).append("direct member of the workspace admins group")
            for g in sorted(m.groups_of(name) & direct_groups):
                add(name, p.kind, p.display_name, f"member of {g}, a member of the workspace admins group")

    for pa in workspace.data("admin_assignments").get("permission_assignments") or []:
        if "ADMIN" not in (pa.get("permissions") or []):
            continue
        principal = pa.get("principal") or {}
        kind, name = _assignment_name(principal)
        if name is None:
            continue
        if kind == GROUP:
            groups.setdefault(name, []).append("ADMIN workspace assignment")
            for member in sorted(m.members_of(name)):
                p = m.get(member)
                add(member, p.kind, p.display_name, f"member of {name}, which has an ADMIN workspace assignment")
        else:
            add(name, kind, principal.get("display_name") or name, "direct ADMIN workspace assignment")
            if kind == USER:
                direct.setdefault(name, []).append("direct ADMIN workspace assignment")
    return WorkspaceAdmins(m, admins, groups, direct)


def _direct_members(ids: dict, m: Membership, group: str) -> set[str]:
    """Names of the direct members of ``group``: from its member list and the members' own groups[]."""
    by_id = _principals_by_id(m)
    gid = next((g.get("id") for g in ids.get("groups") or [] if g.get("displayName") == group), None)
    if gid is None:
        return set()
    out = set()
    for g in ids.get("groups") or []:
        if g.get("id") == gid:
            out |= {by_id[str(x.get("value"))].name for x in g.get("members") or [] if str(x.get("value")) in by_id}
    for entry in [*(ids.get("users") or []), *(ids.get("service_principals") or []), *(ids.get("groups") or [])]:
        if any(str(x.get("value")) == str(gid) for x in entry.get("groups") or []) and str(entry.get("id")) in by_id:
            out.add(by_id[str(entry["id"])].name)
    return out - {group}


def _direct_groups(ids: dict, m: Membership, name: str) -> set[str]:
    """Groups ``name`` is a direct member of: from the groups' member lists and its own groups[]."""
    me = m.get(name)
    if me is None:
        return set()
    by_id = _principals_by_id(m)
    out = set()
    for g in ids.get("groups") or []:
        if any(str(x.get("value")) == me.id for x in g.get("members") or []) and str(g.get("id")) in by_id:
            out.add(by_id[str(g["id"])].name)
    for entry in [*(ids.get("users") or []), *(ids.get("service_principals") or []), *(ids.get("groups") or [])]:
        if str(entry.get("id")) == me.id:
            out |= {by_id[str(x.get("value"))].name for x in entry.get("groups") or [] if str(x.get("value")) in by_id}
    return out - {name}


@dataclass
class AccountAdmin:
    name: str
    kind: str
    display: str
    groups: set[str]  # every account group it belongs to, transitively
    via: list[str]

    @property
    def label(self) -> str:
        if self.kind == SERVICE_PRINCIPAL and self.display and self.display != self.name:
            return f"{self.display} ({self.name})"
        return self.name


def _account_admins(workspace) -> tuple[Membership, dict[str, AccountAdmin]]:
    acct = workspace.data("admin_assignments").get("account_identities") or {}
    am = _membership(acct)
    out: dict[str, AccountAdmin] = {}

    def add(p: Principal, how: str) -> None:
        a = out.setdefault(p.name, AccountAdmin(p.name, p.kind, p.display_name, am.groups_of(p.name), []))
        a.via.append(how)

    for key, kind in (("users", USER), ("service_principals", SERVICE_PRINCIPAL)):
        for entry in acct.get(key) or []:
            if ACCOUNT_ADMIN_ROLE in _roles(entry):
                p = am.get(entry.get("userName") or entry.get("applicationId") or entry["id"])
                if p is not None:
                    add(p, "account_admin role")
    for entry in acct.get("groups") or []:
        if ACCOUNT_ADMIN_ROLE in _roles(entry):
            gname = entry.get("displayName") or entry["id"]
            for member in sorted(am.members_of(gname)):
                add(am.get(member), f"member of {gname}, which has the account_admin role")
    return am, out


def _approved(approved: set[str], name: str, display: str, groups: set[str]) -> str | None:
    """The approved_admins entry that covers a principal (its name, display name or a group), or None."""
    if name in approved:
        return name
    if display and display in approved:
        return display
    hit = sorted(groups & approved)
    return hit[0] if hit else None


def _principals_by_id(m: Membership) -> dict[str, Principal]:
    return {p.id: p for p in m.principals.values()}


def _token_owner(tok: dict, by_id: dict[str, Principal], m: Membership) -> Principal | None:
    if tok.get("owner_id") is not None:
        p = by_id.get(str(tok["owner_id"]))
        if p is not None:
            return p
    name = tok.get("created_by_username")
    return m.find(name) if name and tok.get("owner_id") is None else None


def _token_active(tok: dict, now: dt.datetime) -> bool:
    expiry = tok.get("expiry_time")
    return expiry is None or expiry <= 0 or expiry > now.timestamp() * 1000


def _tokens_by_owner(workspace, m: Membership) -> dict[str, list[dict]]:
    by_id = _principals_by_id(m)
    out: dict[str, list[dict]] = {}
    for tok in workspace.data("tokens").get("token_infos") or []:
        owner = _token_owner(tok, by_id, m)
        if owner is not None:
            key = owner.name
        else:  # an owner this workspace does not list: never attribute it to whoever created it
            key = f"id {tok['owner_id']}" if tok.get("owner_id") is not None else tok.get("created_by_username", "?")
        out.setdefault(key, []).append(tok)
    return out


def _uc_owned(uc: dict) -> list[tuple[str, str, str]]:
    """(securable type, full name, owner) of every UC securable with an owner."""
    out = []
    if uc.get("metastore") and uc["metastore"].get("owner"):
        ms = uc["metastore"]
        out.append(("metastore", ms.get("name") or ms.get("metastore_id", "?"), ms["owner"]))
    for key, typ, name_key in (("catalogs", "catalog", "name"), ("schemas", "schema", "full_name"),
                               ("tables", "table", "full_name"), ("external_locations", "external_location", "name"),
                               ("storage_credentials", "storage_credential", "name")):
        for obj in uc.get(key) or []:
            if obj.get("owner"):
                out.append((typ, obj.get(name_key) or obj.get("name", "?"), obj["owner"]))
    return out


def _uc_grants(uc: dict):
    """(securable key "type/name", principal, privileges) for every direct UC grant."""
    for key, assignments in (uc.get("grants") or {}).items():
        for a in assignments or []:
            yield key, a.get("principal"), [str(p) for p in a.get("privileges") or []]


def _acl_entries(workspace):
    """(object key "type/id", kind, name, [levels], inherited-only) for every object ACL entry."""
    acls = {k: v for name in ACL_SECTIONS for k, v in (workspace.data(name).get("acls") or {}).items()}
    for key, acl in acls.items():
        for entry in (acl or {}).get("access_control_list") or []:
            kind, name = _acl_name(entry)
            if name is None:
                continue
            perms = entry.get("all_permissions") or []
            levels = [str(p.get("permission_level")) for p in perms]
            inherited = bool(perms) and all(p.get("inherited") for p in perms)
            yield key, kind, name, levels, inherited


def _run_as(job_or_pipeline: dict) -> str | None:
    run_as = job_or_pipeline.get("run_as") or (job_or_pipeline.get("settings") or {}).get("run_as") or {}
    for key in ("user_name", "service_principal_name", "group_name"):
        if run_as.get(key):
            return run_as[key]
    return job_or_pipeline.get("run_as_user_name")


ADMIN_REMEDIATION = (
    "Remove the admin right: at the account, `databricks account workspace-assignment update <workspace_id> "
    "<principal_id> --json '{\"permissions\": [\"USER\"]}'` (PUT /api/2.0/accounts/{account_id}/workspaces/"
    "{workspace_id}/permissionassignments/principals/{principal_id}), and in the workspace take the member out "
    "of `admins`: `databricks groups patch <admins_group_id>` with a SCIM remove operation "
    "(PATCH /api/2.0/preview/scim/v2/Groups/{id}). Account admins: remove the account_admin role in the "
    "account console or with PATCH /api/2.0/accounts/{account_id}/scim/v2/Users/{id}.")


# -- IAM-01 ------------------------------------------------------------------------------------------


@pytest.mark.dbsec(
    id="IAM-01", title="Password login restricted", severity="high", scope="workspace",
    sections=["authorization_acls", "identities"],
    refs={"CIS": ["2.1.4"], "SOC2": ["CC6.1"], "NIST": ["IA-2"]},
    rationale="Password login bypasses the identity provider (SSO, MFA, conditional access, deprovisioning). "
              "Only admins may keep it, as an emergency path; everyone else signs in through SSO.",
    remediation="Take every entry except `admins` off the passwords ACL: `databricks permissions set "
                "authorization passwords --json '{\"access_control_list\": [{\"group_name\": \"admins\", "
                "\"permission_level\": \"CAN_USE\"}]}'` (PUT /api/2.0/permissions/authorization/passwords).",
)
def test_IAM_01_password_login_restricted(workspace, findings):
    acl = workspace.data("authorization_acls").get("passwords") or {}
    m = _membership(workspace.data("identities"))
    admins = m.members_of(ADMINS) if m.get(ADMINS) is not None else set()
    for entry in acl.get("access_control_list") or []:
        kind, name = _acl_name(entry)
        if name is None or (kind == GROUP and name == ADMINS) or (kind != GROUP and name in admins):
            continue
        levels = [str(p.get("permission_level")) for p in entry.get("all_permissions") or []]
        p = m.get(name)
        extent = ""
        if kind == GROUP:
            extent = " (every workspace user)" if name == USERS else \
                f" ({len(m.members_of(name))} members)" if p is not None else ""
        findings.fail(
            resource_type=f"password login ACL entry ({KIND_LABEL.get(kind, kind)})", resource_id=name,
            resource_name=(entry.get("display_name") or name),
            seen=f"{'/'.join(levels) or 'an entry'} on authorization/passwords{extent}",
            expected="password login only for the admins group and workspace admins (everyone else through SSO)",
            levels=levels,
        )


# -- IAM-02 ------------------------------------------------------------------------------------------


@pytest.mark.dbsec(
    id="IAM-02", title="Identities provisioned from the IdP (SCIM)", severity="medium", scope="workspace",
    sections=["identities"], refs={"CIS": ["3.1.4"], "NIST": ["AC-2(1)"]},
    rationale="Identities provisioned from the IdP (they carry its externalId) lose access when the IdP "
              "disables them; hand-made users and groups outlive the people who leave.",
    remediation="Provision the user or group from the IdP (SCIM provisioning to the Databricks account, e.g. the "
                "Okta or Entra ID Databricks app) and delete the hand-made one (`databricks users delete <id>`, "
                "`databricks groups delete <id>`); declare deliberate local accounts in iam.local_accounts.",
)
def test_IAM_02_identities_provisioned_from_the_idp(workspace, baseline, findings):
    ids = workspace.data("identities")
    max_ratio = float(baseline.get("iam.max_unprovisioned_ratio"))
    excluded = set(baseline.get("break_glass.principals") or []) | set(baseline.get("iam.local_accounts") or [])
    counted: list[tuple[str, dict]] = []
    for u in ids.get("users") or []:
        if u.get("active", True) is False:
            continue  # deactivated: IAM-10's business
        if {u.get("userName"), u.get("displayName")} & excluded:
            continue
        counted.append(("user", u))
    for g in ids.get("groups") or []:
        name = g.get("displayName")
        if name in (ADMINS, USERS) or name in excluded:
            continue  # system groups are not provisioned by anyone
        counted.append(("group", g))
    missing = [(kind, e) for kind, e in counted if not (e.get("externalId") or "").strip()]
    if not counted or len(missing) / len(counted) <= max_ratio:
        return
    share = (f"{len(missing)} of {len(counted)} active users and groups ({len(missing) / len(counted):.0%}) "
             "have no externalId")
    for kind, e in missing:
        name = e.get("userName") or e.get("displayName") or e.get("id")
        local = (e.get("meta") or {}).get("resourceType") == "WorkspaceGroup"
        findings.fail(
            resource_type=kind + (" (workspace-local)" if local else ""), resource_id=name,
            resource_name=e.get("displayName") or name,
            seen=f"no externalId (not provisioned from the IdP); {share}",
            expected=f"at most {max_ratio:.0%} unprovisioned (break-glass and iam.local_accounts not counted)",
        )


# -- IAM-03 ------------------------------------------------------------------------------------------


@pytest.mark.dbsec(
    id="IAM-03", title="Few workspace admins", severity="medium", scope="workspace",
    sections=["identities", "admin_assignments"], refs={"SAT": ["INFO-6"], "NIST": ["AC-6(5)"]},
    rationale="Every workspace admin can read every secret scope, change any job's owner and run-as, and "
              "manage all compute; each one is an account whose compromise is total.",
    remediation=ADMIN_REMEDIATION,
)
def test_IAM_03_few_workspace_admins(workspace, baseline, findings):
    most = baseline.get("iam.max_workspace_admins")
    wa = _workspace_admins(workspace)
    if len(wa.admins) <= most:
        return
    names = sorted(a.label for a in wa.admins.values())
    inactive = sum(1 for a in wa.admins.values() if not a.active)
    findings.fail(
        resource_type="workspace admins", resource_id=ADMINS, resource_name=f"admins of workspace {workspace.name}",
        seen=f"{len(names)} workspace admins{f' ({inactive} deactivated)' if inactive else ''}: {', '.join(names)}",
        expected=f"at most {most} (iam.max_workspace_admins)",
        admins={a.name: a.via for a in wa.admins.values()},
        through_groups=sorted(wa.groups),
    )


# -- IAM-04 ------------------------------------------------------------------------------------------


@pytest.mark.dbsec(
    id="IAM-04", title="Only approved admins", severity="critical", scope="workspace",
    sections=["identities", "admin_assignments"], refs={"NIST": ["AC-6(5)"], "SOC2": ["CC6.3"]},
    rationale="Admin rights must be granted deliberately: an admin nobody approved is either a mistake or an "
              "attacker's persistence.",
    remediation="Remove the admin right (below), or approve the principal or its group in iam.approved_admins. "
                + ADMIN_REMEDIATION,
)
def test_IAM_04_only_approved_admins(workspace, baseline, findings):
    approved = set(baseline.get("iam.approved_admins") or [])
    expected = "listed in iam.approved_admins (itself or a group it belongs to)"
    wa = _workspace_admins(workspace)
    for g, how in sorted(wa.groups.items()):
        if _approved(approved, g, g, wa.members.groups_of(g)) is None:
            findings.fail(resource_type="admin group", resource_id=g,
                          seen=f"confers workspace admin ({'; '.join(how)})",
                          expected=expected, members=sorted(wa.members.members_of(g)))
    for a in sorted(wa.admins.values(), key=lambda a: a.name):
        if _approved(approved, a.name, a.display, wa.members.groups_of(a.name)) is None:
            findings.fail(resource_type=f"workspace admin ({KIND_LABEL.get(a.kind, a.kind)})", resource_id=a.name,
                          resource_name=a.label, seen=f"workspace admin: {'; '.join(a.via)}", expected=expected)
    _, account_admins = _account_admins(workspace)
    for a in sorted(account_admins.values(), key=lambda a: a.name):
        if _approved(approved, a.name, a.display, a.groups) is None:
            findings.fail(resource_type=f"account admin ({KIND_LABEL.get(a.kind, a.kind)})", resource_id=a.name,
                          resource_name=a.label, seen=f"account admin: {'; '.join(a.via)}", expected=expected)


# -- IAM-05 ------------------------------------------------------------------------------------------


@pytest.mark.dbsec(
    id="IAM-05", title="Admin rights through groups", severity="low", scope="workspace",
    sections=["identities", "admin_assignments"], refs={"NIST": ["AC-2"]},
    rationale="Admin rights held through a group are reviewed, granted and revoked in one place (the IdP); "
              "a right given to one person directly is easily forgotten when their role changes.",
    remediation="Assign ADMIN to a group (e.g. platform-admins, provisioned from the IdP) and make the user a member; "
                "then set the user's own assignment to USER: `databricks account workspace-assignment update "
                "<workspace_id> <principal_id> --json '{\"permissions\": [\"USER\"]}'`, or remove them from the "
                "workspace `admins` group (SCIM PATCH /api/2.0/preview/scim/v2/Groups/{id}).",
)
def test_IAM_05_admin_rights_through_groups(workspace, findings):
    wa = _workspace_admins(workspace)
    for name, how in sorted(wa.direct_users.items()):
        a = wa.admins[name]
        findings.fail(resource_type="user", resource_id=name, resource_name=a.display or name,
                      seen=f"workspace admin by {' and '.join(sorted(set(how)))}",
                      expected="admin rights only through a group", routes=a.via)


# -- IAM-06 ------------------------------------------------------------------------------------------


def _audit(workspace) -> dict | None:
    """The audit_activity section when a warehouse was given, else None (the audit log is not evaluated)."""
    data = workspace.data("audit_activity")
    return data if data.get("configured") else None


def _audit_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _audit_where(audit: dict) -> str:
    return (f"system.access.audit via SQL warehouse {audit['warehouse_id']} "
            f"({audit.get('warehouse_workspace')}), last {audit['days']} days")


def _holdings(workspace, names: set[str], groups: set[str], skip_groups: set[str]) -> tuple[list[str], list[str]]:
    """What the principal(s) ``names`` (or their ``groups``) hold in UC grants and object ACLs."""
    grants: list[str] = []
    for key, principal, privileges in _uc_grants(workspace.data("uc")):
        if principal in names:
            grants.append(f"{'/'.join(privileges) or 'a grant'} on {key}")
        elif principal in groups and principal not in skip_groups:
            grants.append(f"{'/'.join(privileges) or 'a grant'} on {key} through group {principal}")
    for typ, full_name, owner in _uc_owned(workspace.data("uc")):
        if owner in names:
            grants.append(f"owner of {typ}/{full_name}")
        elif owner in groups and owner not in skip_groups:
            grants.append(f"owner of {typ}/{full_name} through group {owner}")
    acls: list[str] = []
    for key, kind, name, levels, inherited in _acl_entries(workspace):
        how = "/".join(levels) + (" (inherited)" if inherited else "")
        if name in names:
            acls.append(f"{how} on {key}")
        elif kind == GROUP and name in groups and name not in skip_groups:
            acls.append(f"{how} on {key} through group {name}")
    return grants, acls


@pytest.mark.dbsec(
    id="IAM-06", title="Break-glass accounts dormant", severity="critical", scope="workspace",
    sections=["identities", "admin_assignments", "tokens", "uc", *ACL_SECTIONS, "audit_activity"],
    refs={"seeds": ["break-glass"], "NIST": ["AC-2(2)", "AC-6(5)"], "SOC2": ["CC6.2"]},
    rationale="A break-glass account is an emergency key: outside a declared window it holds no standing admin "
              "right, grant, ACL or token, so it cannot be used quietly, and the audit log shows no use of it "
              "outside a window. The audit log (system.access.audit) is read with --dbsec-warehouse-id; without "
              "it standing access and tokens are checked and the result says audit-log evidence was not "
              "evaluated.",
    remediation="Between emergencies keep the account without rights: remove its ADMIN assignment and admins "
                "membership, the account_admin role, UC grants (`REVOKE ... FROM `<principal>``), ACL entries "
                "(`databricks permissions update`) and tokens (`databricks token-management delete <token_id>`); "
                "grant them for a declared break_glass.windows entry only.",
)
def test_IAM_06_break_glass_accounts_dormant(workspace, baseline, findings):
    declared = list(baseline.get("break_glass.principals") or [])
    audit = _audit(workspace)
    audit_note = f"audit log: {_audit_where(audit)}" if audit else NO_AUDIT_LOG
    if not declared:
        pytest.skip(f"no break-glass principals declared in break_glass.principals; {audit_note}")
    window = baseline.break_glass.window_at(workspace.now)
    if window is not None:
        pytest.skip(f"inside the declared break-glass window {window.start:%Y-%m-%d %H:%M}Z-"
                    f"{window.end:%Y-%m-%d %H:%M}Z "
                    f"({window.reason}; {window.source}): standing access is expected now; {audit_note}")
    if audit is not None:
        missing = [e for e in declared if e not in (audit.get("principals") or {})]
        if missing:
            # a snapshot collected under another baseline: its events do not cover these names
            raise SectionUnavailable(workspace.name, "audit_activity", f"it holds no events for {', '.join(missing)} (collected for "
                               f"{', '.join(audit.get('principals') or {}) or 'no break-glass principal'}): "
                               "collect again with this baseline")
    wa = _workspace_admins(workspace)
    am, account_admins = _account_admins(workspace)
    tokens = _tokens_by_owner(workspace, wa.members)
    m = wa.members
    for entry in declared:
        p = m.find(entry) or am.find(entry)
        name = p.name if p is not None else entry
        names = {entry, name}
        groups = m.groups_of(name) if m.get(name) is not None else set()
        held: list[str] = []
        if name in wa.admins:
            held.append(f"workspace admin ({'; '.join(wa.admins[name].via)})")
        if name in account_admins:
            held.append(f"account admin ({'; '.join(account_admins[name].via)})")
        grants, acls = _holdings(workspace, names, groups, {USERS, ADMINS, ACCOUNT_USERS})
        held += grants + acls
        live = [t for t in tokens.get(name, []) if _token_active(t, workspace.now)]
        for t in live:
            expires = "never expires" if (t.get("expiry_time") or 0) <= 0 else f"expires {day(t['expiry_time'])}"
            used = f", last used {day(t['last_used_day'])}" if t.get("last_used_day") else ", never used"
            held.append(f"token {t.get('token_id')} ({expires}{used})")
        uses: list[str] = []
        if audit is not None:
            who = (audit["principals"][entry] or "").lower()
            for ev in audit.get("principal_events") or []:
                if (ev.get("identity") or "").lower() != who:
                    continue
                when = _audit_time(ev["event_time"])
                if baseline.break_glass.window_at(when) is None:
                    ws = "account" if str(ev.get("workspace_id")) == "0" else f"workspace {ev.get('workspace_id')}"
                    uses.append(f"{ev['event_time']} {ev.get('service_name')}.{ev.get('action_name')} "
                                f"({ws}, from {ev.get('source_ip_address') or '?'})")
            if audit.get("principal_events_truncated") and uses:
                uses.append("(more events beyond the section's cap were not judged)")
        if held or uses:
            seen = []
            if held:
                seen.append("standing access outside a declared window: " + "; ".join(held))
            if uses:
                seen.append(f"used outside a declared window ({len(uses)} audit events): " + "; ".join(uses[:10])
                            + (f"; and {len(uses) - 10} more" if len(uses) > 10 else ""))
            findings.fail(
                resource_type=f"break-glass {KIND_LABEL.get(p.kind, 'principal') if p else 'principal'}",
                resource_id=name, resource_name=_label(p) if p else name,
                seen="; ".join(seen),
                expected="no admin right, grant, ACL or token, and no use, outside a break_glass.windows entry "
                         f"({audit_note})",
                holdings=held, tokens=[t.get("token_id") for t in live], uses_outside_window=uses,
            )


# -- IAM-07 ------------------------------------------------------------------------------------------


@pytest.mark.dbsec(
    id="IAM-07", title="No dormant privileged accounts", severity="high", scope="workspace",
    sections=["identities", "admin_assignments", "tokens", "uc", "audit_activity"],
    refs={"CIS": ["2.1.12"], "NIST": ["AC-2(3)"]},
    rationale="A privileged account nobody uses is a target nobody watches. Activity evidence is the last use of "
              "the principal's personal access tokens and, with --dbsec-warehouse-id, its last event in the audit "
              "log (system.access.audit); a privileged account with no activity on record is reported (it cannot "
              "be shown to be in use). Without the audit log an account used only through OAuth/SSO shows no "
              "activity: give a warehouse, or waive it with that evidence.",
    remediation="Remove the privilege of accounts that are not used (workspace admin: see IAM-03; UC: "
                "`ALTER CATALOG ... OWNER TO <group>`, `REVOKE MANAGE ON ... FROM ...`) or deactivate them "
                "(`databricks users patch <id>` with active=false); for accounts in use through OAuth/SSO, check "
                "system.access.audit and waive the finding with that evidence.",
)
def test_IAM_07_no_dormant_privileged_accounts(workspace, baseline, findings):
    days = baseline.get("iam.dormant_days")
    now_ms = workspace.now.timestamp() * 1000
    break_glass = set(baseline.get("break_glass.principals") or [])
    wa = _workspace_admins(workspace)
    m = wa.members
    privileged: dict[str, list[str]] = {}
    for a in wa.admins.values():
        privileged.setdefault(a.name, []).append("workspace admin")
    uc = workspace.data("uc")
    for typ, full_name, owner in _uc_owned(uc):
        privileged.setdefault(owner, []).append(f"owner of {typ}/{full_name}")
    for key, principal, privileges in _uc_grants(uc):
        if "MANAGE" in privileges:
            privileged.setdefault(principal, []).append(f"MANAGE on {key}")
    tokens = _tokens_by_owner(workspace, m)
    audit = _audit(workspace)
    seen_in_audit = {k.lower(): v for k, v in ((audit or {}).get("last_activity") or {}).items()}
    for name, why in sorted(privileged.items()):
        p = m.get(name) or m.find(name)
        if p is None or p.kind == GROUP or not p.active:
            continue  # groups are not accounts; non-members have no activity here; deactivated: IAM-10
        if {p.name, p.display_name} & break_glass:
            continue  # break-glass accounts are meant to be dormant (IAM-06)
        used = [t["last_used_day"] for t in tokens.get(p.name, []) if t.get("last_used_day")]
        last = max(used) if used else None
        # the audit log names users by userName and service principals by applicationId: p.name either way
        logged = seen_in_audit.get(p.name.lower()) if audit is not None else None
        last_event = _audit_time(logged["last_event"]).timestamp() * 1000 if logged else None
        recent = [t for t in (last, last_event) if t is not None]
        if recent and (now_ms - max(recent)) / DAY_MS <= days:
            continue
        parts = [f"last token use {day(last)} ({(now_ms - last) / DAY_MS:.0f} days ago)" if last is not None
                 else "no token use on record"]
        if audit is not None:
            parts.append(f"last audit-log event {day(last_event)} ({(now_ms - last_event) / DAY_MS:.0f} days ago)"
                         if last_event is not None else f"no audit-log event in the last {audit['days']} days")
            note = _audit_where(audit)
        else:
            note = NO_AUDIT_LOG
        findings.fail(
            resource_type=KIND_LABEL.get(p.kind, p.kind), resource_id=p.name, resource_name=_label(p),
            seen=f"{'no activity evidence' if not recent else f'no activity within {days} days'}: "
                 f"{'; '.join(parts)} ({note}); "
                 f"privileged as {'; '.join(sorted(set(why)))}",
            expected=f"activity within {days} days (iam.dormant_days)",
            last_token_use=day(last) if last else None,
            last_audit_event=day(last_event) if last_event else None, privileges=sorted(set(why)),
        )


# -- IAM-08 ------------------------------------------------------------------------------------------

# Permissions API object types (as in the acls_* sections' keys "type/id")
ACL_TYPES = ("clusters", "cluster-policies", "instance-pools", "jobs", "pipelines", "warehouses",
             "serving-endpoints", "dashboards", "repos", "notebooks", "directories", "experiments",
             "registered-models", "queries", "alerts", "apps")
# ACL levels, low to high; an unknown level counts as at least the elevated one (fail closed)
LEVEL_RANK = {"CAN_VIEW": 1, "CAN_READ": 1, "CAN_ATTACH_TO": 1, "CAN_USE": 1, "CAN_QUERY": 2, "CAN_MONITOR": 2,
              "CAN_RUN": 2, "CAN_RESTART": 2, "CAN_MANAGE_RUN": 2, "CAN_EDIT": 3,
              "CAN_MANAGE_STAGING_VERSIONS": 3, "CAN_MANAGE_PRODUCTION_VERSIONS": 3, "CAN_MANAGE": 4, "IS_OWNER": 5}
# UC privileges that ALL_PRIVILEGES does not include
NOT_IN_ALL = {"MANAGE", "EXTERNAL_USE_SCHEMA", "EXTERNAL_USE_LOCATION"}


def _ws_refs(workspace) -> set[str]:
    refs = {"workspace", str(workspace.name)}
    if workspace.id is not None:
        refs.add(str(workspace.id))
    return refs | {f"workspace/{r}" for r in set(refs)} | {f"workspaces/{r}" for r in set(refs)}


def _uc_ancestors(securable: str) -> list[str]:
    """A securable's full name and those of its catalog and schema ("c.s.t" -> c.s.t, c.s, c)."""
    parts = securable.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def _elevation_present(workspace, e, wa: WorkspaceAdmins) -> list[str]:
    """Where the elevated access is still present ([] if gone)."""
    m = wa.members
    p = m.find(e.principal)
    names = {e.principal} | ({p.name} if p is not None else set())
    privilege = e.privilege.strip().upper().replace(" ", "_")
    securable = e.securable.strip()
    if privilege == "ADMIN" and securable in _ws_refs(workspace):
        hits = [f"workspace admin ({'; '.join(wa.admins[n].via)})" for n in names if n in wa.admins]
        hits += [f"group {n} confers workspace admin ({'; '.join(wa.groups[n])})" for n in names if n in wa.groups]
        return hits
    typ = securable.split("/", 1)[0]
    if typ in ACL_TYPES and "/" in securable:
        want = LEVEL_RANK.get(privilege)
        hits = []
        for key, kind, name, levels, inherited in _acl_entries(workspace):
            if key != securable or name not in names:
                continue
            for level in levels:
                have = LEVEL_RANK.get(level)
                if want is None or have is None or have >= want:
                    hits.append(f"{level} on {key}" + (" (inherited)" if inherited else ""))
        return hits
    # Unity Catalog: "type/full.name" (as the uc section keys grants) or a bare full name; a grant on the
    # securable's catalog or schema covers it too
    uc_type, _, full = securable.rpartition("/")
    chain = set(_uc_ancestors(full))
    hits = []
    for key, principal, privileges in _uc_grants(workspace.data("uc")):
        key_type, _, key_name = key.partition("/")
        if principal not in names or key_name not in chain:
            continue
        if uc_type and key_name == full and key_type.lower() != uc_type.lower():
            continue
        covering = [pr for pr in privileges
                    if pr == privilege or (pr == "ALL_PRIVILEGES" and privilege not in NOT_IN_ALL)]
        if covering:
            hits.append(f"{'/'.join(covering)} on {key}" + ("" if key_name == full else f" (covers {full})"))
    return hits


@pytest.mark.dbsec(
    id="IAM-08", title="Just-in-time elevations revoked on time", severity="critical", scope="workspace",
    sections=["identities", "admin_assignments", "uc", *ACL_SECTIONS],
    refs={"seeds": ["JIT"], "NIST": ["AC-2(2)"]},
    rationale="A just-in-time elevation is only just-in-time if it ends: access still present after the "
              "approved expiry is standing privilege nobody approved.",
    remediation="Revoke the elevated access now: UC `REVOKE <privilege> ON <securable> FROM `<principal>`` "
                "(PATCH /api/2.1/unity-catalog/permissions/...), workspace admin: set the assignment to USER "
                "(`databricks account workspace-assignment update`), ACL: `databricks permissions update <type> <id>`; "
                "then remove the entry from the baseline's elevations, or extend it with a new approval.",
)
def test_IAM_08_just_in_time_elevations_revoked_on_time(workspace, baseline, findings):
    if not baseline.elevations:
        pytest.skip("no just-in-time elevations declared in the baseline (elevations)")
    today = workspace.now.date()
    wa = _workspace_admins(workspace)
    for e in baseline.elevations:
        if not e.expired(today):
            continue
        present = _elevation_present(workspace, e, wa)
        if present:
            findings.fail(
                resource_type="elevation", resource_id=f"{e.principal} {e.privilege} {e.securable}",
                resource_name=f"{e.privilege} on {e.securable} for {e.principal}", owner=e.principal,
                seen=f"expired {e.expires.isoformat()}, still present: {'; '.join(present)}",
                expected="access revoked by the elevation's expiry",
                approver=e.approver, justification=e.justification, declared=e.source,
            )


# -- IAM-09 ------------------------------------------------------------------------------------------

_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$", re.I)


def _rfc3339(value) -> dt.datetime | None:
    """An RFC3339 time (nanoseconds allowed), aware UTC; None if absent or unreadable."""
    if not value:
        return None
    m = _RFC3339.match(str(value).strip())
    if not m:
        return None
    date, time, frac, zone = m.groups()
    micro = (frac or ".0")[1:7].ljust(6, "0")
    zone = "+00:00" if not zone or zone.upper() == "Z" else (zone if ":" in zone else f"{zone[:3]}:{zone[3:]}")
    try:
        return dt.datetime.fromisoformat(f"{date}T{time}.{micro}{zone}").astimezone(dt.timezone.utc)
    except ValueError:
        return None


INACTIVE_SECRET = {"EXPIRED", "REVOKED", "INACTIVE", "DISABLED", "DELETED"}


@pytest.mark.dbsec(
    id="IAM-09", title="Service principal OAuth secrets rotated", severity="medium", scope="account",
    sections=["sp_secrets", "account_identities"], refs={"SAT": ["IA-9"], "NIST": ["IA-5(1)"]},
    rationale="An OAuth secret is a password for a machine identity: one that is never rotated, or never "
              "expires, stays usable for as long as any copy of it survives.",
    remediation="Rotate: create a new secret with an expiry (`databricks account service-principal-secrets create "
                "<sp_id> --lifetime 7776000s`), move the consumers to it, then delete the old one "
                "(`databricks account service-principal-secrets delete <sp_id> <secret_id>`).",
)
def test_IAM_09_service_principal_oauth_secrets_rotated(account, baseline, findings):
    max_days = baseline.get("iam.max_sp_secret_age_days")
    now = account.now
    sps = {sp["id"]: sp for sp in account.data("account_identities").get("service_principals") or []}
    for sp_id, secrets in sorted((account.data("sp_secrets").get("secrets") or {}).items()):
        sp = sps.get(sp_id, {})
        sp_label = f"{sp.get('displayName') or sp_id} ({sp.get('applicationId') or sp_id})"
        for s in secrets or []:
            status = str(s.get("status") or "").upper()
            expires = _rfc3339(s.get("expire_time"))
            if status in INACTIVE_SECRET or (expires is not None and expires <= now):
                continue  # not usable any more
            created = _rfc3339(s.get("create_time"))
            problems = []
            if s.get("expire_time") is None:
                problems.append("never expires (no expire_time)")
            elif expires is None:
                problems.append(f"expiry unreadable ({s.get('expire_time')!r})")
            if created is None:
                problems.append(f"age unknown (create_time {s.get('create_time')!r})")
            elif (now - created).total_seconds() / 86400 > max_days:
                problems.append(f"{(now - created).total_seconds() / 86400:.0f} days old")
            if problems:
                findings.fail(
                    resource_type="service principal secret", resource_id=s.get("id", "?"),
                    resource_name=f"secret {s.get('id', '?')} of {sp_label}", owner=sp_label,
                    seen=f"{status or 'status unknown'}, " + ", ".join(problems),
                    expected=f"rotated within {max_days} days (iam.max_sp_secret_age_days), with an expiry",
                    created=created.date().isoformat() if created else None,
                    expires=expires.date().isoformat() if expires else "never",
                )


# -- IAM-10 ------------------------------------------------------------------------------------------


@pytest.mark.dbsec(
    id="IAM-10", title="Deactivated identities keep no access", severity="high", scope="workspace",
    sections=["identities", "tokens", "uc", *ACL_SECTIONS, "jobs"], refs={"NIST": ["AC-2(3)"]},
    rationale="Deactivating a user stops sign-in, but group memberships, grants, ACLs and tokens stay, and jobs "
              "keep running as the identity; reactivation (or an IdP sync mistake) restores everything at once.",
    remediation="Remove what is left: group memberships (SCIM PATCH remove), UC grants (`REVOKE ... FROM`) and "
                "ownership (`ALTER ... OWNER TO <group>`), ACL entries (`databricks permissions update`), tokens "
                "(`databricks token-management delete <token_id>`), and change the run_as of its jobs and pipelines "
                "to a service principal (`databricks jobs update`); or delete the identity.",
)
def test_IAM_10_deactivated_identities_keep_no_access(workspace, findings):
    ids = workspace.data("identities")
    m = _membership(ids)
    inactive = [p for p in m.principals.values() if p.kind in (USER, SERVICE_PRINCIPAL) and not p.active]
    if not inactive:
        return
    tokens = _tokens_by_owner(workspace, m)
    jobs = workspace.data("jobs")
    for p in sorted(inactive, key=lambda p: p.name):
        names = {p.name}
        direct = _direct_groups(ids, m, p.name) - {USERS}
        left: list[str] = []
        for g in sorted(direct):
            through = sorted((m.groups_of(g) - {USERS}) - direct)
            left.append(f"member of {g}" + (f" (and through it of {', '.join(through)})" if through else ""))
        grants, acls = _holdings(workspace, names, set(), set())
        left += grants + acls
        for t in tokens.get(p.name, []):
            if _token_active(t, workspace.now):
                left.append(f"token {t.get('token_id')}")
        for j in jobs.get("jobs") or []:
            if _run_as(j) == p.name:
                left.append(f"run_as of job {j.get('job_id')} ({(j.get('settings') or {}).get('name', '?')})")
        for pl in jobs.get("pipelines") or []:
            if _run_as(pl) == p.name:
                left.append(f"run_as of pipeline {pl.get('pipeline_id')} ({pl.get('name', '?')})")
        if left:
            findings.fail(
                resource_type=f"deactivated {KIND_LABEL[p.kind]}", resource_id=p.name, resource_name=_label(p),
                seen="still " + "; ".join(left), expected="no group membership, grant, ACL, token or run_as",
                access=left,
            )


# -- IAM-11 ------------------------------------------------------------------------------------------


@pytest.mark.dbsec(
    id="IAM-11", title="Workspace admins restricted", severity="medium", scope="workspace",
    sections=["settings"], refs={"SAT": ["GOV-35"]},
    rationale="With ALLOW_ALL a workspace admin can create tokens on behalf of any service principal and make "
              "any job run as any identity: one compromised admin becomes every automation identity.",
    remediation="`databricks settings restrict-workspace-admins update --json '{\"allow_missing\": true, "
                "\"field_mask\": \"restrict_workspace_admins.status\", \"setting\": {\"restrict_workspace_admins\": "
                "{\"status\": \"RESTRICT_TOKENS_AND_JOB_RUN_AS\"}}}'` "
                "(PATCH /api/2.0/settings/types/restrict_workspace_admins/names/default).",
)
def test_IAM_11_workspace_admins_restricted(workspace, findings):
    name = "restrict_workspace_admins"
    settings = workspace.data("settings")
    if name in (settings.get("unavailable") or {}):
        pytest.skip(f"setting {name} is not available on this workspace or cloud: {settings['unavailable'][name]}")
    if name in (settings.get("unset") or []):
        seen = "never set (the default, ALLOW_ALL, applies)"
    else:
        raw = (settings.get("values") or {}).get(name) or {}
        status = (raw.get(name) or {}).get("status")
        if status == "RESTRICT_TOKENS_AND_JOB_RUN_AS":
            return
        seen = f"status {status}" if status else f"status unknown ({raw!r:.120})"
    findings.fail(resource_type="setting", resource_id=name, resource_name=f"workspace {workspace.name}",
                  seen=seen, expected="RESTRICT_TOKENS_AND_JOB_RUN_AS")


# -- IAM-12 ------------------------------------------------------------------------------------------


@pytest.mark.dbsec(
    id="IAM-12", title="SSO enforced at the account (attested)", severity="high", scope="account",
    sections=[], verified_by="attestation",
    refs={"CIS": ["3.1.4"], "SOC2": ["CC6.1"], "NIST": ["IA-2(1)", "IA-2(2)"]},
    rationale="No public API reads the account's SSO configuration, so enforcement is attested: a person states "
              "that single sign-on (with MFA at the IdP) is enforced for the account and links the evidence. "
              "Reported ATTESTED, never PASS, and fails once the attestation goes stale.",
    remediation="Enforce SSO in the account console (Settings > Single sign-on, unified login) and add an "
                "attestation to the baseline: attestations: [{control: IAM-12, statement, evidence (link), "
                "attested_by, date, valid_days}].",
)
def test_IAM_12_sso_enforced_at_the_account():
    """Nothing to read: the plugin judges the baseline's attestation for this control."""
