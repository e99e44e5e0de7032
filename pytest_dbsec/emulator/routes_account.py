"""Account APIs (/api/2.0/accounts/{account_id}/...), served on the account listener only.

Every route except the host-metadata probe requires an account admin. The workspaces list is a bare
JSON array, as the real service returns it.
"""

from __future__ import annotations

import copy
import hashlib
import json

from . import scim, wire
from .routes_uc import render_metastore
from .routes_workspace import setting_response
from .routing import ACCOUNT_ADMIN, PUBLIC, Ctx, RouteTable, bad_request, not_found, paged

ROUTES = RouteTable()


def route(pattern: str, **kw):
    kw.setdefault("access", ACCOUNT_ADMIN)
    return ROUTES.route(pattern, **kw)


A = "/api/2.0/accounts/{account_id}"



def _check_account(ctx: Ctx) -> None:
    if ctx.params.get("account_id") != str(ctx.account["id"]):
        raise not_found(f"Account {ctx.params.get('account_id')} does not exist.")


@route("/.well-known/databricks-config", access=PUBLIC)
def well_known(ctx: Ctx):
    url = ctx.emulator.account_url
    aid = ctx.account["id"]
    return {"account_id": aid, "cloud": ctx.account.get("cloud", "aws"), "oidc_endpoint": f"{url}/oidc/accounts/{aid}"}


# ---------------------------------------------------------------------------------------- SCIM


def _scim_list(kind):
    def handler(ctx: Ctx):
        _check_account(ctx)
        d = ctx.state.directory
        ps = {"user": d.users, "sp": d.sps, "group": d.groups}[kind].values()
        return scim.scim_list(ctx, list(ps), render=lambda p: scim.account_render(d, p))

    return handler


def _scim_get(kind, label):
    def handler(ctx: Ctx):
        _check_account(ctx)
        p = ctx.state.directory.by_id.get(ctx.params["id"])
        if p is None or p.kind != kind:
            raise not_found(f"{label} {ctx.params['id']} does not exist.")
        return scim.scim_get(ctx, scim.account_render(ctx.state.directory, p))

    return handler


for _kind, _seg, _label in (("user", "Users", "User"), ("group", "Groups", "Group"), ("sp", "ServicePrincipals", "Service principal")):
    route(f"{A}/scim/v2/{_seg}")(_scim_list(_kind))
    route(f"{A}/scim/v2/{_seg}/{{id}}")(_scim_get(_kind, _label))


# ------------------------------------------------------------------- access-control rule sets

_RULE_SET_PREFIX = {"user": "users", "sp": "servicePrincipals", "group": "groups"}


@route("/api/2.0/preview/accounts/{account_id}/access-control/rule-sets")
def rule_set_get(ctx: Ctx):
    """The default rule set of a group (named by its SCIM id) or a service principal (named by its
    applicationId): the roles granted on that identity, principals as users/<userName>,
    groups/<displayName>, servicePrincipals/<applicationId>."""
    _check_account(ctx)
    name = ctx.require("name")
    parts = name.split("/")
    if len(parts) != 6 or parts[0] != "accounts" or parts[4:] != ["ruleSets", "default"] \
            or parts[2] not in ("groups", "servicePrincipals"):
        raise bad_request(f"Invalid rule set name: {name}")
    if parts[1] != str(ctx.account["id"]):
        raise not_found(f"Account {parts[1]} does not exist.")
    d = ctx.state.directory
    if parts[2] == "groups":
        target = d.by_id.get(parts[3])
        target = target if target is not None and target.kind == "group" else None
    else:
        target = d.sps.get(parts[3])
    if target is None:
        raise not_found(f"Resource {'/'.join(parts[:4])} does not exist.")
    rules = []
    for rule in target.obj.get("grant_rules") or []:
        principals = []
        for n in rule.get("principals") or []:
            p = d.lookup(n)[0]
            principals.append(f"{_RULE_SET_PREFIX[p.kind]}/{p.name}")
        rules.append({"role": rule["role"], "principals": principals})
    out = {"name": name, "etag": hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()[:24]}
    if rules:
        out["grant_rules"] = rules
    return out


# ---------------------------------------------------------------------------------- workspaces


def _workspace(ctx: Ctx, ws: dict) -> dict:
    out = {"workspace_id": ws["id"], "workspace_name": ws["name"], "account_id": ctx.account["id"]}
    out["cloud"] = ctx.account.get("cloud", "aws")
    for k in wire.WORKSPACE_WIRE_FIELDS:
        if ws.get(k) is not None:
            out[k] = copy.deepcopy(ws[k])
    if out.get("workspace_status") == "RUNNING":
        out.setdefault("workspace_status_message", "Workspace is running.")
    return out


def _ws_by_id(ctx: Ctx) -> dict:
    _check_account(ctx)
    wid = ctx.params["workspace_id"]
    for ws in ctx.account.get("workspaces") or []:
        if str(ws["id"]) == wid:
            return ws
    raise not_found(f"Workspace {wid} does not exist.")


@route(f"{A}/workspaces")
def workspaces_list(ctx: Ctx):
    _check_account(ctx)
    return [_workspace(ctx, ws) for ws in ctx.account.get("workspaces") or []]


@route(f"{A}/workspaces/{{workspace_id}}")
def workspaces_get(ctx: Ctx):
    return _workspace(ctx, _ws_by_id(ctx))


@route(f"{A}/workspaces/{{workspace_id}}/permissionassignments")
def assignments_list(ctx: Ctx):
    ws = _ws_by_id(ctx)
    view = ctx.state.view(ws["name"])
    out = []
    for p, perms in view.assignments:
        key = {"user": "user_name", "sp": "service_principal_name", "group": "group_name"}[p.kind]
        out.append({"principal": {"principal_id": int(p.id), key: p.name, "display_name": p.display}, "permissions": list(perms)})
    return {"permission_assignments": out}


@route(f"{A}/workspaces/{{workspace_id}}/permissionassignments/permissions")
def assignment_levels(ctx: Ctx):
    _ws_by_id(ctx)
    return {
        "permissions": [
            {"permission_level": "ADMIN", "description": "Workspace admins can manage the workspace."},
            {"permission_level": "USER", "description": "Workspace users can use the workspace."},
        ]
    }


@route(f"{A}/workspaces/{{workspace_id}}/metastore")
def metastore_assignment(ctx: Ctx):
    ws = _ws_by_id(ctx)
    for m in ctx.account.get("metastores") or []:
        if m["name"] == ws.get("metastore"):
            return {
                "metastore_assignment": {
                    "metastore_id": m["metastore_id"],
                    "workspace_id": ws["id"],
                    "default_catalog_name": ws.get("default_catalog_name") or "hive_metastore",
                }
            }
    raise not_found(f"Workspace {ws['id']} has no metastore assigned.", "METASTORE_DOES_NOT_EXIST")


@route(f"{A}/workspaces/{{workspace_id}}/network")
def workspace_network(ctx: Ctx):
    ws = _ws_by_id(ctx)
    return {"workspace_id": ws["id"], "network_policy_id": ws.get("network_policy_id", "default-policy")}


# ------------------------------------------------------------------------------ SP OAuth secrets


@route(f"{A}/servicePrincipals/{{sp_id}}/credentials/secrets")
def sp_secrets(ctx: Ctx):
    _check_account(ctx)
    d = ctx.state.directory
    key = ctx.params["sp_id"]
    p = d.by_id.get(key) or d.sps.get(key)  # SCIM id, or applicationId for convenience
    if p is None or p.kind != "sp":
        raise not_found(f"Service principal {key} does not exist.")
    items = copy.deepcopy(p.obj.get("secrets") or [])
    return paged(ctx, items, "secrets", size_param="page_size")


# ------------------------------------------------------------------- IP lists, settings, logging


@route(f"{A}/ip-access-lists")
def ip_lists(ctx: Ctx):
    _check_account(ctx)
    return {"ip_access_lists": copy.deepcopy(ctx.account.get("ip_access_lists") or [])}


@route(f"{A}/ip-access-lists/{{list_id}}")
def ip_list_get(ctx: Ctx):
    _check_account(ctx)
    for l in ctx.account.get("ip_access_lists") or []:
        if l["list_id"] == ctx.params["list_id"]:
            return {"ip_access_list": copy.deepcopy(l)}
    raise not_found(f"IP access list {ctx.params['list_id']} does not exist.")


@route(f"{A}/settings/types/{{type}}/names/{{name}}")
def account_setting(ctx: Ctx):
    _check_account(ctx)
    t = ctx.params["type"]
    stored = (ctx.account.get("settings") or {}).get(t)
    if stored is None or ctx.params["name"] != "default":
        raise not_found(f"Setting {t} does not exist.")
    return setting_response(stored, t, wire.ACCOUNT_SETTING_FIELDS)


def _log_config(ctx: Ctx, c: dict) -> dict:
    out = copy.deepcopy(c)
    out["account_id"] = ctx.account["id"]
    if not out.get("workspace_ids_filter"):
        out.pop("workspace_ids_filter", None)
    return out


@route(f"{A}/log-delivery")
def log_delivery_list(ctx: Ctx):
    _check_account(ctx)
    items = [_log_config(ctx, c) for c in ctx.account.get("log_delivery") or []]
    for key in ("status", "credentials_id", "storage_configuration_id"):
        want = ctx.q(key)
        if want:
            items = [c for c in items if c.get(key) == want]
    return paged(ctx, items, "log_delivery_configurations", size_param="page_size")


@route(f"{A}/log-delivery/{{config_id}}")
def log_delivery_get(ctx: Ctx):
    _check_account(ctx)
    for c in ctx.account.get("log_delivery") or []:
        if c["config_id"] == ctx.params["config_id"]:
            return {"log_delivery_configuration": _log_config(ctx, c)}
    raise not_found(f"Log delivery configuration {ctx.params['config_id']} does not exist.")


@route(f"{A}/network-policies")
def network_policies_list(ctx: Ctx):
    _check_account(ctx)
    items = []
    for n in ctx.account.get("network_policies") or []:
        item = copy.deepcopy(n)
        item["account_id"] = ctx.account["id"]
        items.append(item)
    return paged(ctx, items, "items", size_param="page_size")


@route(f"{A}/network-policies/{{policy_id}}")
def network_policies_get(ctx: Ctx):
    _check_account(ctx)
    for n in ctx.account.get("network_policies") or []:
        if n["network_policy_id"] == ctx.params["policy_id"]:
            item = copy.deepcopy(n)
            item["account_id"] = ctx.account["id"]
            return item
    raise not_found(f"Network policy {ctx.params['policy_id']} does not exist.")


# ------------------------------------------------------------------------------------ metastores


@route(f"{A}/metastores")
def metastores_list(ctx: Ctx):
    _check_account(ctx)
    return {"metastores": [render_metastore(ctx, m) for m in ctx.account.get("metastores") or []]}


def _metastore_by_id(ctx: Ctx) -> dict:
    _check_account(ctx)
    for m in ctx.account.get("metastores") or []:
        if m["metastore_id"] == ctx.params["metastore_id"]:
            return m
    raise not_found(f"Metastore {ctx.params['metastore_id']} does not exist.", "METASTORE_DOES_NOT_EXIST")


@route(f"{A}/metastores/{{metastore_id}}")
def metastores_get(ctx: Ctx):
    return {"metastore_info": render_metastore(ctx, _metastore_by_id(ctx))}


@route(f"{A}/metastores/{{metastore_id}}/workspaces")
def metastore_workspaces(ctx: Ctx):
    m = _metastore_by_id(ctx)
    return {"workspace_ids": [ws["id"] for ws in ctx.account.get("workspaces") or [] if ws.get("metastore") == m["name"]]}
