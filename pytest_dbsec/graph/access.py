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

Scale (Databricks' limits: 10,000 users+SPs, 5,000 groups nested 10 deep, 1,500 direct parents,
1M table grants; docs/benchmark-graph.md): the graph is indexed once when built -- grants by grantee,
securables by owner, children by parent securable, per workspace ACL entries and secret ACLs by
principal, run_as by identity, tokens by owner -- so a query looks up the few names its principal
stands for instead of scanning the metastore, and its cost follows the size of its answer.

Inheritance in answers: a grant is one record where it was granted (``inherited_from`` null); on a
catalog or schema that record has ``inherited_by``, the number of schemas and tables that inherit it.
Each of those is also listed as its own record (``inherited_from`` "catalog main"), so a jq query on
a table finds what reaches it, unless one grant covers more than INHERIT_EXPAND_LIMIT of them: such a
grant is not expanded (the record's note says so; ``expand_inherited=None``, the CLI's
``--expand-inherited``, lists them all). Expanding a catalog of 100,000 tables is 100,000 records that
say nothing the one record does not, and it is what would make an answer slow and huge.

Public API: ``AccessGraph.from_inventory(inv, acl_groups="all"|"workspace")``, ``.gaps``,
``.resolve(name)``, ``.blast_radius(principal, expand_inherited=...)``, ``.who_can_reach(resource)``,
``.holds(principal, resource, privilege)``, ``.can_read(principal, table)``, ``.cycles()``.
"""

from __future__ import annotations

import functools
import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter

from ..inventory import ACCOUNT, ACL_OBJECT_TYPES, ACL_SECTIONS, OK, Inventory, Scope, acl_section
from . import ACCOUNT_USERS, GROUP, SERVICE_PRINCIPAL, USER, Membership, Principal
from . import escalation

# privileges ALL_PRIVILEGES does NOT stand for: it excludes them to avoid exfiltration/escalation
NOT_IN_ALL_PRIVILEGES = frozenset({"MANAGE", "EXTERNAL_USE_SCHEMA", "EXTERNAL_USE_LOCATION"})
OWNER = "OWNER"
# a grant on a catalog or schema is listed again on each schema and table that inherits it when it
# covers at most this many; above, only where it was granted (with inherited_by = how many it covers)
INHERIT_EXPAND_LIMIT = 1000

# sections each scope kind contributes; a missing one becomes a gap in every answer
# What the graph is built from. The core answers "which groups, workspaces, data and credentials";
# the object sections (per-object ACLs, run_as, secret scopes) cost one call per object, so callers
# may leave them out. A required section that is missing is a gap: the answer says it is incomplete.
ACCOUNT_SECTIONS = ("account_identities", "account_workspaces", "sp_secrets")
CORE_WORKSPACE_SECTIONS = ("identities", "uc", "tokens")
OBJECT_WORKSPACE_SECTIONS = (*ACL_SECTIONS, "jobs", "secrets", "workspace_acls")
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


def _acl_grantee(ace: dict) -> str | None:
    return ace.get("user_name") or ace.get("service_principal_name") or ace.get("group_name")


def _run_as_identity(obj: dict, settings: dict) -> tuple[str | None, str]:
    """(identity, source) a job or pipeline runs as; its creator when no run_as is set."""
    ra = settings.get("run_as") or {}
    who = ra.get("user_name") or ra.get("service_principal_name") or obj.get("run_as_user_name")
    if who:
        return who, "run_as"
    return obj.get("creator_user_name"), "creator (no run_as set: runs as creator)"


@dataclass
class _Workspace:
    """One workspace: its membership view and, per edge kind, an index by the principal name the
    edge starts from (built once; a query looks up the names a principal stands for)."""

    name: str
    id: int | str | None
    closure: Membership  # account edges + this workspace's own (or its own only: acl_groups="workspace")
    sections: dict[str, dict]  # name -> data, only sections with status ok
    local_groups: set[str]
    # grantee -> [(seq, object type, object id, permission entry)] from the Permissions API ACLs
    acls: dict[str, list[tuple[int, str, str, dict]]] = field(default_factory=dict)
    object_names: dict[tuple[str, str], str] = field(default_factory=dict)
    secret_acls: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)  # -> [(seq, scope, perm)]
    run_as: dict[str, list[dict]] = field(default_factory=dict)  # identity -> run_as records
    run_as_of: dict[tuple[str, str], str] = field(default_factory=dict)  # (jobs|pipelines, id) -> identity
    tokens: dict[str, list[dict]] = field(default_factory=dict)  # owner SCIM id -> token_infos
    code_refs: list[dict] = field(default_factory=list)  # workspace code jobs/pipelines run, with run_as

    def index(self) -> None:
        s = self.sections
        self.object_names = _object_names(s)
        items = [item for t in ACL_OBJECT_TYPES for item in ((s.get(acl_section(t)) or {}).get("acls") or {}).items()]
        auth = s.get("authorization_acls") or {}
        items += [(f"authorization/{k}", v) for k, v in auth.items() if isinstance(v, dict)]
        seq = 0  # answers list entries in the order they were read
        for key, acl in items:
            obj_type, _, obj_id = key.partition("/")
            for ace in acl.get("access_control_list") or []:
                grantee = _acl_grantee(ace)
                for perm in ace.get("all_permissions") or []:
                    self.acls.setdefault(grantee, []).append((seq, obj_type, obj_id, perm))
                    seq += 1
        for scope in (s.get("secrets") or {}).get("scopes") or []:
            for ace in scope.get("acls") or []:
                self.secret_acls.setdefault(ace.get("principal"), []).append(
                    (seq, scope.get("name"), ace.get("permission")))
                seq += 1
        data = s.get("jobs") or {}
        for kind, items in (("job", data.get("jobs") or []), ("pipeline", data.get("pipelines") or [])):
            for obj in items:
                settings = (obj.get("settings") or {}) if kind == "job" else obj
                who, source = _run_as_identity(obj, settings)
                obj_id = str(obj.get("job_id") or obj.get("pipeline_id"))
                self.run_as_of.setdefault((kind + "s", obj_id), who)
                self.run_as.setdefault(who, []).append(
                    {"kind": kind, "id": obj_id, "name": settings.get("name") or obj.get("name"),
                     "workspace_name": self.name, "run_as": who, "source": source})
        for t in (s.get("tokens") or {}).get("token_infos") or []:
            self.tokens.setdefault(str(t.get("owner_id")), []).append(t)
        self.code_refs = escalation.code_refs(data, self.run_as_of)


class AccessGraph:
    def __init__(self) -> None:
        self.principals: dict[str, Principal] = {}  # by name (userName, applicationId, group name)
        self._by_id: dict[str, Principal] = {}
        self._sp_by_display: dict[str, list[Principal]] | None = None
        self.account_closure = Membership()
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
        self.grants: dict[tuple[str, str], list[dict]] = {}  # securable -> its direct grants, as read
        self.metastores: dict[str, str] = {}  # metastore_id -> the workspace whose uc section was used
        # indexes, built once: a query touches only what its principal or resource leads to
        self.children: dict[tuple[str, str], list[tuple[str, str]]] = {}  # catalog -> schemas, schema -> tables
        # grantee -> [(securable, index of the assignment, index of the privilege, privilege)]
        self.grants_to: dict[str, list[tuple[tuple[str, str], int, int, str]]] = {}
        self.owned_by: dict[str, list[tuple[str, str]]] = {}  # owner -> securables
        self.isolated: dict[tuple[str, str], str] = {}  # securable in an ISOLATED catalog -> the note
        self._rank: dict[tuple[str, str], int] = {}
        self.covered: dict[tuple[str, str], int] = {}  # catalog/schema -> how many schemas and tables inherit
        self._is_admin: dict[tuple[str, str], bool] = {}
        self._everyone: list[tuple[str, list[str]]] | None = None

    # -- building -------------------------------------------------------------------------------

    @classmethod
    def from_inventory(cls, inventory: Inventory, acl_groups: str = "all") -> "AccessGraph":
        """``acl_groups``: which groups count for workspace-scoped answers (roles via ``admins``,
        object ACLs, secret scopes). ``"all"`` (default, conservative): every account group the
        principal is in, as Databricks has announced it will behave; ``"workspace"``: only the
        membership the workspace's own SCIM shows (today's behaviour for groups not assigned)."""
        if acl_groups not in ("all", "workspace"):
            raise ValueError(f"acl_groups must be 'all' or 'workspace', not {acl_groups!r}")
        with _bulk():  # millions of index entries, no cycles among them
            return cls._build(inventory, acl_groups)

    @classmethod
    def _build(cls, inventory: Inventory, acl_groups: str) -> "AccessGraph":
        g = cls()
        g.acl_groups = acl_groups
        acc = inventory.account
        acc_data = g._ok_sections(acc, ACCOUNT_SECTIONS) if acc is not None else {}
        if acc is None:
            g.gaps.append(f"{ACCOUNT}: no account scope (account groups, workspace assignments and "
                          "SP OAuth secrets not read)")
        if "account_identities" in acc_data:
            g.account_closure = Membership.from_scim(acc_data["account_identities"])
            g._add_principals(g.account_closure)
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
        g._index_uc()
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

    def _add_principals(self, m: Membership) -> None:
        """Account principals and roles from one SCIM view; workspace-local groups are not account
        principals and stay out of self.principals (they stay in that view's membership edges)."""
        for name, p in m.principals.items():
            if name not in m.local_groups:
                have = self.principals.setdefault(name, p)
                self._by_id.setdefault(p.id, have)
        for name, roles in m.roles.items():
            self.roles.setdefault(name, set()).update(roles)

    def _add_workspace(self, scope: Scope, have_account_ids: bool) -> None:
        data = self._ok_sections(scope, WORKSPACE_SECTIONS)
        self.gaps += escalation.tree_gaps(scope.name, data.get("workspace_acls"))
        for extra in (*NAMING_WORKSPACE_SECTIONS, "admin_assignments"):
            if scope.section(extra).status == OK:  # optional: names of objects, a second assignment source
                data[extra] = scope.section(extra).data or {}
        ws_closure = Membership.from_scim(data.get("identities") or {})
        local = ws_closure.local_groups
        self._add_principals(ws_closure)
        # workspace view = account edges + this workspace's own (its local groups, and account edges the
        # account section could not give us)
        closure = self.account_closure.merged(ws_closure) if self.acl_groups == "all" else ws_closure
        if not have_account_ids:
            # fall back to what workspace SCIM shows of account groups, for UC answers too
            self.account_closure = self.account_closure.merged(ws_closure, skip=local)
        ws_id = self.workspace_ids.get(scope.name) or (data.get("admin_assignments") or {}).get("workspace_id") \
            or scope.id
        self.workspace_ids[scope.name] = ws_id
        if scope.name not in self.assignments and "admin_assignments" in data:
            self.assignments[scope.name] = _assignments(data["admin_assignments"].get("permission_assignments"))
        if scope.name not in self.assignments:
            self.gaps.append(f"{scope.name}/workspace assignments: neither account_workspaces nor "
                             "admin_assignments was read (USER/ADMIN assignments unknown)")
        self.workspaces[scope.name] = ws = _Workspace(scope.name, ws_id, closure, data, local)
        ws.index()
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

    def _index_uc(self) -> None:
        self._rank = {key: i for i, key in enumerate(sorted(self.securables))}  # answers list securables in order
        for key, info in self.securables.items():
            if info["parent"] is not None:
                self.children.setdefault(info["parent"], []).append(key)
            if info["owner"]:
                self.owned_by.setdefault(info["owner"], []).append(key)
        for key, kids in self.children.items():
            kids.sort()
            self.covered[key] = len(kids) + sum(len(self.children.get(k, ())) for k in kids)
        for key, info in self.securables.items():
            if key[0] == "CATALOG" and info.get("isolated"):
                # workspace bindings are not in the inventory: grants are reported (the safe side), but
                # they are only usable from the workspaces the catalog is bound to
                note = f"catalog {key[1]} is ISOLATED: usable only from its bound workspaces (bindings not read)"
                self.isolated[key] = note
                self.isolated.update((below, note) for below, _ in self._below(key))
        for key, assignments in self.grants.items():
            for ai, a in enumerate(assignments):
                for pi, priv in enumerate(a.get("privileges") or []):
                    self.grants_to.setdefault(a.get("principal"), []).append((key, ai, pi, priv))

    # -- principals -----------------------------------------------------------------------------

    def resolve(self, name: str) -> Principal:
        """userName, SP applicationId, group name, SCIM id, or else an SP's display name."""
        p = self.principals.get(name) or self._by_id.get(name)
        if p is None:
            sps = self._sps_named(name)
            if len(sps) > 1:
                raise UnknownPrincipal(f"{name!r} is the display name of {len(sps)} service principals: "
                                       "give the applicationId")
            p = sps[0] if sps else None
        if p is None:
            raise UnknownPrincipal(f"no user, service principal or group named {name!r}")
        return p

    def _sps_named(self, display_name: str) -> list[Principal]:
        if self._sp_by_display is None:
            self._sp_by_display = {}
            for q in self.principals.values():
                if q.kind == SERVICE_PRINCIPAL:
                    self._sp_by_display.setdefault(q.display_name, []).append(q)
        return self._sp_by_display.get(display_name, [])

    def _reach(self, p: Principal, closure: Membership) -> dict[str, list[str]]:
        """Every grantee name that stands for p -> the chain from p to it."""
        reach = closure.chains(p.name)
        if p.kind in (USER, SERVICE_PRINCIPAL):
            reach.setdefault(ACCOUNT_USERS, [p.name, ACCOUNT_USERS])  # every user and SP of the account
        return reach

    # -- queries --------------------------------------------------------------------------------

    def blast_radius(self, principal: str, expand_inherited: int | None = INHERIT_EXPAND_LIMIT) -> dict:
        """Everything the principal reaches, one list per edge kind. ``expand_inherited``: a grant on
        a catalog or schema is listed again on each schema and table inheriting it when it covers at
        most this many (None: always); above that, only the record where it was granted, which says
        how many it covers (``inherited_by``)."""
        with _bulk():
            return self._blast_radius(self.resolve(principal), expand_inherited)

    def _blast_radius(self, p: Principal, expand_inherited: int | None) -> dict:
        reach = self._reach(p, self.account_closure)
        out = {
            "principal": {"kind": p.kind, "name": p.name, "id": p.id, "display_name": p.display_name,
                          "active": p.active},
            "group_memberships": [{"group": g, "chain": c, "workspace_name": None}
                                  for g, c in sorted(reach.items()) if g != p.name],
            "workspace_roles": [], "uc_grants": self._uc_grants(reach, expand_inherited),
            "workspace_object_permissions": [], "run_as": [], "credentials": [], "secret_scopes": [],
        }
        # one builder per workspace edge kind, each reading its own index (_Workspace.index): a new
        # edge kind is an index there, a builder below and a list in the answer
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
            out["run_as"] += [dict(r) for r in ws.run_as.get(p.name, ())]  # callers may annotate records
            out["credentials"] += self._tokens(ws, p)
        out["credentials"] += self._oauth_secrets(p)
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
            if r["inherited_from"] is not None or not (r["ownership"] or r["privilege"] in ("MANAGE", "ALL_PRIVILEGES")):
                continue  # inherited: the record where it was granted says it
            target = f"{r['securable_type'].lower()} {r['full_name']}"
            if r["ownership"] and r["securable_type"] == "METASTORE":
                add("metastore_admin", "critical", target, "metastore admin (owner): latent full UC access", r["via"])
            elif r["ownership"]:
                add("owner", "high", target, "owner: can grant itself any privilege on it and on its children",
                    r["via"])
            elif r["privilege"] == "MANAGE":
                add("manage", "high", target, "MANAGE: latent access, one GRANT away", r["via"])
            elif r["privilege"] == "ALL_PRIVILEGES":
                add("all_privileges", "high", target, "ALL_PRIVILEGES: every data privilege (not MANAGE)", r["via"])
        for r in br["workspace_object_permissions"]:
            if r["object_type"] not in ("jobs", "pipelines"):
                continue
            run_as = self.workspaces[r["workspace_name"]].run_as_of.get((r["object_type"], r["object_id"]))
            if not run_as or run_as == p.name:
                continue
            level = r["permission_level"]
            if level in ("CAN_MANAGE", "IS_OWNER"):
                admin = self._is_workspace_admin(run_as, r["workspace_name"])
                add("run_as_takeover", "critical" if admin else "high",
                    f"{r['object_type'][:-1]} {r['object_name'] or r['object_id']} ({r['workspace_name']})",
                    f"{level} on a {r['object_type'][:-1]} that runs as {self.label(run_as)}"
                    + (" (a workspace admin)" if admin else "") + ": edit it and code runs as that identity",
                    r["via"])
            elif level in ("CAN_MANAGE_RUN", "CAN_RUN"):
                add("run_as_trigger", "medium",
                    f"{r['object_type'][:-1]} {r['object_name'] or r['object_id']} ({r['workspace_name']})",
                    f"{level}: can trigger runs that execute as {self.label(run_as)}", r["via"])
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
            p.name, objects, {n: ws.code_refs for n, ws in self.workspaces.items()},
            power_of, self.label)
        new += escalation.cloud_identity_findings(
            objects, {n: ws.sections.get("compute") or {} for n, ws in self.workspaces.items()})
        for f in new:
            if (f["kind"], f["target"]) not in seen:
                seen.add((f["kind"], f["target"]))
                out.append(f)
        return out

    def label(self, name: str) -> str:
        """A principal as people know it: a service principal is named by its application id in grants,
        ACLs and run_as, but by its display name everywhere a person looks."""
        p = self.principals.get(name)
        if p is not None and p.kind == SERVICE_PRINCIPAL and p.display_name and p.display_name != name:
            return f"{p.display_name} ({name})"
        return name

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

    def _is_workspace_admin(self, name: str, ws_name: str) -> bool:
        if (name, ws_name) not in self._is_admin:
            p = self.principals.get(name)
            ws = self.workspaces[ws_name]
            self._is_admin[(name, ws_name)] = p is not None and any(
                r["permission_level"] == "ADMIN"
                for r in self._workspace_roles(ws, self._reach(p, self.account_closure), self._reach(p, ws.closure)))
        return self._is_admin[(name, ws_name)]

    # -- workspace edges: one builder per kind ----------------------------------------------------

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
        rows = []
        for grantee, via in ws_reach.items():
            for seq, obj_type, obj_id, perm in ws.acls.get(grantee, ()):
                rows.append((seq, {"object_type": obj_type, "object_id": obj_id,
                                   "object_name": ws.object_names.get((obj_type, obj_id)),
                                   "permission_level": perm.get("permission_level"),
                                   "workspace_name": ws.name, "workspace_id": ws.id, "via": via,
                                   "inherited": bool(perm.get("inherited")),
                                   "inherited_from_object": perm.get("inherited_from_object") or None}))
        rows.sort(key=lambda r: r[0])  # the order the ACLs were read in
        return [r for _, r in rows]

    def _secret_scopes(self, ws: _Workspace, ws_reach) -> list[dict]:
        rows = [(seq, {"scope": scope, "permission": perm, "workspace_name": ws.name, "via": via})
                for grantee, via in ws_reach.items() for seq, scope, perm in ws.secret_acls.get(grantee, ())]
        rows.sort(key=lambda r: r[0])
        return [r for _, r in rows]

    def _tokens(self, ws: _Workspace, p: Principal) -> list[dict]:
        out = []
        for t in ws.tokens.get(p.id, ()):
            expiry = t.get("expiry_time")
            out.append({"type": "pat", "token_id": t.get("token_id"), "workspace_name": ws.name,
                        "comment": t.get("comment"), "creation_time": t.get("creation_time"),
                        "expiry": None if expiry in (None, -1) else expiry, "never_expires": expiry == -1,
                        "created_by": t.get("created_by_username")})
        return out

    def _oauth_secrets(self, p: Principal) -> list[dict]:
        if self.sp_secrets is None or p.kind != SERVICE_PRINCIPAL:
            return []
        return [{"type": "oauth_secret", "id": s.get("id"), "status": s.get("status"),
                 "create_time": s.get("create_time"), "expire_time": s.get("expire_time"), "workspace_name": None}
                for s in self.sp_secrets.get(p.id) or []]

    # -- Unity Catalog --------------------------------------------------------------------------

    def _chain_of(self, key: tuple[str, str]) -> list[tuple[str, str]]:
        """The securable, then the ancestors it inherits from (schema, catalog; never the metastore)."""
        out = [key]
        parent = self.securables.get(key, {}).get("parent")
        while parent is not None:
            out.append(parent)
            parent = self.securables.get(parent, {}).get("parent")
        return out

    def _below(self, key: tuple[str, str]) -> list[tuple[tuple[str, str], int]]:
        """(descendant, distance) for the schemas and tables a catalog or schema grant flows to."""
        out = []
        for child in self.children.get(key, ()):
            out.append((child, 1))
            out.extend((grandchild, 2) for grandchild in self.children.get(child, ()))
        return out

    def _grants_reaching(self, key: tuple[str, str]):
        """(grantee, privilege, inherited_from or None, note) for direct and inherited grants on key."""
        for i, anc in enumerate(self._chain_of(key)):
            inherited = None if i == 0 else f"{anc[0].lower()} {anc[1]}"
            for a in self.grants.get(anc, []):
                for priv in a.get("privileges") or []:
                    yield a.get("principal"), priv, inherited, _inherit_note(inherited, priv)

    def _uc_record(self, key, privilege, via, inherited, note, ownership=False) -> dict:
        rec = {"securable_type": key[0], "full_name": key[1], "privilege": privilege, "via": via,
               "inherited_from": inherited, "ownership": ownership}
        isolated = self.isolated.get(key)
        if isolated:
            note = f"{note}; {isolated}" if note else isolated
        if note:
            rec["note"] = note
        return rec

    def _uc_grants(self, reach, expand_inherited: int | None = INHERIT_EXPAND_LIMIT) -> list[dict]:
        """Ownership and grants held through any name in reach, from the grantee/owner indexes: the
        cost follows the answer, not the metastore. Sorted by securable, then ownership, grants on
        the securable itself, inherited from the schema, from the catalog (as they were read)."""
        rank, isolated, rows = self._rank, self.isolated, []  # rows: (sort key, record)
        for grantee, via in reach.items():
            for key in self.owned_by.get(grantee, ()):
                # ownership is its own record: all privileges on THIS object and the right to grant on
                # children, but no privilege on the children themselves
                rows.append((rank[key] << _SUB, self._uc_record(
                    key, OWNER, via, None, "metastore admin" if key[0] == "METASTORE" else None, True)))
            for key, ai, pi, priv in self.grants_to.get(grantee, ()):
                at = _on_securable(0, ai, pi)
                rec = {"securable_type": key[0], "full_name": key[1], "privilege": priv, "via": via,
                       "inherited_from": None, "ownership": False}
                if key in isolated:
                    rec["note"] = isolated[key]
                rows.append((rank[key] << _SUB | at, rec))
                covered = self.covered.get(key)
                if not covered:
                    continue
                rec["inherited_by"] = covered
                if expand_inherited is not None and covered > expand_inherited:
                    rec["note"] = "; ".join(filter(None, [rec.get("note"), (
                        f"inherited by {covered} schemas and tables, not listed one by one (more than "
                        f"{expand_inherited}; `dbsec access --expand-inherited` lists them)")]))
                    continue
                inherited = f"{key[0].lower()} {key[1]}"
                note = _inherit_note(inherited, priv)
                rows.extend((rank[child] << _SUB | at + d * _DEPTH, self._uc_record(child, priv, via, inherited, note))
                            for child, d in self._below(key))
        rows.sort(key=itemgetter(0))
        return [r for _, r in rows]

    def _held_on(self, key: tuple[str, str], reach) -> list[dict]:
        """The records by which a reach holds something on this one securable (owner first)."""
        out = []
        owner = self.securables.get(key, {}).get("owner")
        if owner in reach:
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
        records = self._held_on(key, self._reach(self.resolve(principal), self.account_closure))
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
        with _bulk():
            return self._who_can_reach(key)

    def _who_can_reach(self, key: tuple[str, str]) -> list[dict]:
        grants = []
        owner = self.securables[key].get("owner")
        if owner:
            grants.append((owner, OWNER, None, None, True))
        grants += [(g, p, i, n, False) for g, p, i, n in self._grants_reaching(key)]
        out = []
        for grantee, priv, inherited, note, ownership in grants:
            base = self._uc_record(key, priv, None, inherited, note, ownership)
            for name, via in self._expand(grantee):
                p = self.principals.get(name)
                kind = p.kind if p else (GROUP if name == ACCOUNT_USERS else "unknown")  # unknown: not in SCIM
                out.append({"principal": name, "principal_kind": kind,
                            "display_name": p.display_name if p else None,
                            "everyone": grantee == ACCOUNT_USERS,  # top-severity exposure
                            **base, "via": via})
        return out

    def _expand(self, grantee: str) -> list[tuple[str, list[str]]]:
        """The grantee itself and, for a group, everyone in it (with the chain member -> grantee)."""
        if grantee == ACCOUNT_USERS:
            if self._everyone is None:
                self._everyone = [(n, [n, ACCOUNT_USERS]) for n, p in sorted(self.principals.items())
                                  if p.kind in (USER, SERVICE_PRINCIPAL)]
            return [(ACCOUNT_USERS, [ACCOUNT_USERS])] + self._everyone
        return [(grantee, [grantee])] + sorted(self.account_closure.members(grantee).items())

    def cycles(self) -> list[list[str]]:
        """Groups that contain themselves through nesting (a hygiene finding), one sorted list each."""
        return self.account_closure.cycles()


@contextmanager
def _bulk():
    """No cyclic garbage collection while an answer is built: it allocates up to a million small
    acyclic records (a build: millions of index entries), and each collection would rescan the whole
    inventory (measured: an answer of 670,000 records takes 2.5x the time with the collector on;
    docs/benchmark-graph.md)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# the order of uc_grants records on one securable, packed in one int for a fast sort: ownership,
# then grants on it, inherited from its schema, from its catalog; each as the grants were read
_SUB, _DEPTH = 40, 1 << 36


def _on_securable(depth: int, assignment: int, privilege: int) -> int:
    return 1 + depth * _DEPTH + min(assignment, (1 << 25) - 1) * 1024 + min(privilege, 1023)


def _inherit_note(inherited: str | None, privilege: str) -> str | None:
    if inherited and privilege == "MANAGE":
        return "MANAGE inheritance from a parent is assumed [verify]"
    return None


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
