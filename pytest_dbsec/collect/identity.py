"""Identity data the IAM controls need beyond the generic sections.

Who is an admin of a workspace is split between two hosts: the workspace's own SCIM (the ``admins``
group, in the ``identities`` section) and the account, which holds the workspace permission
assignments (``ADMIN``/``USER``) and the account admin role. A workspace-scoped control can only read
sections of its own scope, so ``admin_assignments`` brings the account's view of *this* workspace into
the workspace scope: its permission assignments, and the account identities that carry roles
(account admins, directly or through a group), with the group membership needed to expand them.

It reads the account API with the run's account credentials (``ctx.account_client()``); without them
the section fails with the reason, and the controls that need it ERROR (never a pass on half the admins).
The account identities come from the account scope's ``account_identities`` section (``account_needs``):
one read per run for every workspace, shared between pytest-xdist workers; if it failed, this section
fails with its reason.
"""

from __future__ import annotations

from databricks.sdk.errors import NotFound

from . import section

# SCIM attributes the IAM controls use (the rest of an account identity is not kept here)
_ATTRS = {
    "users": ("id", "userName", "displayName", "active", "externalId", "roles", "groups"),
    "service_principals": ("id", "applicationId", "displayName", "active", "externalId", "roles", "groups"),
    "groups": ("id", "displayName", "externalId", "roles", "members", "groups"),
}


@section("admin_assignments", "workspace", account_needs=("account_identities",),
         title="this workspace's account permission assignments and the account admins (account API)")
def admin_assignments(w, ctx):
    a = ctx.account_client()
    workspace_id = int(w.config.workspace_id or w.get_workspace_id())
    # raw JSON: a permission level the SDK does not know must survive (it would become None)
    raw = a.api_client.do(
        "GET", f"/api/2.0/accounts/{a.config.account_id}/workspaces/{workspace_id}/permissionassignments")
    return {
        "workspace_id": workspace_id,
        "permission_assignments": list((raw or {}).get("permission_assignments") or []),
        # the run's one read of the account identities: the account's account_identities section, read
        # by the first workspace that needs it (or the account's controls), taken from it by the others
        "account_identities": {kind: [{k: i[k] for k in _ATTRS[kind] if k in i} for i in items]
                               for kind, items in ctx.account_data("account_identities").items()},
    }


# Roles on identities (access-control rule sets). A group's rule set is named by its SCIM id, a service
# principal's by its applicationId (SDK docstring of AccountAccessControlAPI.get_rule_set).
IDENTITY_ROLES = ("roles/group.manager", "roles/servicePrincipal.manager", "roles/servicePrincipal.user")


@section("identity_roles", "account", needs=("account_identities",),
         title="roles on groups and service principals (group manager, service principal user/manager)")
def identity_roles(a, ctx):
    """One rule-set read per account group and service principal. A denied read fails the section (its
    reason says which call); an identity deleted between the listing and its read is recorded as vanished."""
    ids = ctx.data("account_identities")
    acct = a.config.account_id
    # (kind, the name grants and the graph use, display name, rule-set name)
    wanted = [("group", g.get("displayName") or g["id"], g.get("displayName"),
               f"accounts/{acct}/groups/{g['id']}/ruleSets/default") for g in ids.get("groups") or []]
    wanted += [("service_principal", sp.get("applicationId"), sp.get("displayName"),
                f"accounts/{acct}/servicePrincipals/{sp['applicationId']}/ruleSets/default")
               for sp in ids.get("service_principals") or [] if sp.get("applicationId")]

    def read(item):
        try:
            # etag "": no freshness requirement (the only value a read may send without a prior read)
            return a.access_control.get_rule_set(name=item[3], etag="").as_dict()
        except NotFound:
            return None

    rule_sets, vanished = [], []
    for (kind, key, display, name), rs in zip(wanted, ctx.fan_out(read, wanted)):
        if rs is None:
            vanished.append(name)
            continue
        rule_sets.append({"resource_kind": kind, "principal": key, "display_name": display, "name": name,
                          "grant_rules": rs.get("grant_rules") or []})
    return {"rule_sets": rule_sets, "vanished": vanished}
