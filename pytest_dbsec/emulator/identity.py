"""Identities: account principals, group nesting, and what each workspace sees.

Databricks keeps identities at the account; a workspace sees the principals assigned to it (directly or
through a group, transitively) plus two workspace-local system groups, ``admins`` and ``users``, and any
legacy workspace-local groups. Everything here is derived from the tenant on demand, so a test may edit
the tenant between runs and the next request sees the change.

Names: a tenant refers to principals by name. A user is named by ``userName``, a service principal by
``applicationId`` or ``displayName``, a group by ``displayName``. On the wire UC grants and ACLs name a
service principal by its applicationId, which is what ``Principal.name`` holds.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Dict, Iterable, List, Optional

from .ids import gen_digits

ACCOUNT_USERS = "account users"  # the account-wide system group that UC grants may name
RESERVED_LOCAL = ("admins", "users")


class Principal:
    """One identity. Identity is by object: two Principals are equal only if they are the same one."""

    __slots__ = ("kind", "name", "display", "id", "obj", "scope")

    def __init__(self, kind: str, name: str, display: str, id: str, obj: dict, scope: str = "account"):
        self.kind = kind  # "user" | "sp" | "group"
        self.name = name  # wire name: userName / applicationId / group displayName
        self.display = display
        self.id = id  # SCIM id (string of digits)
        self.obj = obj  # the tenant dict (for users/SPs/account groups) or a synthetic one
        self.scope = scope  # "account" or the workspace name for workspace-local groups

    @property
    def active(self) -> bool:
        return bool(self.obj.get("active", True))

    @property
    def scim_ref(self) -> str:
        return {"user": "Users", "sp": "ServicePrincipals", "group": "Groups"}[self.kind] + "/" + self.id

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name}>"


def _descendants(start: Iterable[Principal], children: Callable[[Principal], List[Principal]]) -> List[Principal]:
    """Every principal reachable through membership; cycle-safe (the demo tenant has a group cycle)."""
    seen: Dict[int, Principal] = {}
    queue = deque(start)
    while queue:
        p = queue.popleft()
        if id(p) in seen:
            continue
        seen[id(p)] = p
        queue.extend(children(p))
    return list(seen.values())


class Directory:
    """Account-level identity index. ``err(path, message)`` must raise; it reports bad references."""

    def __init__(self, account: dict, err: Callable[[tuple, str], None]):
        self.err = err
        self.users: Dict[str, Principal] = {}
        self.sps: Dict[str, Principal] = {}  # by applicationId
        self.groups: Dict[str, Principal] = {}
        self.by_id: Dict[str, Principal] = {}
        self._names: Dict[str, List[Principal]] = {}
        self.members: Dict[int, List[Principal]] = {}
        self.parents: Dict[int, List[Principal]] = {}

        for i, u in enumerate(account.get("users") or []):
            p = Principal("user", u["userName"], u.get("displayName") or u["userName"], str(u["id"]), u)
            self.users[p.name] = p
            self._index(p, [p.name], ("account", "users", i))
        for i, s in enumerate(account.get("service_principals") or []):
            p = Principal("sp", s["applicationId"], s.get("displayName") or s["applicationId"], str(s["id"]), s)
            self.sps[p.name] = p
            self._index(p, {p.name, p.display}, ("account", "service_principals", i))
        for i, g in enumerate(account.get("groups") or []):
            p = Principal("group", g["displayName"], g["displayName"], str(g["id"]), g)
            self.groups[p.name] = p
            self._index(p, [p.name], ("account", "groups", i))
        for p in self.all():
            self.parents[id(p)] = []
        for i, g in enumerate(account.get("groups") or []):
            gp = self.groups[g["displayName"]]
            direct: List[Principal] = []
            for j, name in enumerate(g.get("members") or []):
                m = self.resolve(name, ("account", "groups", i, "members", j))
                if m not in direct:
                    direct.append(m)
                    self.parents[id(m)].append(gp)
            self.members[id(gp)] = direct

    def _index(self, p: Principal, names: Iterable[str], path: tuple) -> None:
        if p.id in self.by_id:
            self.err(path + ("id",), f"duplicate SCIM id {p.id!r} (also used by {self.by_id[p.id]!r})")
        self.by_id[p.id] = p
        for n in set(names):
            others = self._names.setdefault(n, [])
            if others:
                # Tenants refer to principals by name, so every name must pick exactly one principal.
                self.err(path, f"ambiguous principal name {n!r}: also used by {others[0]!r}")
            others.append(p)

    def all(self) -> List[Principal]:
        return list(self.users.values()) + list(self.sps.values()) + list(self.groups.values())

    def lookup(self, name: str) -> List[Principal]:
        found = self._names.get(name)
        if not found and isinstance(name, str):
            # userNames are e-mail addresses, which Databricks treats case-insensitively.
            low = name.lower()
            found = [p for p in self.users.values() if p.name.lower() == low]
        return list(found or [])

    def resolve(self, name, path: tuple, kinds=("user", "sp", "group")) -> Principal:
        if not isinstance(name, str) or not name:
            self.err(path, f"expected a principal name, got {name!r}")
        found = [p for p in self.lookup(name) if p.kind in kinds]
        if not found:
            labels = [{"user": "user", "sp": "service principal", "group": "group"}[k] for k in kinds]
            what = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " or " + labels[-1]
            self.err(path, f"unknown {what} {name!r}")
        if len(found) > 1:
            self.err(path, f"ambiguous principal name {name!r}: matches {found}")
        return found[0]

    def group_members(self, g: Principal) -> List[Principal]:
        return self.members.get(id(g), [])

    def descendants(self, start: Iterable[Principal]) -> List[Principal]:
        return _descendants(start, lambda p: self.group_members(p) if p.kind == "group" else [])

    def ancestors(self, p: Principal) -> List[Principal]:
        return [g for g in _descendants([p], lambda q: self.parents.get(id(q), [])) if g is not p]

    def is_account_admin(self, p: Principal) -> bool:
        for q in [p] + self.ancestors(p):
            if "account_admin" in (q.obj.get("roles") or []):
                return True
        return False


class WorkspaceView:
    """What one workspace sees: its members, its groups (account + local), and who is admin."""

    def __init__(self, directory: Directory, ws: dict, ws_path: tuple):
        d = self.dir = directory
        self.ws = ws
        self.name = ws["name"]
        err = directory.err
        self.local: Dict[str, Principal] = {}
        self.local_members: Dict[int, List[Principal]] = {}
        wsid = str(ws["id"])
        for g in RESERVED_LOCAL:
            if g in d.groups:
                err(("account", "groups"), f"group name {g!r} is reserved for the workspace-local system group")
        # Local group ids are derived from the workspace id so they differ between workspaces.
        for g in RESERVED_LOCAL:
            self.local[g] = Principal("group", g, g, gen_digits(16, "local-group", wsid, g), {"displayName": g}, self.name)
        for i, lg in enumerate(ws.get("local_groups") or []):
            name = lg.get("displayName")
            if name in self.local or name in d.groups:
                err(ws_path + ("local_groups", i, "displayName"), f"group name {name!r} is already taken")
            lg_id = str(lg.get("id") or gen_digits(16, "local-group", wsid, name))
            self.local[name] = Principal("group", name, name, lg_id, lg, self.name)
        for i, lg in enumerate(ws.get("local_groups") or []):
            gp = self.local[lg["displayName"]]
            self.local_members[id(gp)] = [
                self.resolve(n, ws_path + ("local_groups", i, "members", j)) for j, n in enumerate(lg.get("members") or [])
            ]

        # Assignments: principal -> set of permissions.
        self.assignments: List[tuple] = []
        for i, a in enumerate(ws.get("assignments") or []):
            p = d.resolve(a.get("principal"), ws_path + ("assignments", i, "principal"))
            self.assignments.append((p, list(a.get("permissions") or ["USER"])))
        # The workspace `admins` group holds the extra admins listed in the tenant plus every principal
        # with an ADMIN assignment (that is how identity federation grants workspace admin).
        admins_direct: List[Principal] = []
        for i, n in enumerate(ws.get("admins") or []):
            p = d.resolve(n, ws_path + ("admins", i))
            if p not in admins_direct:
                admins_direct.append(p)
        for p, perms in self.assignments:
            if "ADMIN" in perms and p not in admins_direct:
                admins_direct.append(p)
        self.local_members[id(self.local["admins"])] = admins_direct

        roots = [p for p, _ in self.assignments] + admins_direct
        for g in self.local.values():
            if g.name != "users":
                roots.extend(self.local_members.get(id(g), []))
        reach = self._descend(roots)
        self.members: List[Principal] = [p for p in reach if p.kind in ("user", "sp")]
        self._member_ids = {id(p) for p in self.members}
        self.local_members[id(self.local["users"])] = list(self.members)
        self._admin_ids = {id(p) for p in self._descend([self.local["admins"]]) if p.kind in ("user", "sp")}

        # Visible account groups: those reached from assignments/admins/local groups, plus every group
        # that (transitively) contains a workspace member, so membership chains stay complete.
        visible = {id(p): p for p in reach if p.kind == "group" and p.scope == "account"}
        for p in list(self.members) + list(visible.values()):
            for g in d.ancestors(p):
                visible.setdefault(id(g), g)
        order = {id(g): i for i, g in enumerate(d.groups.values())}
        self.account_groups: List[Principal] = sorted(visible.values(), key=lambda g: order[id(g)])
        self._visible_ids = set(visible) | {id(g) for g in self.local.values()}

    def _children(self, p: Principal) -> List[Principal]:
        if p.kind != "group":
            return []
        if p.scope == "account":
            return self.dir.group_members(p)
        if p.name == "users":
            return []
        return self.local_members.get(id(p), [])

    def _descend(self, start: Iterable[Principal]) -> List[Principal]:
        return _descendants(start, self._children)

    def resolve(self, name, path: tuple, kinds=("user", "sp", "group")) -> Principal:
        if "group" in kinds and name in self.local:
            return self.local[name]
        return self.dir.resolve(name, path, kinds)

    def groups(self) -> List[Principal]:
        return list(self.account_groups) + list(self.local.values())

    def is_member(self, p: Principal) -> bool:
        return id(p) in self._member_ids

    def is_admin(self, p: Principal) -> bool:
        return id(p) in self._admin_ids

    def is_visible(self, p: Principal) -> bool:
        return id(p) in self._member_ids or id(p) in self._visible_ids

    def direct_members(self, g: Principal) -> List[Principal]:
        if g.scope != "account" and g.name == "users":
            return list(self.members)
        return [m for m in self._children(g) if self.is_visible(m)]

    def parents(self, p: Principal) -> List[Principal]:
        out = [g for g in self.dir.parents.get(id(p), []) if id(g) in self._visible_ids]
        for g in self.local.values():
            if g.name == "users":
                if self.is_member(p):
                    out.append(g)
            elif p in self.local_members.get(id(g), []):
                out.append(g)
        return out

    def groups_of(self, p: Principal) -> List[Principal]:
        """Every workspace-visible group ``p`` belongs to, transitively (account and local groups)."""
        return [g for g in _descendants([p], self.parents) if g is not p]

    def by_id(self, scim_id: str) -> Optional[Principal]:
        p = self.dir.by_id.get(scim_id)
        if p is not None and self.is_visible(p):
            return p
        for g in self.local.values():
            if g.id == scim_id:
                return g
        return None
