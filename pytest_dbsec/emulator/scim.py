"""SCIM rendering and listing, shared by the workspace (/preview/scim/v2) and account (/scim/v2) APIs.

The SDK pages SCIM lists by 1-based ``startIndex`` and stops only on an empty ``Resources``; it also
deduplicates by ``id``. The list helper honours ``startIndex``/``count`` with a server cap
(``paging.scim_max``) and returns an empty ``Resources`` past the end.
"""

from __future__ import annotations

import re
from typing import Any, Callable, List, Optional

from .identity import Principal, WorkspaceView
from .routing import Ctx, bad_request

USER_SCHEMAS = ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:workspace:2.0:User"]
SP_SCHEMAS = ["urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"]
GROUP_SCHEMAS = ["urn:ietf:params:scim:schemas:core:2.0:Group"]
LIST_SCHEMAS = ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]

DEFAULT_USER_ENTITLEMENTS = ["workspace-access", "databricks-sql-access"]
LOCAL_GROUP_ENTITLEMENTS = {
    "users": ["workspace-access", "databricks-sql-access"],
    "admins": ["workspace-access", "databricks-sql-access", "allow-cluster-create", "allow-instance-pool-create"],
}


def _ref_list(groups: List[Principal]) -> list:
    return [{"value": g.id, "display": g.display, "type": "direct", "$ref": f"Groups/{g.id}"} for g in groups]


def _entitlements(values) -> list:
    return [{"value": v} for v in values]


def _name_parts(display: str) -> dict:
    parts = display.split()
    if len(parts) >= 2:
        return {"givenName": parts[0], "familyName": " ".join(parts[1:])}
    return {"givenName": display}


def render_user(p: Principal, parents: List[Principal], *, account: bool) -> dict:
    o = p.obj
    out = {
        "id": p.id,
        "userName": p.name,
        "displayName": p.display,
        "active": p.active,
        "name": o.get("name") or _name_parts(p.display),
        "emails": o.get("emails") or [{"value": p.name, "type": "work", "primary": True}],
        "groups": _ref_list(parents),
        "schemas": USER_SCHEMAS[:1] if account else list(USER_SCHEMAS),
    }
    if o.get("externalId"):
        out["externalId"] = o["externalId"]
    if account:
        if o.get("roles"):
            out["roles"] = [{"value": r} for r in o["roles"]]
    else:
        out["entitlements"] = _entitlements(o.get("entitlements") or DEFAULT_USER_ENTITLEMENTS)
    return out


def render_sp(p: Principal, parents: List[Principal], *, account: bool) -> dict:
    o = p.obj
    out = {
        "id": p.id,
        "applicationId": p.name,
        "displayName": p.display,
        "active": p.active,
        "groups": _ref_list(parents),
        "schemas": list(SP_SCHEMAS),
    }
    if o.get("externalId"):
        out["externalId"] = o["externalId"]
    if account:
        if o.get("roles"):
            out["roles"] = [{"value": r} for r in o["roles"]]
    else:
        out["entitlements"] = _entitlements(o.get("entitlements") or ["workspace-access"])
    return out


def render_group(g: Principal, members: List[Principal], parents: List[Principal], *, account: bool) -> dict:
    o = g.obj
    out = {
        "id": g.id,
        "displayName": g.display,
        "members": [{"value": m.id, "display": m.display, "$ref": m.scim_ref} for m in members],
        "groups": _ref_list(parents),
        "meta": {"resourceType": "Group" if g.scope == "account" else "WorkspaceGroup"},
        "schemas": list(GROUP_SCHEMAS),
    }
    if o.get("externalId"):
        out["externalId"] = o["externalId"]
    if account:
        if o.get("roles"):
            out["roles"] = [{"value": r} for r in o["roles"]]
    else:
        ents = o.get("entitlements") or (LOCAL_GROUP_ENTITLEMENTS.get(g.name, []) if g.scope != "account" else [])
        if ents:
            out["entitlements"] = _entitlements(ents)
    return out


# Renderers per resource kind, for a workspace view or for the account.
def workspace_render(view: WorkspaceView, p: Principal) -> dict:
    if p.kind == "user":
        return render_user(p, view.parents(p), account=False)
    if p.kind == "sp":
        return render_sp(p, view.parents(p), account=False)
    return render_group(p, view.direct_members(p), view.parents(p), account=False)


def account_render(directory, p: Principal) -> dict:
    parents = directory.parents.get(id(p), [])
    if p.kind == "user":
        return render_user(p, parents, account=True)
    if p.kind == "sp":
        return render_sp(p, parents, account=True)
    return render_group(p, directory.group_members(p), parents, account=True)


def render_me(view: WorkspaceView, p: Principal) -> dict:
    """/Me for a service principal is user-shaped, with the applicationId as userName."""
    if p.kind == "user":
        return workspace_render(view, p)
    out = render_sp(p, view.parents(p), account=False)
    out["userName"] = p.name
    out["schemas"] = list(USER_SCHEMAS)
    return out


# ------------------------------------------------------------------------------------- filtering

_FILTER = re.compile(r'^\s*(\w+(?:\.\w+)?)\s+(eq|ne|co|sw|ew)\s+(?:"((?:[^"\\]|\\.)*)"|(\S+))\s*$', re.IGNORECASE)


def _predicate(expr: str) -> Callable[[dict], bool]:
    m = _FILTER.match(expr)
    if not m:
        raise bad_request(f"Unsupported SCIM filter: {expr!r} (the emulator supports 'attr op \"value\"' joined by 'and')")
    attr, op, quoted, bare = m.group(1), m.group(2).lower(), m.group(3), m.group(4)
    want = quoted if quoted is not None else bare
    want_l = str(want).lower()

    def value_of(res: dict):
        for k, v in res.items():
            if k.lower() == attr.lower():
                return v
        return None

    def pred(res: dict) -> bool:
        v = value_of(res)
        if isinstance(v, bool):
            v = "true" if v else "false"
        s = "" if v is None else str(v).lower()
        if op == "eq":
            return v is not None and s == want_l
        if op == "ne":
            return s != want_l
        if op == "co":
            return want_l in s
        if op == "sw":
            return s.startswith(want_l)
        return s.endswith(want_l)

    return pred


def _filter(resources: List[dict], expr: Optional[str]) -> List[dict]:
    if not expr:
        return resources
    preds = [_predicate(part) for part in re.split(r"\s+and\s+", expr, flags=re.IGNORECASE)]
    return [r for r in resources if all(p(r) for p in preds)]


def _project(res: dict, attributes: List[str], excluded: List[str]) -> dict:
    if attributes:
        keep = {a.lower() for a in attributes} | {"id", "schemas"}
        res = {k: v for k, v in res.items() if k.lower() in keep}
    if excluded:
        drop = {a.lower() for a in excluded} - {"id"}
        res = {k: v for k, v in res.items() if k.lower() not in drop}
    return res


def scim_list(ctx: Ctx, resources: list, render: Optional[Callable[[Any], dict]] = None) -> dict:
    """One SCIM list page. ``render`` turns an item of ``resources`` into its SCIM resource: a plain
    page (no filter, no sortBy) then renders only its own items, so reading 10,000 users 100 at a time
    does not render all of them 100 times."""
    if render is not None and (ctx.q("filter") or ctx.q("sortBy")):
        resources, render = [render(r) for r in resources], None  # they match on the rendered values
    resources = _filter(resources, ctx.q("filter"))
    sort_by = ctx.q("sortBy")
    if sort_by:
        resources = sorted(resources, key=lambda r: str(r.get(sort_by, "")).lower(), reverse=(ctx.q("sortOrder") == "descending"))
    start = ctx.qint("startIndex", default=1)
    if start < 1:
        start = 1
    cap = int(ctx.paging.get("scim_max", 100))
    count = ctx.qint("count", default=cap, minimum=0)
    count = min(count, cap)
    page = resources[start - 1 : start - 1 + count]
    attrs, excl = ctx.qlist("attributes"), ctx.qlist("excludedAttributes")
    return {
        "totalResults": len(resources),
        "startIndex": start,
        "itemsPerPage": len(page),
        "schemas": list(LIST_SCHEMAS),
        "Resources": [_project(render(r) if render else r, attrs, excl) for r in page],
    }


def scim_get(ctx: Ctx, resource: dict) -> dict:
    return _project(resource, ctx.qlist("attributes"), ctx.qlist("excludedAttributes"))
