"""Account-level data sections (an AccountClient on the account console host)."""

from __future__ import annotations

from databricks.sdk.errors import NotFound

from . import section
from .workspace import _dicts

ACCOUNT_SETTINGS = ("acct_ip_acl_enable", "dcp_acct_enable", "shield_csp_enablement_ac",
                    "shield_esm_enablement_ac", "disable_legacy_features")


@section("account_identities", "account", title="account users, groups and service principals")
def account_identities(a, ctx):
    """Every account user, group and service principal (thousands of identities, many pages): read once
    per run. Every workspace's ``admin_assignments`` reads it from here (``account_needs``), under
    pytest-xdist too (the workers share the account scope's cache)."""
    return {
        "users": _dicts(a.users.list()),
        "groups": _dicts(a.groups.list()),
        "service_principals": _dicts(a.service_principals.list()),
    }


# Context.once key of the account's workspace list: an account-wide run lists the workspaces to plan its
# targets and seeds the collector with that list (Collector.seed), so this section does not list them again
WORKSPACE_LIST = ("account workspaces",)


@section("account_workspaces", "account", title="workspaces and their permission assignments")
def account_workspaces(a, ctx):
    workspaces = ctx.once(WORKSPACE_LIST, lambda: _dicts(a.workspaces.list()))
    assignments = ctx.fan_out(
        lambda ws: _dicts(a.workspace_assignment.list(workspace_id=ws["workspace_id"])), workspaces)
    return {"workspaces": [{**ws, "permission_assignments": pa} for ws, pa in zip(workspaces, assignments)]}


@section("account_network", "account", title="account console IP access lists and settings")
def account_network(a, ctx):
    settings, unset = {}, []
    for name in ACCOUNT_SETTINGS:
        try:
            settings[name] = a.api_client.do(
                "GET", f"/api/2.0/accounts/{a.config.account_id}/settings/types/{name}/names/default")
        except NotFound:
            unset.append(name)
    return {"ip_access_lists": _dicts(a.ip_access_lists.list()), "settings": settings, "unset": unset}


@section("account_logging", "account", title="log delivery configurations")
def account_logging(a, ctx):
    return {"log_delivery_configurations": _dicts(a.log_delivery.list())}


@section("sp_secrets", "account", needs=("account_identities",), title="service principal OAuth secrets")
def sp_secrets(a, ctx):
    sps = ctx.data("account_identities")["service_principals"]
    # secret values are never returned by this API; we keep ids, status and times only
    secrets = ctx.fan_out(lambda sp: _dicts(a.service_principal_secrets.list(service_principal_id=sp["id"])), sps)
    return {"secrets": {sp["id"]: s for sp, s in zip(sps, secrets)}}
