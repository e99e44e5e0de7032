"""The access graph (pure data, from the inventory).

Today: transitive group membership, which many controls need. Databricks allows nested groups
(membership is transitive) and does not forbid cycles, so the closure is a visited-set walk and
cycles are reported, never followed forever (shared/access-model.md 1.1).
"""

from __future__ import annotations

from dataclasses import dataclass

USER, GROUP, SERVICE_PRINCIPAL = "user", "group", "service_principal"
ACCOUNT_USERS = "account users"  # every user and service principal of the account


@dataclass(frozen=True)
class Principal:
    kind: str  # user | group | service_principal
    name: str  # userName, group displayName, or SP applicationId: how grants and ACLs name them
    id: str
    display_name: str
    active: bool = True
    external_id: str | None = None


class Membership:
    """Who is in which group, transitively, from SCIM users, groups and service principals."""

    def __init__(self, users: list[dict], groups: list[dict], service_principals: list[dict]):
        self.principals: dict[str, Principal] = {}  # by name
        self._by_id: dict[str, Principal] = {}
        for u in users:
            self._add(Principal(USER, u.get("userName") or u["id"], u["id"], u.get("displayName") or "",
                                u.get("active", True) is not False, u.get("externalId")))
        for sp in service_principals:
            self._add(Principal(SERVICE_PRINCIPAL, sp.get("applicationId") or sp["id"], sp["id"],
                                sp.get("displayName") or "", sp.get("active", True) is not False,
                                sp.get("externalId")))
        for g in groups:
            self._add(Principal(GROUP, g.get("displayName") or g["id"], g["id"], g.get("displayName") or "",
                                True, g.get("externalId")))
        # direct edges member -> groups, from the groups' member lists and the members' own groups[]
        self._parents: dict[str, set[str]] = {name: set() for name in self.principals}
        for g in groups:
            gname = self._by_id[g["id"]].name
            for m in g.get("members") or []:
                member = self._by_id.get(str(m.get("value")))
                if member is not None:
                    self._parents[member.name].add(gname)
        for entry in [*users, *service_principals, *groups]:
            me = self._by_id[entry["id"]]
            for parent in entry.get("groups") or []:
                p = self._by_id.get(str(parent.get("value")))
                if p is not None and p.kind == GROUP:
                    self._parents[me.name].add(p.name)

    def _add(self, p: Principal) -> None:
        self.principals.setdefault(p.name, p)
        self._by_id[p.id] = p

    def get(self, name: str) -> Principal | None:
        return self.principals.get(name)

    def find(self, name_or_display: str) -> Principal | None:
        """By name (userName, applicationId, group name), or else by an SP's display name."""
        p = self.principals.get(name_or_display)
        if p is None:
            p = next((q for q in self.principals.values()
                      if q.kind == SERVICE_PRINCIPAL and q.display_name == name_or_display), None)
        return p

    def _ancestors(self, name: str) -> set[str]:
        """Groups reachable upwards from name; includes name itself when it sits on a cycle."""
        seen: set[str] = set()
        stack = list(self._parents.get(name, ()))
        while stack:
            g = stack.pop()
            if g in seen:
                continue
            seen.add(g)
            stack.extend(self._parents.get(g, ()))
        return seen

    def groups_of(self, name: str) -> set[str]:
        """Every group the principal belongs to, directly or through nested groups."""
        return self._ancestors(name) - {name}

    def members_of(self, group: str, kinds=(USER, SERVICE_PRINCIPAL)) -> set[str]:
        """Everyone in the group, transitively (only the given kinds; groups are walked through)."""
        if group == ACCOUNT_USERS:
            return {p.name for p in self.principals.values() if p.kind in kinds}
        return {p.name for p in self.principals.values()
                if p.kind in kinds and p.name != group and group in self.groups_of(p.name)}

    def is_member(self, name: str, group: str) -> bool:
        if group == ACCOUNT_USERS:
            p = self.principals.get(name)
            return p is not None and p.kind in (USER, SERVICE_PRINCIPAL)
        return group in self.groups_of(name)

    def cycles(self) -> list[list[str]]:
        """Groups that contain themselves through nesting, one sorted list per cycle."""
        out: list[list[str]] = []
        covered: set[str] = set()
        for g in sorted(n for n, p in self.principals.items() if p.kind == GROUP):
            if g in covered or g not in self._ancestors(g):
                continue
            ring = sorted(x for x in self._ancestors(g) if g in self._ancestors(x))
            covered.update(ring)
            out.append(ring)
        return out
