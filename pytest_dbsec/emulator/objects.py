"""Finding workspace objects by id or name, and the derived workspace file tree.

Tenants let the ``permissions:`` map name an object either by its wire id or by its human name
(``jobs/Nightly ETL``), because ids are usually generated. Both the loader (to validate keys) and the
Permissions API route (to find an object's ACL) use :func:`find_object`.
"""

from __future__ import annotations

import posixpath
from typing import Dict, List, NamedTuple, Optional

from .ids import gen_digits


class ObjRef(NamedTuple):
    obj: dict
    id: str  # the wire id used in /api/2.0/permissions/{type}/{id}
    names: tuple  # every spelling a permissions key may use
    creator: Optional[str]


def _ref(obj, id_, name, creator):
    names = tuple(str(n) for n in (id_, name) if n is not None)
    return ObjRef(obj, str(id_), names, creator)


def _candidates(ws: dict, otype: str) -> List[ObjRef]:
    if otype == "clusters":
        return [_ref(c, c["cluster_id"], c.get("cluster_name"), c.get("creator_user_name")) for c in ws.get("clusters") or []]
    if otype == "cluster-policies":
        return [_ref(p, p["policy_id"], p.get("name"), p.get("creator_user_name")) for p in ws.get("cluster_policies") or []]
    if otype == "instance-pools":
        return [_ref(p, p["instance_pool_id"], p.get("instance_pool_name"), None) for p in ws.get("instance_pools") or []]
    if otype == "jobs":
        return [
            _ref(j, j["job_id"], (j.get("settings") or {}).get("name"), j.get("creator_user_name")) for j in ws.get("jobs") or []
        ]
    if otype == "pipelines":
        return [_ref(p, p["pipeline_id"], p.get("name"), p.get("creator_user_name")) for p in ws.get("pipelines") or []]
    if otype == "warehouses":
        return [_ref(w, w["id"], w.get("name"), w.get("creator_name")) for w in ws.get("warehouses") or []]
    if otype == "serving-endpoints":
        return [_ref(e, e["id"], e.get("name"), e.get("creator")) for e in ws.get("serving_endpoints") or []]
    if otype == "dashboards":
        return [_ref(d, d["dashboard_id"], d.get("display_name"), None) for d in ws.get("dashboards") or []]
    if otype == "repos":
        return [_ref(r, r["id"], r.get("path"), None) for r in ws.get("repos") or []]
    if otype == "notebooks":
        return [
            _ref(n, n["object_id"], n["path"], None) for n in ws.get("notebooks") or [] if n.get("object_type", "NOTEBOOK") == "NOTEBOOK"
        ]
    if otype == "files":
        return [_ref(n, n["object_id"], n["path"], None) for n in ws.get("notebooks") or [] if n.get("object_type") == "FILE"]
    if otype == "directories":
        return [_ref(d, d["object_id"], d["path"], None) for d in tree(ws).values() if d["object_type"] == "DIRECTORY"]
    return []


def find_object(ws: dict, otype: str, oid: str, index: Optional[Dict[str, ObjRef]] = None) -> Optional[ObjRef]:
    """The object of this type whose id or name is ``oid`` (the first in tenant order). ``index``:
    :func:`object_index` of the same workspace and type, to look it up instead of scanning."""
    oid = str(oid)
    if otype == "authorization":
        if oid in ("tokens", "passwords"):
            return ObjRef({}, oid, (oid,), None)
        return None
    if index is not None:
        return index.get(oid)
    for ref in _candidates(ws, otype):
        if oid in ref.names:
            return ref
    return None


def object_index(ws: dict, otype: str) -> Dict[str, ObjRef]:
    """Every spelling (id, name) of every object of one type -> the object; the first in tenant order
    wins, as in a scan. Built once per tenant version (the emulator's _State.index)."""
    out: Dict[str, ObjRef] = {}
    for ref in _candidates(ws, otype):
        for name in ref.names:
            out.setdefault(name, ref)
    return out


def tree(ws: dict) -> Dict[str, dict]:
    """Path -> ObjectInfo for every workspace object: notebooks/files, repos, and implied directories."""
    wsid = ws["id"]
    out: Dict[str, dict] = {}

    def add_dirs(path: str) -> None:
        d = posixpath.dirname(path)
        while d and d not in out:
            out[d] = {"object_type": "DIRECTORY", "path": d, "object_id": int(gen_digits(15, "workspace-object", wsid, d))}
            if d == "/":
                break
            d = posixpath.dirname(d)

    out["/"] = {"object_type": "DIRECTORY", "path": "/", "object_id": 0}
    for n in ws.get("notebooks") or []:
        info = {"object_type": n.get("object_type", "NOTEBOOK"), "path": n["path"], "object_id": n["object_id"]}
        if info["object_type"] == "NOTEBOOK":
            info["language"] = n.get("language", "PYTHON")
        for k in ("created_at", "modified_at"):
            if n.get(k) is not None:
                info[k] = n[k]
        info["size"] = len(n.get("content", "").encode())
        out[n["path"]] = info
        add_dirs(n["path"])
    for r in ws.get("repos") or []:
        out[r["path"]] = {"object_type": "REPO", "path": r["path"], "object_id": r["id"]}
        add_dirs(r["path"])
    return out
