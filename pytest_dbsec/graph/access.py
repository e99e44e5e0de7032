"""What a principal can reach, and through which chain (issue 5, semantics: shared/access-model.md).

Pure data: built from an Inventory, answers with plain JSON-able records. Every record carries
``via``, the list of names from the principal to the grantee, so ``" → ".join(via)`` explains it.

Scoping of membership: account groups (and ``account users``) are one account-wide graph; the
workspace-local groups ``admins``/``users`` (and legacy local groups) exist once per workspace and
share their names across workspaces, so workspace-scoped answers (roles, object ACLs, secret scopes)
use a per-workspace closure = account edges + that workspace's SCIM edges. Unity Catalog answers use
the account closure only (workspace-local groups cannot hold UC grants).

Conservative choices (the model marks them [verify]); records carry a ``note`` where they apply:
* nested groups give workspace access through an assignment (assumed, as the emulator does);
* MANAGE granted on a catalog/schema is reported as inherited by its children;
* object ACLs are evaluated with every group the workspace knows, including account groups not
  assigned to the workspace (the announced change makes that true; over-reporting is the safe side);
* a job or pipeline with no run_as runs as its creator;
* grants on an ISOLATED catalog are reported even though its workspace bindings are not in the
  inventory (they only work from bound workspaces).

Public API: ``AccessGraph.from_inventory(inv, acl_groups="all"|"workspace")``, ``.gaps``,
``.resolve(name)``, ``.blast_radius(principal)``, ``.who_can_reach(resource)``,
``.holds(principal, resource, privilege)``, ``.can_read(principal, table)``, ``.cycles()``.
"""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass, field

from ..inventory import ACCOUNT, OK, Inventory, Scope
from . import ACCOUNT_USERS, GROUP, SERVICE_PRINCIPAL, USER, Principal
from . import escalation

# privileges ALL_PRIVILEGES does NOT stand for: it excludes them to avoid exfiltration/escalation
NOT_IN_ALL_PRIVILEGES = frozenset({"MANAGE", "EXTERNAL_USE_SCHEMA", "EXTERNAL_USE_LOCATION"})
OWNER = "OWNER"

# sections each scope kind contributes; a missing one becomes a gap in every answer
# What the graph is built from. The core answers "which groups, workspaces, data and credentials";
# the object sections (per-object ACLs, run_as, secret scopes) cost one call per object, so callers
# may leave them out. A required section that is missing is a gap: the answer says it is incomplete.
ACCOUNT_SECTIONS = ("account_identities", "account_workspaces", "sp_secrets")
CORE_WORKSPACE_SECTIONS = ("identities", "uc", "tokens")
OBJECT_WORKSPACE_SECTIONS = ("object_acls", "jobs", "secrets", "workspace_acls")
# roles on groups and service principals (group manager, SP user/manager): one call per identity, read
# for escalation answers only; missing, it is a gap (escalation findings may be missing edges)
ROLE_ACCOUNT_SECTIONS = ("identity_roles",)
WORKSPACE_SECTIONS = CORE_WORKSPACE_SECTIONS + OBJECT_WORKSPACE_SECTIONS
# optional, read when present: object names (compute, workspace_objects) and the tokens/passwords ACL
NAMING_WORKSPACE_SECTIONS = ("compute", "workspace_objects", "authorization_acls")

# Permissions API type -> (section, list key, id field, name field): names for object ACL records
_OBJECT_NAMES = (
    ("clusters", "compute", "clusters", "cluster_id", "cluster_name"),
    ("cluster-policies", "compute", "cluster_policies", "policy_id", "name"),
    ("instance-pools", "compute", "instance_pools", "instance_pool_id", "instance_pool_name"),
    ("jobs", "jobs", "jobs", "job_id", None),  # settings.name
    ("pipelines", "jobs", "pipelines", "pipeline_id", "name"),
    ("warehouses", "workspace_objects", "warehouses", "id", "name"),
    ("serving-endpoints", "workspace_objects", "serving_endpoints", "id", "name"),
    ("dashboards", "workspace_objects", "dashboards", "dashboard_id", "display_name"),
    ("repos", "workspace_objects", "repos", "id", "path"),
)


class UnknownPrincipal(KeyError):
    pass


class UnknownResource(KeyError):
    pass


def _name_of(entry: dict, kind: str) -> str:
    if kind == USER:
        return entry.get("userName") or entry["id"]
    if kind == SERVICE_PRINCIPAL:
        return entry.get("applicationId") or entry["id"]  # how grants, ACLs and run_as name an SP
    return entry.get("displayName") or entry["id"]


def _acl_grantee(ace: dict) -> str | None:
    return ace.get("user_name") or ace.get("service_principal_name") or ace.get("group_name")


@dataclass
class _Closure:
    """Direct member -> group edges; chains are shortest paths found by a visited-set BFS, so a
    cycle of groups is walked once and never loops."""

    parents: dict[str, set[str]] = field(default_factory=dict)

    def add(self, member: str, group: str) -> None:
        if member != group:
            self.parents.setdefault(member, set()).add(group)

    def merged(self, other: "_Closure") -> "_Closure":
        out = _Closure({k: set(v) for k, v in self.parents.items()})
        for m, gs in other.parents.items():
            out.parents.setdefault(m, set()).update(gs)
        return out

    def chains(self, name: str) -> dict[str, list[str]]:
        """group -> shortest chain [name, ..., group]; includes name itself -> [name]."""
        out = {name: [name]}
        queue = deque([name])
        while queue:
            cur = queue.popleft()
            for g in sorted(self.parents.get(cur, ())):  # sorted: stable chains between runs
                if g not in out:
                    out[g] = out[cur] + [g]
                    queue.append(g)
        return out

    def members(self, group: str) -> dict[str, list[str]]:
        """member -> chain [member, ..., group] for everything transitively inside group."""
        children: dict[str, set[str]] = {}
        for m, gs in self.parents.items():
            for g in gs:
                children.setdefault(g, set()).add(m)
        out = {group: [group]}
        queue = deque([group])
        while queue:
            cur = queue.popleft()
            for m in sorted(children.get(cur, ())):
                if m not in out:
                    out[m] = [m] + out[cur]
                    queue.append(m)
        del out[group]
        return out


@dataclass
class _Workspace:
    name: str
    id: int | str | None
    closure: _Closure
    sections: dict[str, dict]  # name -> data, only sections with status ok
    local_groups: set[str]


class AccessGraph:
    def __init__(self) -> None:
        self.principals: dict[str, Principal] = {}  # by name (userName, applicationId, group name)
        self._by_id: dict[str, Principal] = {}
        self.account_closure = _Closure()
        self.workspaces: dict[str, _Workspace] = {}
        self.gaps: list[str] = []
        self.acl_groups = "all"
        self.roles: dict[str, set[str]] = {}  # account SCIM roles (account_admin) by principal name
        # workspace name -> [(principal name, level)] from the account's permission assignments
        self.assignments: dict[str, list[tuple[str, str]]] = {}
        self.workspace_ids: dict[str, int | str | None] = {}
        self.sp_secrets: dict[str, list[dict]] | None = None
        self.rule_sets: list[dict] = []  # identity_roles: roles granted on groups and service principals
        # Unity Catalog, deduplicated per metastore (several workspaces share one)
        self.securables: dict[tuple[str, str], dict] = {}  # (TYPE, full_name) -> {owner, parent, metastore}
        self.grants: dict[tuple[str, str], list[dict]] = {}
        self.metastores: dict[str, str] = {}  # metastore_id -> the workspace whose uc section was used

    # -- building -------------------------------------------------------------------------------

    @classmethod
    def from_inventory(cls, inventory: Inventory, acl_groups: str = "all") -> "AccessGraph":
        """``acl_groups``: which groups count for workspace-scoped answers (roles via ``admins``,
        object ACLs, secret scopes). ``"all"`` (default, conservative): every account group the
        principal is in, as Databricks has announced it will behave; ``"workspace"``: only the
        membership the workspace's own SCIM shows (today's behaviour for groups not assigned)."""
        if acl_groups not in ("all", "workspace"):
            raise ValueError(f"acl_groups must be 'all' or 'workspace', not {acl_groups!r}")
        g = cls()
        g.acl_groups = acl_groups
        acc = inventory.account
        acc_data = g._ok_sections(acc, ACCOUNT_SECTIONS) if acc is not None else {}
        if acc is None:
            g.gaps.append(f"{ACCOUNT}: no account scope (account groups, workspace assignments and "
                          "SP OAuth secrets not read)")
        if "account_identities" in acc_data:
            g._add_identities(acc_data["account_identities"], g.account_closure, local=None)
        if "account_workspaces" in acc_data:
            for ws in acc_data["account_workspaces"].get("workspaces") or []:
                name = ws.get("workspace_name")
                g.workspace_ids[name] = ws.get("workspace_id")
                g.assignments[name] = _assignments(ws.get("permission_assignments"))
        if "sp_secrets" in acc_data:
            g.sp_secrets = acc_data["sp_secrets"].get("secrets") or {}
        if acc is not None:
            g.rule_sets = (g._ok_sections(acc, ROLE_ACCOUNT_SECTIONS).get("identity_roles") or {}).get("rule_sets") or []
        for scope in inventory.workspaces.values():
            g._add_workspace(scope, have_account_ids="account_identities" in acc_data)
        return g

    def _ok_sections(self, scope: Scope, names) -> dict[str, dict]:
        out = {}
        for name in names:
            sec = scope.section(name)
            if sec.status == OK:
                out[name] = sec.data or {}
            else:
                why = sec.error if sec.status == "error" else "not collected"
                self.gaps.append(f"{scope.name}/{name}: {why}")
        return out

    def _add_principal(self, p: Principal) -> Principal:
        have = self.principals.setdefault(p.name, p)
        self._by_id.setdefault(p.id, have)
        return have

    def _add_identities(self, data: dict, closure: _Closure, local: set[str] | None) -> None:
        """SCIM users/SPs/groups -> principals and member->group edges. ``local`` collects the names of
        workspace-local groups (they are not account principals and stay out of self.principals)."""
        ids: dict[str, str] = {}
        for kind, key in ((USER, "users"), (SERVICE_PRINCIPAL, "service_principals"), (GROUP, "groups")):
            for e in data.get(key) or []:
                name = _name_of(e, kind)
                ids[str(e["id"])] = name
                if kind == GROUP and (e.get("meta") or {}).get("resourceType") == "WorkspaceGroup":
                    if local is not None:
                        local.add(name)
                    continue
                self._add_principal(Principal(kind, name, str(e["id"]), e.get("displayName") or "",
                                              e.get("active", True) is not False, e.get("externalId")))
                roles = {r.get("value") for r in e.get("roles") or [] if isinstance(r, dict)}
                if roles:
                    self.roles.setdefault(name, set()).update(roles)
        for e in data.get("groups") or []:
            for m in e.get("members") or []:
                if str(m.get("value")) in ids:
                    closure.add(ids[str(m["value"])], ids[str(e["id"])])
        for key in ("users", "service_principals", "groups"):
            for e in data.get(key) or []:
                for parent in e.get("groups") or []:
                    if str(parent.get("value")) in ids:
                        closure.add(ids[str(e["id"])], ids[str(parent["value"])])

    def _add_workspace(self, scope: Scope, have_account_ids: bool) -> None:
        data = self._ok_sections(scope, WORKSPACE_SECTIONS)
        self.gaps += escalation.tree_gaps(scope.name, data.get("workspace_acls"))
        for extra in (*NAMING_WORKSPACE_SECTIONS, "admin_assignments"):
            if scope.section(extra).status == OK:  # optional: names of objects, a second assignment source
                data[extra] = scope.section(extra).data or {}
        ws_closure, local = _Closure(), set()
        if "identities" in data:
            self._add_identities(data["identities"], ws_closure, local)
        # workspace view = account edges + this workspace's own (its local groups, and account edges the
        # account section could not give us)
        closure = self.account_closure.merged(ws_closure) if self.acl_groups == "all" else ws_closure
        if not have_account_ids:
            # fall back to what workspace SCIM shows of account groups, for UC answers too
            self.account_closure = self.account_closure.merged(
                _Closure({m: {g for g in gs if g not in local} for m, gs in ws_closure.parents.items()
                          if m not in local}))
        ws_id = self.workspace_ids.get(scope.name) or (data.get("admin_assignments") or {}).get("workspace_id") \
            or scope.id
        self.workspace_ids[scope.name] = ws_id
        if scope.name not in self.assignments and "admin_assignments" in data:
            self.assignments[scope.name] = _assignments(data["admin_assignments"].get("permission_assignments"))
        if scope.name not in self.assignments:
            self.gaps.append(f"{scope.name}/workspace assignments: neither account_workspaces nor "
                             "admin_assignments was read (USER/ADMIN assignments unknown)")
        self.workspaces[scope.name] = _Workspace(scope.name, ws_id, closure, data, local)
        uc = data.get("uc")
        if uc and uc.get("assignment") is not None:
            self._add_uc(scope.name, uc)

    def _add_uc(self, ws_name: str, uc: dict) -> None:
        ms = uc.get("metastore") or {}
        mid = ms.get("metastore_id") or (uc.get("assignment") or {}).get("metastore_id")
        if mid in self.metastores:
            return  # same metastore already read through another workspace
        self.metastores[mid] = ws_name

        def put(typ, full, owner, parent, isolated=False):
            self.securables[(typ, full)] = {"owner": owner, "parent": parent, "metastore": mid,
                                            "isolated": isolated}

        put("METASTORE", mid, ms.get("owner"), None)  # metastore grants are not inherited: no children
        for c in uc.get("catalogs") or []:
            put("CATALOG", c["name"], c.get("owner"), None, c.get("isolation_mode") == "ISOLATED")
        for s in uc.get("schemas") or []:
            put("SCHEMA", s["full_name"], s.get("owner"), ("CATALOG", s["catalog_name"]))
        for t in uc.get("tables") or []:
            put("TABLE", t["full_name"], t.get("owner"), ("SCHEMA", f"{t['catalog_name']}.{t['schema_name']}"))
        for x in uc.get("external_locations") or []:
            put("EXTERNAL_LOCATION", x["name"], x.get("owner"), None)
        for x in uc.get("storage_credentials") or []:
            put("STORAGE_CREDENTIAL", x["name"], x.get("owner"), None)
        for key, assignments in (uc.get("grants") or {}).items():
            typ, _, full = key.partition("/")
            self.grants[(typ.upper(), full)] = list(assignments or [])
            # a securable with grants but not in the lists (a type the lists do not cover) still counts
            self.securables.setdefault((typ.upper(), full), {"owner": None, "parent": None, "metastore": mid,
                                                             "isolated": False})

    # -- principals -----------------------------------------------------------------------------

    def resolve(self, name: str) -> Principal:
        """userName, SP applicationId, group name, SCIM id, or else an SP's display name."""
        p = self.principals.get(name) or self._by_id.get(name)
        if p is None:
            sps = [q for q in self.principals.values() if q.kind == SERVICE_PRINCIPAL and q.display_name == name]
            if len(sps) > 1:
                raise UnknownPrincipal(f"{name!r} is the display name of {len(sps)} service principals: "
                                       "give the applicationId")
            p = sps[0] if sps else None
        if p is None:
            raise UnknownPrincipal(f"no user, service principal or group named {name!r}")
        return p

    def _reach(self, p: Principal, closure: _Closure) -> dict[str, list[str]]:
        """Every grantee name that stands for p -> the chain from p to it."""
        reach = closure.chains(p.name)
        if p.kind in (USER, SERVICE_PRINCIPAL):
            reach.setdefault(ACCOUNT_USERS, [p.name, ACCOUNT_USERS])  # every user and SP of the account
        return reach

    # -- queries --------------------------------------------------------------------------------

    def blast_radius(self, principal: str) -> dict:
        p = self.resolve(principal)
        reach = self._reach(p, self.account_closure)
        out = {
            "principal": {"kind": p.kind, "name": p.name, "id": p.id, "display_name": p.display_name,
                          "active": p.active},
            "group_memberships": [{"group": g, "chain": c, "workspace_name": None}
                                  for g, c in sorted(reach.items()) if g != p.name],
            "workspace_roles": [], "uc_grants": self._uc_grants(reach),
            "workspace_object_permissions": [], "run_as": [], "credentials": [], "secret_scopes": [],
        }
        for ws in self.workspaces.values():
            ws_reach = self._reach(p, ws.closure)
            for g in sorted(ws.local_groups & ws_reach.keys()):
                out["group_memberships"].append({"group": g, "chain": ws_reach[g], "workspace_name": ws.name})
            out["workspace_roles"] += self._workspace_roles(ws, reach, ws_reach)
            objects = self._object_permissions(ws, ws_reach)
            objects += escalation.tree_permissions(ws.name, ws.id, ws.sections.get("workspace_acls"), ws_reach,
                                                   {(r["object_type"], r["object_id"]) for r in objects})
            out["workspace_object_permissions"] += objects
            out["secret_scopes"] += self._secret_scopes(ws, ws_reach)
            out["run_as"] += self._run_as(ws, p)
            out["credentials"] += self._tokens(ws, p)
        if self.sp_secrets is not None and p.kind == SERVICE_PRINCIPAL:
            for s in self.sp_secrets.get(p.id) or []:
                out["credentials"].append({"type": "oauth_secret", "id": s.get("id"), "status": s.get("status"),
                                           "create_time": s.get("create_time"),
                                           "expire_time": s.get("expire_time"), "workspace_name": None})
        out["escalation_findings"] = self._escalations(p, reach, out)
        out["errors"] = list(self.gaps)
        out["complete"] = not self.gaps
        return out

    def _escalations(self, p: Principal, reach, br: dict) -> list[dict]:
        """What the principal can turn into more access (shared/access-model.md 1.5). One finding per
        (kind, target), with the shortest path. The edges through roles on identities, code a job runs
        and compute with a cloud identity are in graph/escalation.py."""
        out, seen = [], set()

        def add(kind, severity, target, reason, path):
            if (kind, target) not in seen:
                seen.add((kind, target))
                out.append({"kind": kind, "severity": severity, "target": target, "reason": reason, "path": path})

        for grantee, via in sorted(reach.items(), key=lambda kv: len(kv[1])):
            if "account_admin" in self.roles.get(grantee, ()):
                add("account_admin", "critical", "account", "account admin: everything, incl. metastore admins", via)
        for r in br["workspace_roles"]:
            if r["permission_level"] == "ADMIN":
                add("workspace_admin", "critical", r["workspace_name"],
                    "workspace admin: CAN_MANAGE on every object, can change job owners/run_as", r["via"])
        for r in br["uc_grants"]:
            target = f"{r['securable_type'].lower()} {r['full_name']}"
            if r["ownership"] and r["securable_type"] == "METASTORE":
                add("metastore_admin", "critical", target, "metastore admin (owner): latent full UC access", r["via"])
            elif r["ownership"]:
                add("owner", "high", target, "owner: can grant itself any privilege on it and on its children",
                    r["via"])
            elif r["privilege"] == "MANAGE" and r["inherited_from"] is None:
                add("manage", "high", target, "MANAGE: latent access, one GRANT away", r["via"])
            elif r["privilege"] == "ALL_PRIVILEGES" and r["inherited_from"] is None:
                add("all_privileges", "high", target, "ALL_PRIVILEGES: every data privilege (not MANAGE)", r["via"])
        for r in br["workspace_object_permissions"]:
            if r["object_type"] not in ("jobs", "pipelines"):
                continue
            run_as = self._run_as_of(r["workspace_name"], r["object_type"], r["object_id"])
            if not run_as or run_as == p.name:
                continue
            level = r["permission_level"]
            if level in ("CAN_MANAGE", "IS_OWNER"):
                admin = self._is_workspace_admin(run_as, r["workspace_name"])
                add("run_as_takeover", "critical" if admin else "high",
                    f"{r['object_type'][:-1]} {r['object_name'] or r['object_id']} ({r['workspace_name']})",
                    f"{level} on a {r['object_type'][:-1]} that runs as {run_as}"
                    + (" (a workspace admin)" if admin else "") + ": edit it and code runs as that identity",
                    r["via"])
            elif level in ("CAN_MANAGE_RUN", "CAN_RUN"):
                add("run_as_trigger", "medium",
                    f"{r['object_type'][:-1]} {r['object_name'] or r['object_id']} ({r['workspace_name']})",
                    f"{level}: can trigger runs that execute as {run_as}", r["via"])
        for r in br["secret_scopes"]:
            if r["permission"] in ("MANAGE", "WRITE"):
                add(f"secret_scope_{r['permission'].lower()}", "high" if r["permission"] == "MANAGE" else "medium",
                    f"secret scope {r['scope']} ({r['workspace_name']})",
                    f"{r['permission']} on a secret scope: poison" + (" or re-ACL" if r["permission"] == "MANAGE"
                                                                     else "") + " its secrets", r["via"])
        # roles on identities, code a job runs, compute that runs as a cloud identity (graph/escalation.py)
        objects = br["workspace_object_permissions"]
        power_of = functools.lru_cache(maxsize=None)(self.power_of)  # one walk per target identity
        new = escalation.identity_role_findings(p.name, self.rule_sets, reach, power_of)
        new += escalation.code_edit_findings(
            p.name, objects, {n: escalation.code_refs(ws.sections.get("jobs")) for n, ws in self.workspaces.items()},
            power_of)
        new += escalation.cloud_identity_findings(
            objects, {n: ws.sections.get("compute") or {} for n, ws in self.workspaces.items()})
        for f in new:
            if (f["kind"], f["target"]) not in seen:
                seen.add((f["kind"], f["target"]))
                out.append(f)
        return out

    def power_of(self, name: str, ws_name: str | None = None) -> dict:
        """What an identity holds, for the severity of an edge leading to it: account admin, the
        workspaces it administers (``ws_name``: only that one), metastores it owns, and how many Unity
        Catalog privileges/ownerships it has beyond what `account users` gives everyone."""
        p = self.principals.get(name)
        if p is None:
            return {}
        reach = self._reach(p, self.account_closure)
        uc = [r for r in self._uc_grants(reach) if ACCOUNT_USERS not in r["via"]]
        return {
            "account_admin": any("account_admin" in self.roles.get(g, ()) for g in reach),
            "workspace_admin": [ws.name for ws in self.workspaces.values() if ws_name in (None, ws.name)
                                and self._is_workspace_admin(name, ws.name)],
            "metastore_admin": [r["full_name"] for r in uc if r["ownership"] and r["securable_type"] == "METASTORE"],
            "uc_grants": len(uc),
        }

    def _run_as_of(self, ws_name: str, obj_type: str, obj_id: str) -> str | None:
        data = self.workspaces[ws_name].sections.get("jobs") or {}
        if obj_type == "jobs":
            for j in data.get("jobs") or []:
                if str(j.get("job_id")) == obj_id:
                    ra = (j.get("settings") or {}).get("run_as") or {}
                    return (ra.get("user_name") or ra.get("service_principal_name") or j.get("run_as_user_name")
                            or j.get("creator_user_name"))
        for pl in data.get("pipelines") or []:
            if str(pl.get("pipeline_id")) == obj_id:
                ra = pl.get("run_as") or {}
                return (ra.get("user_name") or ra.get("service_principal_name") or pl.get("run_as_user_name")
                        or pl.get("creator_user_name"))
        return None

    def _is_workspace_admin(self, name: str, ws_name: str) -> bool:
        p = self.principals.get(name)
        if p is None:
            return False
        ws = self.workspaces[ws_name]
        roles = self._workspace_roles(ws, self._reach(p, self.account_closure), self._reach(p, ws.closure))
        return any(r["permission_level"] == "ADMIN" for r in roles)

    def _workspace_roles(self, ws: _Workspace, reach, ws_reach) -> list[dict]:
        out, seen = [], set()

        def add(level, via, source, note=None):
            if (level, tuple(via)) in seen:
                return
            seen.add((level, tuple(via)))
            rec = {"workspace_id": ws.id, "workspace_name": ws.name, "permission_level": level,
                   "via": via, "source": source}
            if note:
                rec["note"] = note
            out.append(rec)

        for grantee, level in self.assignments.get(ws.name, []):
            if grantee in reach:
                add(level, reach[grantee], "permission assignment",
                    "nested-group inheritance of workspace assignments is assumed [verify]"
                    if len(reach[grantee]) > 2 else None)
        if "admins" in ws.local_groups and "admins" in ws_reach:
            add("ADMIN", ws_reach["admins"], "member of the workspace admins group")
        if not out and "users" in ws.local_groups and "users" in ws_reach:
            add("USER", ws_reach["users"], "member of the workspace users group")
        return out

    def _object_permissions(self, ws: _Workspace, ws_reach) -> list[dict]:
        acls = (ws.sections.get("object_acls") or {}).get("acls") or {}
        names = _object_names(ws.sections)
        auth = ws.sections.get("authorization_acls") or {}
        items = list(acls.items()) + [(f"authorization/{k}", v) for k, v in auth.items() if isinstance(v, dict)]
        out = []
        for key, acl in items:
            obj_type, _, obj_id = key.partition("/")
            for ace in acl.get("access_control_list") or []:
                grantee = _acl_grantee(ace)
                if grantee not in ws_reach:
                    continue
                for perm in ace.get("all_permissions") or []:
                    out.append({"object_type": obj_type, "object_id": obj_id,
                                "object_name": names.get((obj_type, obj_id)),
                                "permission_level": perm.get("permission_level"),
                                "workspace_name": ws.name, "workspace_id": ws.id, "via": ws_reach[grantee],
                                "inherited": bool(perm.get("inherited")),
                                "inherited_from_object": perm.get("inherited_from_object") or None})
        return out

    def _secret_scopes(self, ws: _Workspace, ws_reach) -> list[dict]:
        out = []
        for scope in (ws.sections.get("secrets") or {}).get("scopes") or []:
            for ace in scope.get("acls") or []:
                if ace.get("principal") in ws_reach:
                    out.append({"scope": scope.get("name"), "permission": ace.get("permission"),
                                "workspace_name": ws.name, "via": ws_reach[ace["principal"]]})
        return out

    def _run_as(self, ws: _Workspace, p: Principal) -> list[dict]:
        out = []
        data = ws.sections.get("jobs") or {}
        for kind, items in (("job", data.get("jobs") or []), ("pipeline", data.get("pipelines") or [])):
            for obj in items:
                settings = (obj.get("settings") or {}) if kind == "job" else obj
                ra = settings.get("run_as") or {}
                who = ra.get("user_name") or ra.get("service_principal_name") or obj.get("run_as_user_name")
                source = "run_as"
                if not who:
                    who, source = obj.get("creator_user_name"), "creator (no run_as set: runs as creator)"
                if who == p.name:
                    out.append({"kind": kind, "id": str(obj.get("job_id") or obj.get("pipeline_id")),
                                "name": settings.get("name") or obj.get("name"),
                                "workspace_name": ws.name, "run_as": who, "source": source})
        return out

    def _tokens(self, ws: _Workspace, p: Principal) -> list[dict]:
        out = []
        for t in (ws.sections.get("tokens") or {}).get("token_infos") or []:
            if str(t.get("owner_id")) == p.id:
                expiry = t.get("expiry_time")
                out.append({"type": "pat", "token_id": t.get("token_id"), "workspace_name": ws.name,
                            "comment": t.get("comment"), "creation_time": t.get("creation_time"),
                            "expiry": None if expiry in (None, -1) else expiry, "never_expires": expiry == -1,
                            "created_by": t.get("created_by_username")})
        return out

    # -- Unity Catalog --------------------------------------------------------------------------

    def _chain_of(self, key: tuple[str, str]) -> list[tuple[str, str]]:
        """The securable, then the ancestors it inherits from (schema, catalog; never the metastore)."""
        out = [key]
        parent = self.securables.get(key, {}).get("parent")
        while parent is not None:
            out.append(parent)
            parent = self.securables.get(parent, {}).get("parent")
        return out

    def _grants_reaching(self, key: tuple[str, str]):
        """(grantee, privilege, inherited_from or None, note) for direct and inherited grants on key."""
        for i, anc in enumerate(self._chain_of(key)):
            inherited = None if i == 0 else f"{anc[0].lower()} {anc[1]}"
            for a in self.grants.get(anc, []):
                for priv in a.get("privileges") or []:
                    note = None
                    if inherited and priv == "MANAGE":
                        note = "MANAGE inheritance from a parent is assumed [verify]"
                    yield a.get("principal"), priv, inherited, note

    def _uc_record(self, key, privilege, via, inherited, note, ownership=False) -> dict:
        rec = {"securable_type": key[0], "full_name": key[1], "privilege": privilege, "via": via,
               "inherited_from": inherited, "ownership": ownership}
        catalog = self._chain_of(key)[-1]
        if catalog[0] == "CATALOG" and self.securables.get(catalog, {}).get("isolated"):
            # workspace bindings are not in the inventory: the grant is reported (the safe side), but
            # it is only usable from the workspaces the catalog is bound to
            note = "; ".join(filter(None, [note, f"catalog {catalog[1]} is ISOLATED: usable only from its "
                                                 "bound workspaces (bindings not read)"]))
        if note:
            rec["note"] = note
        return rec

    def _uc_grants(self, reach) -> list[dict]:
        out = []
        for key, info in sorted(self.securables.items()):
            owner = info.get("owner")
            if owner in reach:
                # ownership is its own record: all privileges on THIS object and the right to grant on
                # children, but no privilege on the children themselves
                out.append(self._uc_record(key, OWNER, reach[owner], None,
                                           "metastore admin" if key[0] == "METASTORE" else None, True))
            for grantee, priv, inherited, note in self._grants_reaching(key):
                if grantee in reach:
                    out.append(self._uc_record(key, priv, reach[grantee], inherited, note))
        return out

    def holds(self, principal: str, resource: str, privilege: str) -> dict | None:
        """The record by which the principal holds ``privilege`` on the resource (directly, inherited,
        through ALL_PRIVILEGES, or as its owner), or None. ALL_PRIVILEGES never stands for MANAGE or
        EXTERNAL_USE_*; ownership counts on the owned object only."""
        key = self.find_securable(resource)
        records = [r for r in self._uc_grants(self._reach(self.resolve(principal), self.account_closure))
                   if (r["securable_type"], r["full_name"]) == key]
        for r in records:
            if r["privilege"] == privilege:
                return r
        for r in records:
            if privilege in NOT_IN_ALL_PRIVILEGES and not (r["ownership"] and privilege == "MANAGE"):
                continue
            if r["privilege"] in ("ALL_PRIVILEGES", OWNER):
                return r
        return None

    def can_read(self, principal: str, table: str) -> dict:
        """Reading c.s.t needs USE_CATALOG on c, USE_SCHEMA on c.s and SELECT on the table, each
        granted directly or inherited; ``requires`` says which link holds, and through what."""
        typ, full = self.find_securable(table)
        if typ != "TABLE":
            raise UnknownResource(f"{table!r} is a {typ.lower()}, not a table")
        catalog, schema, _ = full.split(".", 2)
        requires = []
        for priv, on in (("USE_CATALOG", catalog), ("USE_SCHEMA", f"{catalog}.{schema}"), ("SELECT", full)):
            requires.append({"privilege": priv, "on": on, "held_by": self.holds(principal, on, priv)})
        return {"table": full, "allowed": all(r["held_by"] for r in requires), "requires": requires}

    def find_securable(self, resource: str) -> tuple[str, str]:
        for typ in ("TABLE", "SCHEMA", "CATALOG", "EXTERNAL_LOCATION", "STORAGE_CREDENTIAL", "METASTORE"):
            if (typ, resource) in self.securables:
                return typ, resource
        raise UnknownResource(f"no catalog, schema, table or other securable named {resource!r}")

    def who_can_reach(self, resource: str) -> list[dict]:
        """Every principal holding a privilege on the resource (directly, through groups, through
        ``account users``, inherited from catalog/schema), or owning it."""
        key = self.find_securable(resource)
        grants = []
        owner = self.securables[key].get("owner")
        if owner:
            grants.append((owner, OWNER, None, None, True))
        grants += [(g, p, i, n, False) for g, p, i, n in self._grants_reaching(key)]
        out = []
        for grantee, priv, inherited, note, ownership in grants:
            for name, via in self._expand(grantee):
                p = self.principals.get(name)
                kind = p.kind if p else (GROUP if name == ACCOUNT_USERS else "unknown")  # unknown: not in SCIM
                rec = {"principal": name, "principal_kind": kind,
                       "display_name": p.display_name if p else None,
                       "everyone": grantee == ACCOUNT_USERS,  # top-severity exposure
                       **self._uc_record(key, priv, via, inherited, note, ownership)}
                out.append(rec)
        return out

    def _expand(self, grantee: str) -> list[tuple[str, list[str]]]:
        """The grantee itself and, for a group, everyone in it (with the chain member -> grantee)."""
        if grantee == ACCOUNT_USERS:
            return [(ACCOUNT_USERS, [ACCOUNT_USERS])] + [
                (n, [n, ACCOUNT_USERS]) for n, p in sorted(self.principals.items())
                if p.kind in (USER, SERVICE_PRINCIPAL)]
        return [(grantee, [grantee])] + sorted(self.account_closure.members(grantee).items())

    def cycles(self) -> list[list[str]]:
        """Groups that contain themselves through nesting (a hygiene finding), one sorted list each."""
        out, covered = [], set()
        for g in sorted(n for n, p in self.principals.items() if p.kind == GROUP):
            if g in covered:
                continue
            up = self.account_closure.chains(g)
            ring = sorted(x for x in up if x != g and g in self.account_closure.chains(x))
            if ring:
                ring = sorted({g, *ring})
                covered.update(ring)
                out.append(ring)
        return out


def _assignments(raw) -> list[tuple[str, str]]:
    out = []
    for a in raw or []:
        pr = a.get("principal") or {}
        name = pr.get("user_name") or pr.get("service_principal_name") or pr.get("group_name")
        for level in a.get("permissions") or []:
            if name:
                out.append((name, level))
    return out


def _object_names(sections: dict) -> dict[tuple[str, str], str]:
    out = {}
    for obj_type, sec, key, id_field, name_field in _OBJECT_NAMES:
        for obj in (sections.get(sec) or {}).get(key) or []:
            if obj.get(id_field) is None:
                continue
            name = (obj.get("settings") or {}).get("name") if name_field is None else obj.get(name_field)
            out[(obj_type, str(obj[id_field]))] = name
    return out
