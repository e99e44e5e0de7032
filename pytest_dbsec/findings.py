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
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

from .inventory import ACL_SECTIONS, LEGACY_ACL_SECTION

SEVERITIES = ("critical", "high", "medium", "low", "info")
SCOPES = ("workspace", "account")
FRAMEWORKS = ("SAT", "CIS", "SOC2", "NIST", "ISO27001", "seeds")
ID_PATTERN = re.compile(r"^[A-Z]{2,5}-\d{2,3}$")

# outcomes of one control on one target
PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"
WAIVED, ACCEPTED, ATTESTED = "waived", "accepted", "attested"
OUTCOMES = (FAILED, ERROR, WAIVED, ACCEPTED, ATTESTED, PASSED, SKIPPED)


def day(ms: int | float) -> str:
    """The UTC date of an API time in epoch milliseconds (how token, cluster and UC times arrive)."""
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d")


class ControlDefinitionError(Exception):
    """A control's metadata is missing or invalid. Reported as a collection error."""


class DeprecatedSectionWarning(FutureWarning):
    """A control declares a data section by a name that still works but will go away."""


def expand_sections(sections, where: str) -> list:
    """The deprecated ``object_acls`` (one section for every object type's ACLs, before the per-type
    split) stands for every ``acls_<type>`` section; ``workspace.data("object_acls")`` still returns the
    merged view in the old shape. Warns, naming the sections to declare instead."""
    if not (isinstance(sections, (list, tuple)) and LEGACY_ACL_SECTION in sections):
        return sections
    warnings.warn(DeprecatedSectionWarning(
        f"{where}: data section {LEGACY_ACL_SECTION!r} is deprecated: it reads the ACLs of every object type "
        f"({', '.join(ACL_SECTIONS)}); declare only the acls_<type> sections the control judges"),
        stacklevel=3)
    out: list = []
    for s in sections:
        for name in (ACL_SECTIONS if s == LEGACY_ACL_SECTION else (s,)):
            if name not in out:
                out.append(name)
    return out


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
    verified_by: str = "api"  # "attestation": no API can verify it; passes only on a current attestation

    @classmethod
    def from_marker(cls, kwargs: dict, where: str, known_sections: set[str] | None = None) -> "Control":
        """Validate the ``dbsec`` marker's keyword arguments; every problem is named."""
        required = ("id", "title", "severity", "scope", "sections", "refs", "rationale", "remediation")
        optional = ("verified_by",)
        missing = [k for k in required if k not in kwargs]
        unknown = sorted(set(kwargs) - set(required) - set(optional))
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
        verified_by = kwargs.get("verified_by", "api")
        if verified_by not in ("api", "attestation"):
            problems.append(f"verified_by {verified_by!r} is not one of api, attestation")
        sections = expand_sections(kwargs.get("sections"), where)
        if "sections" in kwargs:
            if verified_by == "attestation" and sections == []:
                pass  # nothing to read: the baseline's attestation is the evidence
            elif not (isinstance(sections, (list, tuple)) and sections and all(isinstance(s, str) for s in sections)):
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
            verified_by=verified_by,
        )

    def to_json(self) -> dict:
        d = asdict(self)
        d["sections"] = list(self.sections)
        d["refs"] = {k: list(v) for k, v in self.refs.items()}
        return d


@dataclass
class Disposition:
    """Why a finding does not fail the run: a waiver (from the baseline) or an accepted finding.

    An expired waiver is recorded too (``active`` False): it no longer protects, and says so."""

    kind: str  # "waived" | "accepted"
    justification: str
    approver: str | None = None
    expires: str | None = None  # ISO date; None for accepted findings
    source: str = ""  # where it is declared: "baselines/prod.yaml:14"
    active: bool = True

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict | None) -> "Disposition | None":
        return cls(**d) if d else None


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
    disposition: Disposition | None = None  # active: the finding does not fail the run
    expired_waiver: Disposition | None = None  # a matching waiver had expired: reported, no protection

    @property
    def open(self) -> bool:
        return self.disposition is None or not self.disposition.active

    @property
    def fingerprint(self) -> str:
        """Stable identity of the finding: control + target + resource, not its display text."""
        key = "\x1f".join((self.control_id, self.target, self.resource_type, self.resource_id))
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def to_json(self) -> dict:
        d = asdict(self)
        d["fingerprint"] = self.fingerprint
        d["disposition"] = self.disposition.to_json() if self.disposition else None
        d["expired_waiver"] = self.expired_waiver.to_json() if self.expired_waiver else None
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Finding":
        d = {k: v for k, v in d.items() if k != "fingerprint"}
        d["disposition"] = Disposition.from_json(d.get("disposition"))
        d["expired_waiver"] = Disposition.from_json(d.get("expired_waiver"))
        return cls(**d)

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
        lines += [f"  - {f.line()}{disposition_note(f)}" for f in self.items]
        lines.append(f"Remediation: {c.remediation}")
        return "\n".join(lines)


def disposition_note(f: Finding) -> str:
    """`` [waived by X until D: why]``, `` [accepted ...]``, `` [waiver expired D]`` or nothing."""
    if f.disposition and f.disposition.active:
        d = f.disposition
        why = f": {d.justification}" if d.kind == "waived" and d.justification else ""
        return f" [{d.kind}{' by ' + d.approver if d.approver else ''}{' until ' + d.expires if d.expires else ''}{why}]"
    if f.expired_waiver:
        return f" [waiver expired {f.expired_waiver.expires}]"
    return ""


def verdict(findings: list[Finding]) -> str:
    """The outcome a control's findings add up to: any open finding fails it; otherwise it is
    waived (at least one waiver) or accepted; no findings at all is a pass."""
    if not findings:
        return PASSED
    if any(f.open for f in findings):
        return FAILED
    if any(f.disposition.kind == "waived" for f in findings):
        return WAIVED
    return ACCEPTED


@dataclass
class Outcome:
    """The result of one control on one target: the unit every report row is made of."""

    control: Control
    target: str
    nodeid: str
    outcome: str  # one of OUTCOMES
    findings: list[Finding] = field(default_factory=list)
    reason: str | None = None  # why it errored or was skipped; the attestation statement; ...
    duration_s: float = 0.0
    severity: str | None = None  # effective severity when the baseline re-rates the control
    attestation: dict | None = None  # the attestation an ATTESTED control rests on

    @property
    def effective_severity(self) -> str:
        return self.severity or self.control.severity

    @property
    def open_findings(self) -> list[Finding]:
        return [f for f in self.findings if f.open]

    def to_json(self) -> dict:
        return {
            "control_id": self.control.id,
            "title": self.control.title,
            "severity": self.effective_severity,
            "declared_severity": self.control.severity,
            "scope": self.control.scope,
            "target": self.target,
            "nodeid": self.nodeid,
            "outcome": self.outcome,
            "reason": self.reason,
            "duration_s": round(self.duration_s, 3),
            "findings": [f.to_json() for f in self.findings],
            "attestation": self.attestation,
            "control": self.control.to_json(),
        }

    @classmethod
    def from_json(cls, d: dict) -> "Outcome":
        c = d["control"]
        control = Control(id=c["id"], title=c["title"], severity=c["severity"], scope=c["scope"],
                          sections=tuple(c["sections"]), refs={k: tuple(v) for k, v in c["refs"].items()},
                          rationale=c["rationale"], remediation=c["remediation"],
                          verified_by=c.get("verified_by", "api"))
        return cls(control=control, target=d["target"], nodeid=d["nodeid"], outcome=d["outcome"],
                   findings=[Finding.from_json(f) for f in d["findings"]], reason=d.get("reason"),
                   duration_s=d.get("duration_s", 0.0),
                   severity=d["severity"] if d["severity"] != c["severity"] else None,
                   attestation=d.get("attestation"))


# -- judging findings against the baseline ---------------------------------------------------------
# The baseline and accepted-findings objects are passed in (pytest_dbsec.baseline / .accepted); this
# module only needs their documented attributes.

SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}  # critical 0 ... info 4


def apply_dispositions(findings: list[Finding], baseline, accepted, today) -> None:
    """Mark each finding waived (an active waiver matches), accepted (its fingerprint is in the
    accepted file) or leave it open. A matching waiver that has expired is recorded on the finding
    so the reports say why it no longer protects."""
    for f in findings:
        if f.disposition is not None:
            continue  # decided by the control itself (an INC control's accepted workspace gap)
        active, expired = baseline.waiver_for(f.control_id, f.target, f.resource_type, f.resource_id,
                                              f.resource_name, today)
        if active is not None:
            f.disposition = Disposition("waived", active.justification, active.approver,
                                        active.expires.isoformat(), active.source)
        elif accepted is not None and (entry := accepted.match(f.fingerprint)) is not None:
            f.disposition = Disposition("accepted", f"accepted on {entry.accepted_on.isoformat()}",
                                        source=entry.source)
        if expired is not None and active is None:
            f.expired_waiver = Disposition("waived", expired.justification, expired.approver,
                                           expired.expires.isoformat(), expired.source, active=False)


def check_attestation(control: Control, recorder: FindingRecorder, baseline, today) -> dict | None:
    """For a control no API can verify: the newest current attestation, or a finding saying why
    there is none (missing or stale)."""
    atts = sorted((a for a in baseline.attestations if a.control == control.id), key=lambda a: a.date)
    current = [a for a in atts if a.current(today)]
    if current:
        a = current[-1]
        return {"statement": a.statement, "evidence": a.evidence, "attested_by": a.attested_by,
                "date": a.date.isoformat(), "valid_days": a.valid_days, "source": a.source}
    if atts:
        a = atts[-1]
        seen = f"attestation by {a.attested_by} of {a.date.isoformat()} is stale (valid {a.valid_days} days)"
    else:
        seen = "no attestation in the baseline"
    recorder.fail(resource_type="attestation", resource_id=control.id, resource_name=control.title, seen=seen,
                  expected="a current attestation (statement, evidence, attested_by, date, valid_days) "
                           "in the baseline's attestations")
    return None


def waiver_statuses(waivers, outcomes: list[Outcome], today) -> list[dict]:
    """Every waiver with what it did in this run: active (protected something), expired (no longer
    protects), or stale (matched nothing: clean it up)."""
    matched: dict[str, int] = {}
    for o in outcomes:
        for f in o.findings:
            for d in (f.disposition, f.expired_waiver):
                if d is not None and d.kind == "waived":
                    matched[d.source] = matched.get(d.source, 0) + 1
    out = []
    for w in waivers:
        n = matched.get(w.source, 0)
        status = "expired" if w.expired(today) else ("active" if n else "stale")
        out.append({"control": w.control, "resource": w.resource, "workspace": w.workspace,
                    "justification": w.justification, "approver": w.approver,
                    "expires": w.expires.isoformat(), "source": w.source, "status": status, "matched": n})
    return out


def accepted_status(accepted, outcomes: list[Outcome]) -> dict | None:
    """How the accepted findings fared: matched now, or resolved (their control ran on their target
    and no longer finds them)."""
    if accepted is None:
        return None
    seen = {f.fingerprint for o in outcomes for f in o.findings}
    judged = {(o.control.id, o.target) for o in outcomes if o.outcome not in (ERROR, SKIPPED)}
    matched = sum(1 for e in accepted.entries if e.fingerprint in seen)
    resolved = [{"fingerprint": e.fingerprint, "control_id": e.control, "target": e.target,
                 "resource_type": e.resource_type, "resource_id": e.resource_id, "source": e.source}
                for e in accepted.entries if e.fingerprint not in seen and (e.control, e.target) in judged]
    return {"file": str(accepted.path), "entries": len(accepted.entries), "matched": matched, "resolved": resolved}


def gate(outcomes: list[Outcome], fail_on: str, allow_errors: bool, other_failures: int = 0) -> dict:
    """The CI verdict: exit 1 only for an open failure at or above ``fail_on`` (``none``: never for
    findings), for any control that could not read its data unless errors are allowed, or for a
    failing ordinary test in the same run."""
    limit = SEVERITY_RANK.get(fail_on, -1)
    failing = [o for o in outcomes if o.outcome == FAILED and SEVERITY_RANK[o.effective_severity] <= limit]
    below = [o for o in outcomes if o.outcome == FAILED and o not in failing]
    errors = [o for o in outcomes if o.outcome == ERROR]
    fails = bool(failing) or (bool(errors) and not allow_errors) or other_failures > 0
    return {
        "fail_on": fail_on,
        "allow_errors": allow_errors,
        "exit_code": 1 if fails else 0,
        "failing": [{"control_id": o.control.id, "target": o.target, "severity": o.effective_severity,
                     "open_findings": len(o.open_findings)} for o in failing],
        "below_threshold": len(below),
        "errors": [{"control_id": o.control.id, "target": o.target, "reason": o.reason} for o in errors],
        "other_failures": other_failures,
    }
