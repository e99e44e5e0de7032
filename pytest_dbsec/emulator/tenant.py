"""Tenant files: loading, validation, and the conveniences the loader expands.

A tenant describes one Databricks account as the REST APIs would show it. Format version 1 (full
reference with examples in ``tenants/README.md``)::

    version: 1                         # required
    description: free text             # optional
    paging: {scim_max: 100, default_page: 50, max_page: 1000}   # server-side page caps
    credentials:                       # bearer tokens the emulator accepts (never listed by any API)
      - {token: dapi..., principal: <userName | SP applicationId | SP displayName>, workspace: <name>}
      - {token: ..., principal: ..., account: true}
    faults:                            # same keys as Emulator.add_fault()
      - {route: "GET /api/2.0/token-management/*", status: 429, times: 2, retry_after: 0}
    account:
      id, name, cloud (aws|azure|gcp)
      users:              [{userName, displayName, active, externalId?, roles?: [account_admin], id?}]
      service_principals: [{displayName, applicationId?, active, externalId?, roles?, id?,
                            secrets?: [{id?, status, create_time, expire_time?, update_time?}],
                            grant_rules?: [{role: roles/servicePrincipal.user|manager, principals: [names]}]}]
      groups:             [{displayName, externalId?, roles?, id?, members: [principal names],
                            grant_rules?: [{role: roles/group.manager, principals: [names]}]}]
      ip_access_lists:    [IpAccessListInfo]
      settings:           {<setting type>: <value object>}
      log_delivery:       [LogDeliveryConfiguration; workspace_ids_filter may name workspaces]
      network_policies:   [AccountNetworkPolicy]
      metastores:         [{name, owner, region, ..., grants, system_schemas, catalogs, external_locations,
                            storage_credentials, recipients}]
      workspaces:         [{name, id?, ..., metastore, assignments, admins, local_groups, conf, settings,
                            ip_access_lists, tokens, clusters, cluster_policies, instance_pools,
                            global_init_scripts, jobs, pipelines, warehouses, serving_endpoints,
                            dashboards, repos, secret_scopes, permissions, notebooks, spark_versions}]

Objects inside are written in their wire shape (the JSON keys the API returns). The loader:

* converts every time field (``creation_time``, ``expiry_time``, ``created_at``, ...) from epoch ms, an
  ISO-8601 string, or a relative string (``now``, ``-30d``, ``+90d``, ``now-12h``) to its wire type;
  ``expiry_time: -1`` stays -1;
* generates missing ids deterministically (hash of kind + names), so the same file gives the same ids;
* JSON-encodes a cluster policy ``definition`` written as a YAML mapping;
* checks every principal reference (group members, owners, grants, ACLs, run_as, token owners,
  credentials) and the enum strings the controls rely on.

Any problem raises :class:`TenantError` naming the file, the line (when loaded from a file) and the key
path, e.g. ``demo.yaml:412: account.workspaces[1].tokens[3].owner: unknown user or service principal 'x'``.

Normalisation is idempotent: the emulator re-runs it when a test edits ``emu.tenant`` in place, so new
objects may be added in the same convenient form.
"""

from __future__ import annotations

import copy
import pathlib
import re
from typing import Dict, Optional, Union

import yaml

from . import sql, timeparse, wire
from .checker import Checker, TenantError
from .identity import ACCOUNT_USERS, Directory, WorkspaceView
from .ids import gen_digits, gen_hex, gen_uuid
from .tenant_objects import (
    norm_account_objects,
    norm_metastores,
    norm_workspace_body,
    norm_workspace_header,
)

DEMO_TENANT = pathlib.Path(__file__).parent / "tenants" / "demo.yaml"
MINIMAL_TENANT = pathlib.Path(__file__).parent / "tenants" / "minimal.yaml"
ACCOUNT_TENANT = pathlib.Path(__file__).parent / "tenants" / "account.yaml"


class Tenant(dict):
    """The normalised tenant: a plain mutable dict plus where it came from."""

    source: Optional[str] = None


# --------------------------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """YAML 1.2-ish booleans (only true/false), and dates kept as strings.

    YAML 1.1 would read ``value: ON`` (a personal-compute setting) as True and ``2024-05-01`` as a date;
    both would silently change wire values.
    """


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _line_map(node, path: tuple, out: Dict[tuple, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value != "<<":
                key = k.value
                out[path + (key,)] = k.start_mark.line + 1
                _line_map(v, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _line_map(v, path + (i,), out)


def _parse_yaml(text: str, source: str):
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise TenantError(f"YAML syntax error: {e.problem or e}", source=source, line=mark.line + 1 if mark else None)
    except yaml.YAMLError as e:
        raise TenantError(f"YAML error: {e}", source=source)
    lines: Dict[tuple, int] = {}
    if node is not None:
        _line_map(node, (), lines)
    return data, lines


def load_tenant(src: Union[str, pathlib.Path, dict, "Tenant"]) -> Tenant:
    """Load and validate a tenant from a YAML file path, YAML text, or a mapping (copied).

    A :class:`Tenant` is returned as is (already normalised).
    """
    if isinstance(src, Tenant):
        return src
    lines: Dict[tuple, int] = {}
    source: Optional[str] = None
    if isinstance(src, dict):
        data = copy.deepcopy(src)
    elif isinstance(src, (str, pathlib.Path)):
        if isinstance(src, str) and "\n" in src:
            source = "<tenant text>"
            data, lines = _parse_yaml(src, source)
        else:
            p = pathlib.Path(src)
            source = str(p)
            try:
                text = p.read_text(encoding="utf-8")
            except OSError as e:
                raise TenantError(f"cannot read tenant file: {e.strerror or e}", source=source)
            data, lines = _parse_yaml(text, source)
    else:
        raise TenantError(f"expected a tenant file path or mapping, got {type(src).__name__}")
    if not isinstance(data, dict):
        raise TenantError("a tenant must be a mapping with 'version' and 'account'", source=source, line=1)
    tenant = Tenant(data)
    tenant.source = source
    normalize(tenant, lines=lines, source=source)
    return tenant


# --------------------------------------------------------------------------------------- normalise

TOP_KEYS = {"version", "description", "paging", "sql", "credentials", "faults", "account"}
ACCOUNT_KEYS = {
    "id",
    "name",
    "cloud",
    "creation_time",
    "users",
    "service_principals",
    "groups",
    "ip_access_lists",
    "settings",
    "log_delivery",
    "network_policies",
    "metastores",
    "workspaces",
    "audit_log",
}
# the account API's workspace fields, plus what the tenant describes inside a workspace
WORKSPACE_KEYS = set(wire.WORKSPACE_WIRE_FIELDS) | {
    "name",
    "id",
    "network_policy_id",
    "metastore",
    "default_catalog_name",
    "assignments",
    "admins",
    "local_groups",
    "conf",
    "conf_unsupported",
    "settings",
    "ip_access_lists",
    "tokens",
    "clusters",
    "cluster_policies",
    "instance_pools",
    "global_init_scripts",
    "jobs",
    "pipelines",
    "warehouses",
    "serving_endpoints",
    "dashboards",
    "repos",
    "secret_scopes",
    "permissions",
    "notebooks",
    "spark_versions",
}
FAULT_KEYS = {
    "route",
    "status",
    "retry_after",
    "latency_ms",
    "times",
    "error_code",
    "message",
    "rate_limit_per_s",
    "target",
}
PAGING_DEFAULTS = {"scim_max": 100, "default_page": 50, "max_page": 1000}


def _convert_times(obj, path: tuple, now: int, ck: Checker, rfc: frozenset = frozenset()) -> None:
    """Rewrite time fields in place to their wire type (see timeparse)."""
    if isinstance(obj, dict):
        for k in list(obj):
            v = obj[k]
            if k in timeparse.OPAQUE_KEYS:
                continue
            if k in timeparse.MS_KEYS and (isinstance(v, (int, float, str)) and not isinstance(v, bool)):
                if k == "expiry_time" and v in (-1, "-1"):
                    obj[k] = -1
                    continue
                try:
                    ms = timeparse.parse_time(v, now)
                except ValueError as e:
                    ck.err(path + (k,), str(e))
                if k in rfc:
                    obj[k] = timeparse.to_rfc3339(ms)
                elif k == "last_used_day":
                    obj[k] = timeparse.floor_day(ms)
                else:
                    obj[k] = ms
            elif isinstance(v, (dict, list)):
                sub_rfc = frozenset(timeparse.RFC_SECTIONS.get(k, ())) if isinstance(k, str) else frozenset()
                _convert_times(v, path + (k,), now, ck, sub_rfc or (rfc if isinstance(v, list) else frozenset()))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _convert_times(v, path + (i,), now, ck, rfc)


def normalize(tenant: dict, *, lines: Optional[Dict[tuple, int]] = None, source: Optional[str] = None, now=None):
    """Validate ``tenant`` and fill in derived values, in place. Idempotent. Raise TenantError."""
    ck = Checker(lines or {}, source)
    now = timeparse.now_ms() if now is None else now
    ck.mapping(tenant, (), TOP_KEYS)
    if tenant.get("version") != 1:
        ck.err(("version",), f"unsupported tenant format version {tenant.get('version')!r} (expected 1)")
    paging = tenant.get("paging") or {}
    ck.mapping(paging, ("paging",), set(PAGING_DEFAULTS))
    for k, dflt in PAGING_DEFAULTS.items():
        ck.integer(paging, k, ("paging",), default=dflt, minimum=1)
    tenant["paging"] = paging
    acct = tenant.get("account")
    if acct is None:
        ck.err(("account",), "required mapping is missing")
    ck.mapping(acct, ("account",), ACCOUNT_KEYS)
    ap = ("account",)
    _convert_times(acct, ap, now, ck)

    ck.string(acct, "name", ap, default="emulated-account")
    acct.setdefault("id", gen_uuid("account", acct["name"]))
    ck.string(acct, "id", ap)
    ck.enum(acct, "cloud", ap, wire.CLOUDS, default="aws")

    _norm_identities(acct, ap, ck)
    directory = Directory(acct, ck.err)
    _check_account_roles(acct, ap, ck)
    _check_rule_sets(acct, ap, ck, directory)

    ws_names = {}
    for i, ws in enumerate(ck.mappings(acct, "workspaces", ap)):
        wp = ap + ("workspaces", i)
        ck.mapping(ws, wp, WORKSPACE_KEYS)
        name = ck.string(ws, "name", wp)
        if name in ws_names:
            ck.err(wp + ("name",), f"duplicate workspace name {name!r}")
        ws_names[name] = ws
    metastores = norm_metastores(acct, ap, ck, directory)
    ws_ids = set()
    for i, ws in enumerate(acct["workspaces"]):
        wp = ap + ("workspaces", i)
        norm_workspace_header(acct, ws, wp, ck, metastores)
        if ws["id"] in ws_ids:
            ck.err(wp + ("id",), f"duplicate workspace id {ws['id']}")
        ws_ids.add(ws["id"])
        view = WorkspaceView(directory, ws, wp)
        norm_workspace_body(ws, wp, ck, directory, view)

    norm_account_objects(acct, ap, ck, directory, ws_names)
    sql.norm_audit_log(acct, ap, ck, directory, ws_names, now)
    sql.norm_sql_settings(tenant, ck)
    _norm_credentials(tenant, ck, directory, ws_names)
    _norm_faults(tenant, ck, ws_names)
    return tenant


def _norm_identities(acct: dict, ap: tuple, ck: Checker) -> None:
    user_keys = {"id", "userName", "displayName", "active", "externalId", "roles", "name", "emails", "entitlements"}
    seen = {}
    for i, u in enumerate(ck.mappings(acct, "users", ap)):
        p = ap + ("users", i)
        ck.mapping(u, p, user_keys)
        name = ck.string(u, "userName", p)
        if name.lower() in seen:
            ck.err(p + ("userName",), f"duplicate userName {name!r}")
        seen[name.lower()] = True
        u.setdefault("id", gen_digits(16, "user", name))
        u["id"] = str(u["id"])
        ck.string(u, "displayName", p, default=name)
        ck.boolean(u, "active", p, default=True)
        ck.string(u, "externalId", p, required=False)
        ck.names(u, "roles", p)
    sp_keys = {"id", "applicationId", "displayName", "active", "externalId", "roles", "secrets", "entitlements",
               "grant_rules"}
    secret_keys = {"id", "status", "create_time", "update_time", "expire_time", "secret_hash", "scopes"}
    apps = {}
    for i, s in enumerate(ck.mappings(acct, "service_principals", ap)):
        p = ap + ("service_principals", i)
        ck.mapping(s, p, sp_keys)
        dn = ck.string(s, "displayName", p)
        s.setdefault("applicationId", gen_uuid("sp", dn))
        app = ck.string(s, "applicationId", p)
        if app in apps:
            ck.err(p + ("applicationId",), f"duplicate applicationId {app!r}")
        apps[app] = True
        s.setdefault("id", gen_digits(16, "sp", app))
        s["id"] = str(s["id"])
        ck.boolean(s, "active", p, default=True)
        ck.string(s, "externalId", p, required=False)
        ck.names(s, "roles", p)
        for j, sec in enumerate(ck.mappings(s, "secrets", p)):
            sp_ = p + ("secrets", j)
            ck.mapping(sec, sp_, secret_keys)
            sec.setdefault("id", gen_hex(32, "sp-secret", app, j))
            sec.setdefault("status", "ACTIVE")
            sec.setdefault("secret_hash", gen_hex(8, "sp-secret-hash", app, j))
            if "create_time" not in sec:
                ck.err(sp_ + ("create_time",), "required time is missing")
            sec.setdefault("update_time", sec["create_time"])
    group_keys = {"id", "displayName", "externalId", "members", "roles", "entitlements", "grant_rules"}
    gnames = {}
    for i, g in enumerate(ck.mappings(acct, "groups", ap)):
        p = ap + ("groups", i)
        ck.mapping(g, p, group_keys)
        dn = ck.string(g, "displayName", p)
        if dn in gnames:
            ck.err(p + ("displayName",), f"duplicate group name {dn!r}")
        if dn == ACCOUNT_USERS:
            ck.err(p + ("displayName",), f"{ACCOUNT_USERS!r} is a built-in system group; do not declare it")
        gnames[dn] = True
        g.setdefault("id", gen_digits(16, "group", dn))
        g["id"] = str(g["id"])
        ck.string(g, "externalId", p, required=False)
        ck.names(g, "members", p)
        ck.names(g, "roles", p)


def _check_account_roles(acct, ap, ck):
    for key in ("users", "service_principals", "groups"):
        for i, o in enumerate(acct.get(key) or []):
            for j, r in enumerate(o.get("roles") or []):
                if r not in wire.ACCOUNT_ROLES:
                    ck.err(ap + (key, i, "roles", j), f"{r!r} is not one of {', '.join(sorted(wire.ACCOUNT_ROLES))}")


def _check_rule_sets(acct, ap, ck, directory: Directory) -> None:
    """``grant_rules`` on a group or service principal: its account rule set (roles on the identity)."""
    for key, roles in (("groups", wire.GROUP_RULE_SET_ROLES), ("service_principals", wire.SP_RULE_SET_ROLES)):
        for i, o in enumerate(acct.get(key) or []):
            for j, rule in enumerate(ck.mappings(o, "grant_rules", ap + (key, i))):
                rp = ap + (key, i, "grant_rules", j)
                ck.mapping(rule, rp, {"role", "principals"})
                role = ck.string(rule, "role", rp)
                if role not in roles:
                    ck.err(rp + ("role",), f"{role!r} is not one of {', '.join(sorted(roles))}")
                for k, name in enumerate(ck.names(rule, "principals", rp)):
                    directory.resolve(name, rp + ("principals", k))


def _norm_credentials(tenant, ck: Checker, directory: Directory, ws_names) -> None:
    tokens = {}
    for i, c in enumerate(ck.mappings(tenant, "credentials", ())):
        cp = ("credentials", i)
        ck.mapping(c, cp, {"token", "principal", "workspace", "account", "comment"})
        tok = ck.string(c, "token", cp)
        if tok in tokens:
            ck.err(cp + ("token",), "duplicate credential token")
        tokens[tok] = True
        p = directory.resolve(c.get("principal"), cp + ("principal",), ("user", "sp"))
        acct_scoped = ck.boolean(c, "account", cp, default=False)
        ws = c.get("workspace")
        if acct_scoped == (ws is not None):
            ck.err(cp, "a credential needs exactly one of 'workspace: <name>' or 'account: true'")
        if ws is not None:
            if ws not in ws_names:
                ck.err(cp + ("workspace",), f"unknown workspace {ws!r}")
            view = WorkspaceView(directory, ws_names[ws], ())
            if not view.is_member(p):
                ck.err(cp + ("principal",), f"{p.name!r} is not a member of workspace {ws!r} (assign it first)")


def _norm_faults(tenant, ck: Checker, ws_names) -> None:
    for i, f in enumerate(ck.mappings(tenant, "faults", ())):
        fp = ("faults", i)
        ck.mapping(f, fp, FAULT_KEYS)
        route = ck.string(f, "route", fp)
        if len(route.split(None, 1)) != 2:
            ck.err(fp + ("route",), "expected 'METHOD /path/glob', e.g. 'GET /api/2.0/token-management/*'")
        ck.integer(f, "status", fp, minimum=100)
        ck.integer(f, "retry_after", fp, minimum=0)
        ck.integer(f, "latency_ms", fp, minimum=0)
        ck.integer(f, "times", fp, minimum=0)
        if f.get("rate_limit_per_s") is not None and not isinstance(f["rate_limit_per_s"], (int, float)):
            ck.err(fp + ("rate_limit_per_s",), "expected a number")
        t = f.get("target")
        if t is not None and t != "account" and t not in ws_names:
            ck.err(fp + ("target",), f"unknown target {t!r}: use 'account' or a workspace name")
