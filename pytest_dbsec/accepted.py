"""Accepted findings: the failures that existed when a team adopted the audit, so that only new
failures fail the run.

``dbsec baseline accept --from reports/findings.json -o baselines/accepted.yaml`` records each open
failure of a run by its fingerprint (a hash of control + target + resource, stable across runs and
independent of display text); ``pytest --dbsec-accepted baselines/accepted.yaml`` then reports those
findings as ACCEPTED and fails only on findings that are not listed.

The file is YAML meant to be reviewed and committed::

    format: pytest-dbsec/accepted
    version: 1
    created: 2026-05-09
    accepted:
    - fingerprint: 3f2a9c0b1d4e5f60
      control: TOK-01
      target: prod
      resource_type: token
      resource_id: tok-123
      resource_name: ci-token
      accepted_on: 2026-05-09

An entry may carry a ``note`` (why it is tolerated, a ticket). Entries are sorted by control, target
and resource, so that regenerating the file gives a readable diff.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import yaml

from .inventory import write_atomic
from .baseline import (_CONTROL, _DATE, _TEXT, Problem, _obj, _render, jsonable, key_path, parse_date, parse_yaml,
                       schema_problems, validator)

FORMAT = "pytest-dbsec/accepted"
VERSION = 1
FINDINGS_FORMAT = "pytest-dbsec/findings"
FINDINGS_VERSION = 1


class AcceptedError(Exception):
    """An accepted-findings file (or the findings.json it is made from) is unusable; the message
    names file, line and key of each problem, one per line."""

    def __init__(self, message: str, problems=()):
        super().__init__(message)
        self.problems = list(problems)

    @classmethod
    def of(cls, problems) -> "AcceptedError":
        unique, message = _render(problems)
        return cls(message, unique)


_ENTRY = _obj(
    {"fingerprint": {"type": "string", "pattern": r"^[0-9a-f]{8,64}$",
                     "x-expected": "a finding fingerprint (lowercase hex, as in findings.json)"},
     "control": _CONTROL, "target": _TEXT,
     "resource_type": {"type": "string", "x-expected": "a text"},
     "resource_id": {"type": "string", "x-expected": "a text"},
     "resource_name": {"type": "string", "x-expected": "a text"},
     "accepted_on": _DATE, "note": _TEXT},
    required=("fingerprint", "control", "target", "accepted_on"),
    why={"fingerprint": "the fingerprint is what matches a finding",
         "accepted_on": "an acceptance records when it was made"})

SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://pytest-dbsec/accepted.schema.json",
    "title": "pytest-dbsec accepted findings",
    **_obj({"format": {"const": FORMAT, "x-expected": f"{FORMAT!r}"},
            "version": {"const": VERSION, "x-expected": f"{VERSION} (the only version this pytest-dbsec reads)"},
            "created": _DATE,
            "accepted": {"type": "array", "items": _ENTRY, "x-expected": "a list of accepted findings"}},
           required=("format", "version", "accepted"),
           why={"format": f"an accepted-findings file starts with format: {FORMAT}",
                "version": f"version: {VERSION}"}),
}

_VALIDATOR = validator(SCHEMA)


@dataclass(frozen=True)
class AcceptedEntry:
    fingerprint: str
    control: str
    target: str
    resource_type: str
    resource_id: str
    resource_name: str
    accepted_on: date
    source: str  # "path:line"
    note: str | None = None

    def to_doc(self) -> dict:
        d = {"fingerprint": self.fingerprint, "control": self.control, "target": self.target,
             "resource_type": self.resource_type, "resource_id": self.resource_id,
             "resource_name": self.resource_name, "accepted_on": self.accepted_on.isoformat()}
        if self.note:
            d["note"] = self.note
        return d


def _sort_key(e: dict) -> tuple:
    return (e.get("control", ""), e.get("target", ""), e.get("resource_type", ""), e.get("resource_id", ""),
            e["fingerprint"])


# -- making a document from a run -------------------------------------------------------------------------


def accepted_from_findings(findings_json: dict, today: date, *, keep_accepted: bool = True,
                           source: str = "findings.json") -> dict:
    """The accepted-findings document for a run's findings.json: every open finding (no disposition,
    or one that is no longer active, e.g. an expired waiver), by fingerprint.

    With ``keep_accepted`` (the default), findings the run already reported as accepted are kept
    too: they still fail without the file, and regenerating the file after a run that used it must
    not drop them. Actively waived findings are never included: the waiver covers them, and when
    it expires they must surface. ``accepted_on`` is ``today``; ``merge`` keeps earlier dates."""
    problems = []

    def bad(path: tuple, text: str) -> None:
        problems.append(f"{source}: {key_path(path)}: {text}" if path else f"{source}: {text}")

    if not isinstance(findings_json, dict):
        raise AcceptedError(f"{source}: not a pytest-dbsec findings.json (expected a JSON object)")
    if findings_json.get("format") != FINDINGS_FORMAT:
        bad(("format",), f"expected {FINDINGS_FORMAT!r}, got {findings_json.get('format')!r}")
    if findings_json.get("version") != FINDINGS_VERSION:
        bad(("version",), f"expected {FINDINGS_VERSION}, got {findings_json.get('version')!r}")
    results = findings_json.get("results")
    if not isinstance(results, list):
        bad(("results",), "expected a list")
        results = []
    entries: dict[str, dict] = {}
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            bad(("results", i), "expected an object")
            continue
        for j, f in enumerate(r.get("findings") or []):
            path = ("results", i, "findings", j)
            if not isinstance(f, dict):
                bad(path, "expected an object")
                continue
            fp = f.get("fingerprint")
            if not (isinstance(fp, str) and fp):
                bad(path + ("fingerprint",), "missing")
                continue
            d = f.get("disposition")
            if d is not None and not isinstance(d, dict):
                bad(path + ("disposition",), "expected null or an object")
                continue
            if d and d.get("active", True) and not (keep_accepted and d.get("kind") == "accepted"):
                continue  # waived (or, without keep_accepted, already accepted): not an open failure
            control = r.get("control_id") or f.get("control_id")
            target = r.get("target") or f.get("target")
            if not control or not target:
                bad(("results", i), "control_id and target are required")
                continue
            entries.setdefault(fp, {
                "fingerprint": fp, "control": str(control), "target": str(target),
                "resource_type": str(f.get("resource_type") or ""), "resource_id": str(f.get("resource_id") or ""),
                "resource_name": str(f.get("resource_name") or ""), "accepted_on": today.isoformat()})
    if problems:
        raise AcceptedError("\n".join(problems))
    return {"format": FORMAT, "version": VERSION, "created": today.isoformat(),
            "accepted": sorted(entries.values(), key=_sort_key)}


def merge(old_doc: dict, new_doc: dict, *, prune: bool = False) -> dict:
    """Combine an existing accepted document with a new one. An entry in both keeps the earliest
    ``accepted_on`` (and the old note, unless the new entry has one) but takes the new resource
    details. Entries only in the old document stay, unless ``prune`` (then the result is the new
    set, with the old dates: "re-accept what still fails, forget what was fixed")."""
    for name, doc in (("old", old_doc), ("new", new_doc)):
        if not isinstance(doc, dict) or not isinstance(doc.get("accepted"), list):
            raise AcceptedError(f"merge: the {name} document has no 'accepted' list")
    old = {e["fingerprint"]: e for e in old_doc["accepted"]}
    out: dict[str, dict] = {}
    for e in new_doc["accepted"]:
        e = dict(e, accepted_on=parse_date(e["accepted_on"]).isoformat())
        prev = old.get(e["fingerprint"])
        if prev is not None:
            e["accepted_on"] = min(e["accepted_on"], parse_date(prev["accepted_on"]).isoformat())
            if prev.get("note") and not e.get("note"):
                e["note"] = prev["note"]
        out[e["fingerprint"]] = e
    if not prune:
        for fp, e in old.items():
            out.setdefault(fp, dict(e, accepted_on=parse_date(e["accepted_on"]).isoformat()))
    created = new_doc.get("created") or old_doc.get("created")
    return {"format": FORMAT, "version": VERSION,
            "created": parse_date(created).isoformat() if created else date.today().isoformat(),
            "accepted": sorted(out.values(), key=_sort_key)}


# -- writing ----------------------------------------------------------------------------------------------

_HEADER = """\
# pytest-dbsec accepted findings: failures that already existed, tolerated so that only new ones fail.
# Written by `dbsec baseline accept`; used with `pytest --dbsec-accepted {name}`.
# A finding is matched by its fingerprint (control + target + resource). A listed finding is
# reported as ACCEPTED, never hidden; a finding not listed fails as usual. Delete an entry to make
# its finding fail again; an entry whose resource was fixed is reported as resolved.
"""


def write_accepted(doc: dict, path: str | os.PathLike) -> None:
    """Write ``doc`` as commented YAML, atomically: a reader (or a crash) sees the old file or the
    new one, never half of one. The document is validated first, so what is written loads again."""
    path = Path(path)
    problems = schema_problems(_VALIDATOR, jsonable(doc), lambda p: ("accepted document", 0))
    if problems:
        raise AcceptedError("\n".join(f"{p.file}: {p.key}: {p.text}" for p in problems))
    plain = jsonable(doc)
    # dates as YAML dates (2026-05-09), not quoted strings: easier to read and review
    if "created" in plain:
        plain["created"] = parse_date(plain["created"])
    plain["accepted"] = [dict(e, accepted_on=parse_date(e["accepted_on"])) for e in plain["accepted"]]
    body = yaml.safe_dump(plain, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)
    text = _HEADER.format(name=path.name) + body
    write_atomic(path, text)


# -- reading ----------------------------------------------------------------------------------------------


class AcceptedSet:
    """A loaded accepted-findings file."""

    def __init__(self, path: Path, entries: list[AcceptedEntry], created: date | None = None, sha256: str = ""):
        self.path, self.entries, self.created, self.sha256 = path, entries, created, sha256
        self._by_fingerprint = {e.fingerprint: e for e in entries}

    def __repr__(self) -> str:
        return f"<AcceptedSet {self.path} entries={len(self.entries)}>"

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[AcceptedEntry]:
        return iter(self.entries)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AcceptedSet":
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise AcceptedError(f"{path}: cannot read: {e.strerror or e}") from None
        doc = parse_yaml(str(path), raw)
        if not doc.ok:
            raise AcceptedError.of(doc.problems)
        problems = schema_problems(_VALIDATOR, jsonable(doc.data), lambda p: (doc.file, doc.line_of(p)))
        if problems:
            raise AcceptedError.of(problems)
        first: dict[str, int] = {}
        for i, e in enumerate(doc.data["accepted"]):
            where = ("accepted", i, "fingerprint")
            if e["fingerprint"] in first:
                problems.append(Problem(doc.file, doc.line_of(where), key_path(where),
                                        f"duplicate fingerprint {e['fingerprint']} (first on line {first[e['fingerprint']]})"))
            else:
                first[e["fingerprint"]] = doc.line_of(where)
        if problems:
            raise AcceptedError.of(problems)
        entries = [AcceptedEntry(
            fingerprint=e["fingerprint"], control=e["control"], target=e["target"],
            resource_type=e.get("resource_type", ""), resource_id=e.get("resource_id", ""),
            resource_name=e.get("resource_name", ""), accepted_on=parse_date(e["accepted_on"]),
            source=f"{doc.file}:{doc.line_of(('accepted', i))}", note=e.get("note"))
            for i, e in enumerate(doc.data["accepted"])]
        created = parse_date(doc.data["created"]) if "created" in doc.data else None
        return cls(path, entries, created, hashlib.sha256(raw).hexdigest())

    def match(self, fingerprint: str) -> AcceptedEntry | None:
        return self._by_fingerprint.get(fingerprint)

    def source(self, entry: AcceptedEntry) -> str:
        return entry.source

    def unmatched(self, fingerprints: set[str]) -> list[AcceptedEntry]:
        """Entries whose finding was not seen among ``fingerprints``: fixed, or not judged this run."""
        return [e for e in self.entries if e.fingerprint not in fingerprints]

    def to_doc(self) -> dict:
        """The document again (for ``merge``)."""
        return {"format": FORMAT, "version": VERSION,
                "created": (self.created or min((e.accepted_on for e in self.entries), default=date.today())).isoformat(),
                "accepted": [e.to_doc() for e in self.entries]}


def load_doc(path: Any) -> dict:
    """A validated accepted-findings file as a document (what ``merge`` takes)."""
    return AcceptedSet.load(path).to_doc()
