"""The inventory: what was read from Databricks, section by section, and its snapshot file.

Pure data. Nothing here talks to the SDK or to pytest: collectors fill an Inventory, controls read
it, and a snapshot is the same Inventory written to JSON so that ``--dbsec-replay`` evaluates
exactly what a live run saw.

Every section has a status:

* ``ok``     -- the data was read completely;
* ``error``  -- it could not be read; ``error`` says why (endpoint, status, missing permission).
  Controls that need it must ERROR, never pass;
* ``absent`` -- it was never collected (not needed by the selected controls, or not in the snapshot).
"""

from __future__ import annotations

import datetime as dt
import errno
import gzip
import json
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

SNAPSHOT_FORMAT = "pytest-dbsec/snapshot"
SNAPSHOT_VERSION = 1
# meta keys computed from the sections when a snapshot is written (recomputed, not loaded)
_DERIVED_META = ("calls", "calls_by_route", "throttled_calls")

OK, ERROR, ABSENT = "ok", "error", "absent"
ACCOUNT = "account"  # the scope name of account-level sections

# Permissions API object types whose per-object ACLs are read, one data section per type
# (``acls_jobs``, ``acls_cluster_policies`` ...): reading a type costs one call per object, so a run
# reads only the types its selected controls judge. Each holds {"acls": {"<type>/<id>": acl},
# "vanished": ["<type>/<id>", ...]}.
ACL_OBJECT_TYPES = ("clusters", "cluster-policies", "instance-pools", "jobs", "pipelines", "warehouses",
                    "serving-endpoints", "dashboards", "repos")


def acl_section(object_type: str) -> str:
    """The data section holding the ACLs of one Permissions API object type."""
    return "acls_" + object_type.replace("-", "_")


ACL_SECTIONS = tuple(acl_section(t) for t in ACL_OBJECT_TYPES)
# Snapshots written before the split hold every type in one section; loading splits it (_split_legacy)
LEGACY_ACL_SECTION = "object_acls"


class SectionUnavailable(Exception):
    """A control asked for data that could not be read. Controls turn this into an ERROR."""

    def __init__(self, scope: str, section: str, reason: str):
        self.scope, self.section, self.reason = scope, section, reason
        super().__init__(f"data section '{section}' for {scope} is unavailable: {reason}")


class SnapshotError(Exception):
    """A snapshot file is unreadable or malformed. The message names the file and the key."""


@dataclass
class Section:
    name: str
    status: str = ABSENT
    data: Any = None
    error: str | None = None
    calls: list[dict] = field(default_factory=list)  # {"method", "path", "status"} per HTTP request
    collected_at: str | None = None  # ISO-8601 UTC; controls use it as "now" so replay matches
    elapsed_s: float = 0.0

    def to_json(self) -> dict:
        return {
            "status": self.status,
            "data": self.data,
            "error": self.error,
            "calls": self.calls,
            "collected_at": self.collected_at,
            "elapsed_s": round(self.elapsed_s, 3),
        }

    @classmethod
    def from_json(cls, name: str, obj: dict, where: str) -> "Section":
        _expect(obj, dict, where)
        status = obj.get("status")
        if status not in (OK, ERROR, ABSENT):
            raise SnapshotError(f"{where}.status: expected one of ok/error/absent, got {status!r}")
        if status == ERROR and not isinstance(obj.get("error"), str):
            raise SnapshotError(f"{where}.error: a section in error must say why (a string)")
        if status == OK and obj.get("collected_at") is not None:
            _parse_time(obj["collected_at"], f"{where}.collected_at")
        calls = obj.get("calls", [])
        _expect(calls, list, f"{where}.calls")
        return cls(
            name=name,
            status=status,
            data=obj.get("data"),
            error=obj.get("error"),
            calls=calls,
            collected_at=obj.get("collected_at"),
            elapsed_s=float(obj.get("elapsed_s") or 0.0),
        )


@dataclass
class Scope:
    """The account, or one workspace: an identity plus its sections."""

    name: str  # "account" or the workspace name
    kind: str  # "account" | "workspace"
    id: str | int | None = None
    host: str | None = None
    sections: dict[str, Section] = field(default_factory=dict)
    # a workspace of an account-wide run that could not be read at all (not RUNNING, no URL, its
    # credential refused, no answer): why. Its sections are errors with that reason; the INC controls
    # treat it as one gap a baseline waiver can accept (a section failing in a read workspace is not one)
    unread: str | None = None

    def section(self, name: str) -> Section:
        return self.sections.get(name) or Section(name)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "id": self.id,
            "host": self.host,
            **({"unread": self.unread} if self.unread else {}),
            "sections": {n: s.to_json() for n, s in sorted(self.sections.items()) if s.status != ABSENT},
        }

    @classmethod
    def from_json(cls, obj: dict, where: str) -> "Scope":
        _expect(obj, dict, where)
        for key in ("name", "kind"):
            if not isinstance(obj.get(key), str):
                raise SnapshotError(f"{where}.{key}: required string is missing")
        if obj["kind"] not in ("account", "workspace"):
            raise SnapshotError(f"{where}.kind: expected 'account' or 'workspace', got {obj['kind']!r}")
        sections = obj.get("sections", {})
        _expect(sections, dict, f"{where}.sections")
        loaded = {n: Section.from_json(n, s, f"{where}.sections.{n}") for n, s in sections.items()}
        legacy = loaded.pop(LEGACY_ACL_SECTION, None)
        if legacy is not None:
            for sec in _split_legacy(legacy, f"{where}.sections.{LEGACY_ACL_SECTION}"):
                loaded.setdefault(sec.name, sec)
        unread = obj.get("unread")
        if unread is not None and not (isinstance(unread, str) and unread.strip()):
            raise SnapshotError(f"{where}.unread: expected the reason the workspace could not be read (a string)")
        return cls(name=obj["name"], kind=obj["kind"], id=obj.get("id"), host=obj.get("host"), sections=loaded,
                   unread=unread)


def merged_acls(parts: dict[str, Any]) -> dict:
    """The deprecated ``object_acls`` view: the data of the per-type ACL sections (name -> data) merged
    into the shape that section had, {"acls": {"<type>/<id>": acl}, "vanished": ["<type>/<id>", ...]}."""
    acls: dict = {}
    vanished: list = []
    for name in ACL_SECTIONS:
        data = parts.get(name) or {}
        acls.update(data.get("acls") or {})
        vanished += list(data.get("vanished") or [])
    # sorted by key: the same order live and from a snapshot (which is written with sorted keys)
    return {"acls": dict(sorted(acls.items())), "vanished": sorted(vanished)}


def _split_legacy(old: Section, where: str) -> list[Section]:
    """The per-type ACL sections an ``object_acls`` section of an older snapshot stands for: it read
    every type at once, so each type gets its status, error and time, the ACLs and vanished objects
    keyed "<type>/<id>" of that type, and the calls on that type's permissions path. A replay then
    judges exactly what the run that saved it saw."""
    data = old.data if old.status == OK else None
    if old.status == OK:
        _expect(data, dict, where + ".data")
        _expect(data.get("acls") or {}, dict, where + ".data.acls")
        _expect(data.get("vanished") or [], list, where + ".data.vanished")
    out = []
    for obj_type in ACL_OBJECT_TYPES:
        prefix = obj_type + "/"
        part = None
        if data is not None:
            part = {"acls": {k: v for k, v in (data.get("acls") or {}).items() if k.startswith(prefix)},
                    "vanished": [k for k in data.get("vanished") or [] if str(k).startswith(prefix)]}
        calls = [c for c in old.calls if isinstance(c, dict)
                 and str(c.get("path") or "").startswith(f"/api/2.0/permissions/{prefix}")]
        out.append(Section(name=acl_section(obj_type), status=old.status, data=part, error=old.error, calls=calls,
                           collected_at=old.collected_at))
    return out


@dataclass
class Inventory:
    """All scopes of one run. Thread-safe for the concurrent collectors that fill it."""

    meta: dict = field(default_factory=dict)
    account: Scope | None = None
    workspaces: dict[str, Scope] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def scope(self, name: str) -> Scope:
        if name == ACCOUNT:
            if self.account is None:
                raise KeyError("this run has no account scope (pass --databricks-account-profile)")
            return self.account
        return self.workspaces[name]

    def scopes(self) -> Iterator[Scope]:
        if self.account is not None:
            yield self.account
        yield from self.workspaces.values()

    def put(self, scope: str, section: Section) -> None:
        with self._lock:
            self.scope(scope).sections[section.name] = section

    @property
    def errors(self) -> list[dict]:
        return [
            {"scope": sc.name, "section": s.name, "error": s.error}
            for sc in self.scopes()
            for s in sc.sections.values()
            if s.status == ERROR
        ]

    @property
    def complete(self) -> bool:
        return not self.errors

    def call_totals(self) -> dict:
        """HTTP requests of every collected section: in all, per route (``throttle.route_of``), and
        how many were answered 429/503 (retried or failed)."""
        from .throttle import route_of

        calls = [c for sc in self.scopes() for s in sc.sections.values() for c in s.calls]
        by_route: dict[str, int] = {}
        for c in calls:
            key = f"{c.get('method')} {route_of(c.get('path') or '')}"
            by_route[key] = by_route.get(key, 0) + 1
        return {"calls": len(calls), "calls_by_route": dict(sorted(by_route.items())),
                "throttled_calls": sum(1 for c in calls if c.get("status") in (429, 503))}

    # -- snapshot -------------------------------------------------------------------------------

    def to_json(self) -> dict:
        return {
            "format": SNAPSHOT_FORMAT,
            "version": SNAPSHOT_VERSION,
            "meta": {**self.meta, "complete": self.complete, "errors": self.errors, **self.call_totals()},
            "account": self.account.to_json() if self.account else None,
            "workspaces": [ws.to_json() for ws in self.workspaces.values()],
        }

    def save(self, path: str | Path) -> Path:
        """Write the snapshot atomically (gzip when the name ends in .gz): never a half-written file."""
        path = Path(path)
        text = json.dumps(self.to_json(), indent=1, sort_keys=True, default=str)
        payload = gzip.compress(text.encode()) if path.suffix == ".gz" else text.encode()
        return write_atomic(path, payload)

    @classmethod
    def from_json(cls, obj: Any, where: str = "snapshot") -> "Inventory":
        _expect(obj, dict, where)
        if obj.get("format") != SNAPSHOT_FORMAT:
            raise SnapshotError(f"{where}.format: not a pytest-dbsec snapshot (expected {SNAPSHOT_FORMAT!r})")
        if obj.get("version") != SNAPSHOT_VERSION:
            raise SnapshotError(
                f"{where}.version: snapshot version {obj.get('version')!r} is not supported "
                f"(this tool reads version {SNAPSHOT_VERSION})"
            )
        meta = obj.get("meta", {})
        _expect(meta, dict, f"{where}.meta")
        account = obj.get("account")
        workspaces = obj.get("workspaces", [])
        _expect(workspaces, list, f"{where}.workspaces")
        inv = cls(meta={k: v for k, v in meta.items() if k not in ("complete", "errors", *_DERIVED_META)})
        if account is not None:
            inv.account = Scope.from_json(account, f"{where}.account")
        for i, ws in enumerate(workspaces):
            scope = Scope.from_json(ws, f"{where}.workspaces[{i}]")
            if scope.name in inv.workspaces:
                raise SnapshotError(f"{where}.workspaces[{i}].name: duplicate workspace {scope.name!r}")
            inv.workspaces[scope.name] = scope
        return inv

    @classmethod
    def load(cls, path: str | Path) -> "Inventory":
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise SnapshotError(f"{path}: cannot read snapshot: {e.strerror or e}") from None
        try:
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            obj = json.loads(raw.decode())
        except json.JSONDecodeError as e:
            raise SnapshotError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
        except (OSError, EOFError, UnicodeDecodeError) as e:
            raise SnapshotError(f"{path}: not a readable snapshot: {e}") from None
        try:
            return cls.from_json(obj, where=str(path))
        except SnapshotError as e:
            # the key path in the message locates the problem; JSON snapshots are machine-written
            raise SnapshotError(str(e)) from None


# What a file system says when it cannot do a step of the atomic replace below (a temp file opened
# read-write, chmod, fsync, rename). FUSE mounts of object storage -- a Unity Catalog volume under
# /Volumes/... is one -- support a file written start to finish and closed, but not always the rest:
# rename has been seen to fail there with ENOSYS, and appends with ESPIPE.
_CANNOT = {errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EINVAL, errno.ESPIPE, errno.EXDEV}


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write a file so that readers see the old content or the new, never a half-written one: a unique
    temp file beside it (two runs sharing a folder cannot collide), fsync, then rename over.

    Where the file system cannot do that (see _CANNOT), the file is written directly, in one sequential
    write: the one operation such mounts do support. An object-storage mount stores the object when
    the file is closed, so readers there still see a whole file, old or new."""
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _replace(path, payload)
    except OSError as e:
        if e.errno not in _CANNOT:
            raise
        with open(path, "wb") as f:
            f.write(payload)
    return path


def _replace(path: Path, payload: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; reports and baselines are meant to be shared, so follow the umask
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_time(value: Any, where: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise SnapshotError(f"{where}: not an ISO-8601 time: {value!r}") from None


def parse_iso(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _expect(value: Any, typ: type, where: str) -> None:
    if not isinstance(value, typ):
        raise SnapshotError(f"{where}: expected {typ.__name__}, got {type(value).__name__}")
