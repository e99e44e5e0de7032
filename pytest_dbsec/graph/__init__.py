"""The access graph (pure data, from the inventory).

This module holds the one membership walk every answer uses: transitive group membership from SCIM
users, groups and service principals. Controls (checks/*.py) use it on one workspace's or the
account's SCIM; the access graph (``access.py``) builds one for the account and one per workspace from
the same class, so a control and an incident answer can never disagree on who is in which group.

Databricks allows nested groups (membership is transitive) and does not forbid cycles, so every walk
is a visited-set BFS: a cycle is walked once, never followed forever, and reported by ``cycles()``
(shared/access-model.md 1.1). The BFS keeps the shortest chain to each group, so any membership can
be explained hop by hop.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

USER, GROUP, SERVICE_PRINCIPAL = "user", "group", "service_principal"
ACCOUNT_USERS = "account users"  # every user and service principal of the account
WORKSPACE_GROUP = "WorkspaceGroup"  # SCIM meta.resourceType of a workspace-local group


@dataclass(frozen=True)
class Principal:
    kind: str  # user | group | service_principal
    name: str  # userName, group displayName, or SP applicationId: how grants and ACLs name them
    id: str
    display_name: str
    active: bool = True
    external_id: str | None = None


def _name_of(entry: dict, kind: str) -> str:
    if kind == USER:
        return entry.get("userName") or str(entry["id"])
    if kind == SERVICE_PRINCIPAL:
        return entry.get("applicationId") or str(entry["id"])  # how grants, ACLs and run_as name an SP
    return entry.get("displayName") or str(entry["id"])


class Membership:
    """Who is in which group, transitively, from SCIM users, groups and service principals.

    Nodes are principal names (userName, applicationId, group display name); edges are direct
    member -> group, from a group's ``members`` and from a member's own ``groups``. When two SCIM
    entries share a name, the first one read names the principal."""

    def __init__(self, users=(), groups=(), service_principals=()):
        self.principals: dict[str, Principal] = {}  # by name
        self._by_id: dict[str, Principal] = {}
        self.parents: dict[str, set[str]] = {}  # direct edges member -> groups
        self.local_groups: set[str] = set()  # workspace-local groups (SCIM meta.resourceType)
        self.roles: dict[str, set[str]] = {}  # SCIM roles (e.g. account_admin) by principal name
        self._children: dict[str, set[str]] | None = None  # reverse edges, built on first use
        self._sp_by_display: dict[str, list[Principal]] | None = None
        self.add_scim(users, groups, service_principals)

    @classmethod
    def from_scim(cls, data: dict) -> "Membership":
        """From an ``identities`` / ``account_identities`` section."""
        return cls(data.get("users") or [], data.get("groups") or [], data.get("service_principals") or [])

    def add_scim(self, users=(), groups=(), service_principals=()) -> None:
        ids: dict[str, Principal] = {}
        for kind, entries in ((USER, users), (SERVICE_PRINCIPAL, service_principals), (GROUP, groups)):
            for e in entries:
                p = Principal(kind, _name_of(e, kind), str(e["id"]), e.get("displayName") or "",
                              kind == GROUP or e.get("active", True) is not False, e.get("externalId"))
                p = self.principals.setdefault(p.name, p)
                ids[str(e["id"])] = self._by_id[str(e["id"])] = p
                if kind == GROUP and (e.get("meta") or {}).get("resourceType") == WORKSPACE_GROUP:
                    self.local_groups.add(p.name)
                roles = {r.get("value") for r in e.get("roles") or [] if isinstance(r, dict)}
                if roles:
                    self.roles.setdefault(p.name, set()).update(roles)
        for g in groups:
            for m in g.get("members") or []:
                member = ids.get(str(m.get("value")))
                if member is not None:
                    self.add(member.name, ids[str(g["id"])].name)
        for entry in (*users, *service_principals, *groups):
            for parent in entry.get("groups") or []:
                p = ids.get(str(parent.get("value")))
                if p is not None and p.kind == GROUP:
                    self.add(ids[str(entry["id"])].name, p.name)
        self._sp_by_display = None

    def add(self, member: str, group: str) -> None:
        """A direct edge. A group listed as its own member is kept: cycles() reports it."""
        self.parents.setdefault(member, set()).add(group)
        self._children = None

    def merged(self, other: "Membership", skip: frozenset[str] | set[str] = frozenset()) -> "Membership":
        """A new walk over both edge sets (self's principals win on a name clash), leaving out the
        nodes in ``skip``."""
        out = Membership()
        for src in (self, other):
            for name, p in src.principals.items():
                if name not in skip:
                    out.principals.setdefault(name, p)
                    out._by_id.setdefault(p.id, p)
            for m, gs in src.parents.items():
                if m not in skip:
                    out.parents.setdefault(m, set()).update(g for g in gs if g not in skip)
            out.local_groups |= src.local_groups - set(skip)
            for name, roles in src.roles.items():
                out.roles.setdefault(name, set()).update(roles)
        return out

    # -- lookups --------------------------------------------------------------------------------

    def get(self, name: str) -> Principal | None:
        return self.principals.get(name)

    def by_id(self, scim_id: str) -> Principal | None:
        return self._by_id.get(str(scim_id))

    def sps_named(self, display_name: str) -> list[Principal]:
        """Service principals with this display name (names need not be unique)."""
        if self._sp_by_display is None:
            self._sp_by_display = {}
            for p in self.principals.values():
                if p.kind == SERVICE_PRINCIPAL:
                    self._sp_by_display.setdefault(p.display_name, []).append(p)
        return self._sp_by_display.get(display_name, [])

    def find(self, name_or_display: str) -> Principal | None:
        """By name (userName, applicationId, group name), or else by an SP's display name."""
        p = self.principals.get(name_or_display)
        if p is None:
            sps = self.sps_named(name_or_display)
            p = sps[0] if sps else None
        return p

    # -- the walk -------------------------------------------------------------------------------

    def chains(self, name: str) -> dict[str, list[str]]:
        """group -> shortest chain [name, ..., group] for every group name is in, transitively;
        includes name itself -> [name]. Parents are visited in sorted order, so chains are stable."""
        out = {name: [name]}
        queue = deque([name])
        while queue:
            cur = queue.popleft()
            for g in sorted(self.parents.get(cur, ())):
                if g not in out:
                    out[g] = out[cur] + [g]
                    queue.append(g)
        return out

    def members(self, group: str) -> dict[str, list[str]]:
        """member -> shortest chain [member, ..., group] for everything transitively inside group."""
        children = self._reverse()
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

    def _reverse(self) -> dict[str, set[str]]:
        """group -> direct members, built once (the edges do not change after reading)."""
        if self._children is None:
            self._children = {}
            for m, gs in self.parents.items():
                for g in gs:
                    self._children.setdefault(g, set()).add(m)
        return self._children

    def groups_of(self, name: str) -> set[str]:
        """Every group the principal belongs to, directly or through nested groups (never itself)."""
        return set(self.chains(name)) - {name}

    def members_of(self, group: str, kinds=(USER, SERVICE_PRINCIPAL)) -> set[str]:
        """Everyone in the group, transitively (only the given kinds; groups are walked through)."""
        if group == ACCOUNT_USERS:
            return {p.name for p in self.principals.values() if p.kind in kinds}
        return {m for m in self.members(group) if self._kind(m) in kinds}

    def _kind(self, name: str) -> str | None:
        p = self.principals.get(name)
        return p.kind if p is not None else None

    def is_member(self, name: str, group: str) -> bool:
        if group == ACCOUNT_USERS:
            p = self.principals.get(name)
            return p is not None and p.kind in (USER, SERVICE_PRINCIPAL)
        return group in self.groups_of(name)

    def cycles(self) -> list[list[str]]:
        """Groups that contain themselves through nesting (a hygiene finding): one sorted list per
        strongly connected set of groups, a group listed as its own member being a cycle of one.
        Kosaraju's two passes, iterative (nesting depth is unbounded in the data we may be given)."""
        groups = sorted(n for n, p in self.principals.items() if p.kind == GROUP)
        order, seen = [], set()
        for root in groups:  # pass 1: finish order along member -> group edges
            if root in seen:
                continue
            seen.add(root)
            stack = [(root, iter(sorted(self.parents.get(root, ()))))]
            while stack:
                node, it = stack[-1]
                nxt = next((g for g in it if g not in seen), None)
                if nxt is None:
                    order.append(node)
                    stack.pop()
                else:
                    seen.add(nxt)
                    stack.append((nxt, iter(sorted(self.parents.get(nxt, ())))))
        children = self._reverse()
        out, assigned = [], set()
        for root in reversed(order):  # pass 2: reverse edges, in reverse finish order
            if root in assigned:
                continue
            ring, stack = [], [root]
            assigned.add(root)
            while stack:
                node = stack.pop()
                ring.append(node)
                for m in children.get(node, ()):
                    if m not in assigned and m in seen:
                        assigned.add(m)
                        stack.append(m)
            if len(ring) > 1 or root in self.parents.get(root, ()):
                out.append(sorted(ring))
        return sorted(out)
