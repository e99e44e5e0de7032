"""Controls and findings as data. Every report is rendered from these objects, never from pytest's
own report text.

A *control* is declared once, on its test, with the ``dbsec`` marker::

    @pytest.mark.dbsec(
        id="TOK-01", title="No token without expiry", severity="high", scope="workspace",
        sections=["tokens"], refs={"SAT": ["IA-4"], "CIS": ["2.1.6"]},
        rationale="...", remediation="...",
    )
    def test_TOK_01_no_token_without_expiry(workspace, findings): ...

The test records what it found with ``findings.fail(...)``; a control with findings fails.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("critical", "high", "medium", "low", "info")
SCOPES = ("workspace", "account")
FRAMEWORKS = ("SAT", "CIS", "SOC2", "NIST", "ISO27001", "seeds")
ID_PATTERN = re.compile(r"^[A-Z]{2,5}-\d{2,3}$")

# outcomes of one control on one target
PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"


class ControlDefinitionError(Exception):
    """A control's metadata is missing or invalid. Reported as a collection error."""


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    severity: str
    scope: str
    sections: tuple[str, ...]
    refs: dict[str, tuple[str, ...]]
    rationale: str
    remediation: str

    @classmethod
    def from_marker(cls, kwargs: dict, where: str, known_sections: set[str] | None = None) -> "Control":
        """Validate the ``dbsec`` marker's keyword arguments; every problem is named."""
        required = ("id", "title", "severity", "scope", "sections", "refs", "rationale", "remediation")
        missing = [k for k in required if k not in kwargs]
        unknown = sorted(set(kwargs) - set(required))
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown key(s) {', '.join(unknown)}")
        cid = kwargs.get("id")
        if "id" in kwargs and not (isinstance(cid, str) and ID_PATTERN.match(cid)):
            problems.append(f"id {cid!r} is not of the form AREA-NN (e.g. TOK-01)")
        for key in ("title", "rationale", "remediation"):
            if key in kwargs and not (isinstance(kwargs[key], str) and kwargs[key].strip()):
                problems.append(f"{key} must be a non-empty string")
        if "severity" in kwargs and kwargs["severity"] not in SEVERITIES:
            problems.append(f"severity {kwargs['severity']!r} is not one of {', '.join(SEVERITIES)}")
        if "scope" in kwargs and kwargs["scope"] not in SCOPES:
            problems.append(f"scope {kwargs['scope']!r} is not one of {', '.join(SCOPES)}")
        sections = kwargs.get("sections")
        if "sections" in kwargs:
            if not (isinstance(sections, (list, tuple)) and sections and all(isinstance(s, str) for s in sections)):
                problems.append("sections must be a non-empty list of data section names")
            elif known_sections is not None:
                bad = [s for s in sections if s not in known_sections]
                if bad:
                    problems.append(f"unknown data section(s) {', '.join(bad)} "
                                    f"(known: {', '.join(sorted(known_sections))})")
        refs = kwargs.get("refs")
        if "refs" in kwargs:
            if not isinstance(refs, dict) or not refs:
                problems.append("refs must map a framework to a list of references")
            else:
                for fw, items in refs.items():
                    if fw not in FRAMEWORKS:
                        problems.append(f"refs: unknown framework {fw!r} (known: {', '.join(FRAMEWORKS)})")
                    elif not (isinstance(items, (list, tuple)) and all(isinstance(i, str) for i in items)):
                        problems.append(f"refs.{fw} must be a list of strings")
        if problems:
            raise ControlDefinitionError(f"{where}: invalid dbsec marker: {'; '.join(problems)}")
        return cls(
            id=cid,
            title=kwargs["title"].strip(),
            severity=kwargs["severity"],
            scope=kwargs["scope"],
            sections=tuple(sections),
            refs={fw: tuple(items) for fw, items in refs.items()},
            rationale=kwargs["rationale"].strip(),
            remediation=kwargs["remediation"].strip(),
        )

    def to_json(self) -> dict:
        d = asdict(self)
        d["sections"] = list(self.sections)
        d["refs"] = {k: list(v) for k, v in self.refs.items()}
        return d


@dataclass
class Finding:
    """One offending resource: what was seen, what was expected."""

    control_id: str
    target: str  # workspace name or "account"
    resource_type: str
    resource_id: str
    resource_name: str
    seen: str
    expected: str
    owner: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Stable identity of the finding: control + target + resource, not its display text."""
        key = "\x1f".join((self.control_id, self.target, self.resource_type, self.resource_id))
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def to_json(self) -> dict:
        d = asdict(self)
        d["fingerprint"] = self.fingerprint
        return d

    def line(self) -> str:
        owner = f", owner {self.owner}" if self.owner else ""
        name = f" {self.resource_name!r}" if self.resource_name and self.resource_name != self.resource_id else ""
        return (f"{self.resource_type} {self.resource_id}{name}{owner}: "
                f"seen {self.seen}; expected {self.expected}")


class FindingRecorder:
    """The ``findings`` fixture: what one control found on one target."""

    def __init__(self, control: Control, target: str):
        self.control = control
        self.target = target
        self.items: list[Finding] = []

    def fail(self, *, resource_type: str, resource_id: Any, seen: str, expected: str,
             resource_name: str | None = None, owner: str | None = None, **details: Any) -> Finding:
        f = Finding(
            control_id=self.control.id,
            target=self.target,
            resource_type=resource_type,
            resource_id=str(resource_id),
            resource_name=str(resource_name if resource_name is not None else resource_id),
            seen=str(seen),
            expected=str(expected),
            owner=owner,
            details=details,
        )
        self.items.append(f)
        return f

    def __len__(self) -> int:
        return len(self.items)

    def failure_message(self) -> str:
        c = self.control
        n = len(self.items)
        lines = [f"{c.id} {c.title} [{c.severity}]: {n} finding{'s' if n != 1 else ''} in {self.target}"]
        lines += [f"  - {f.line()}" for f in self.items]
        lines.append(f"Remediation: {c.remediation}")
        return "\n".join(lines)


@dataclass
class Outcome:
    """The result of one control on one target: the unit every report row is made of."""

    control: Control
    target: str
    nodeid: str
    outcome: str  # passed | failed | error | skipped
    findings: list[Finding] = field(default_factory=list)
    reason: str | None = None  # why it errored or was skipped
    duration_s: float = 0.0

    def to_json(self) -> dict:
        return {
            "control_id": self.control.id,
            "title": self.control.title,
            "severity": self.control.severity,
            "scope": self.control.scope,
            "target": self.target,
            "nodeid": self.nodeid,
            "outcome": self.outcome,
            "reason": self.reason,
            "findings": [f.to_json() for f in self.findings],
            "refs": {k: list(v) for k, v in self.control.refs.items()},
            "remediation": self.control.remediation,
        }
