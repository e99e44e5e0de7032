"""Reports, all rendered from the same findings data (``RunReport``).

* ``findings.json`` -- the results as data (schema: ``docs/findings-schema.md``);
* ``findings.csv``  -- one row per finding (and one per result without findings), spreadsheet-safe;
* ``junit.xml``     -- one testcase per control and target, control ID and severity in the names;
* ``compliance.html`` -- through pytest-html (``html.py``);
* ``evidence.json`` -- a manifest with the SHA-256 of every report and the snapshot, the baseline and
  the run metadata, so quarterly evidence can be verified later (``dbsec verify``).

Every writer is atomic (a temp file renamed into place): an interrupted run never leaves a
half-written report behind.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from ..findings import ERROR, FAILED, OUTCOMES, SEVERITIES, Outcome, disposition_note
from ..inventory import write_atomic

FINDINGS_FORMAT = "pytest-dbsec/findings"
FINDINGS_VERSION = 1
EVIDENCE_FORMAT = "pytest-dbsec/evidence"


@dataclass
class RunReport:
    meta: dict
    outcomes: list[Outcome]
    complete: bool
    data_errors: list[dict] = field(default_factory=list)
    waivers: list[dict] = field(default_factory=list)  # every waiver: status active|expired|stale, matched
    accepted: dict | None = None  # {"file", "matched", "resolved": [...]}
    gate: dict = field(default_factory=dict)  # {"fail_on", "allow_errors", "exit_code", "failing", "errors"}

    def sorted_outcomes(self) -> list[Outcome]:
        return sorted(self.outcomes, key=lambda o: (o.control.id, o.target, o.nodeid))

    def to_json(self) -> dict:
        counts = {k: 0 for k in OUTCOMES}
        by_severity = {s: {k: 0 for k in OUTCOMES} for s in SEVERITIES}
        by_framework: dict[str, dict[str, int]] = {}
        for o in self.outcomes:
            counts[o.outcome] += 1
            by_severity[o.effective_severity][o.outcome] += 1
            for fw in o.control.refs:
                by_framework.setdefault(fw, {k: 0 for k in OUTCOMES})[o.outcome] += 1
        return {
            "format": FINDINGS_FORMAT,
            "version": FINDINGS_VERSION,
            "complete": self.complete,
            "run": self.meta,
            "summary": counts,
            "by_severity": by_severity,
            "by_framework": dict(sorted(by_framework.items())),
            "gate": self.gate,
            "data_errors": self.data_errors,
            "waivers": self.waivers,
            "accepted": self.accepted,
            "results": [o.to_json() for o in self.sorted_outcomes()],
        }


# -- findings.json -------------------------------------------------------------------------------


def render_json(report: RunReport) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=True, default=str) + "\n"


# -- findings.csv --------------------------------------------------------------------------------

CSV_COLUMNS = ("control_id", "severity", "title", "target", "outcome", "resource_type", "resource_id",
               "resource_name", "owner", "seen", "expected", "disposition", "approver", "expires",
               "fingerprint", "reason")


def spreadsheet_safe(value) -> str:
    """Workspace data is hostile: a cell starting with = + - @ would be a formula in a spreadsheet."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def render_csv(report: RunReport) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for o in report.sorted_outcomes():
        base = [o.control.id, o.effective_severity, o.control.title, o.target, o.outcome]
        if not o.findings:
            w.writerow([spreadsheet_safe(v) for v in base + [""] * 10 + [o.reason]])
        for f in o.findings:
            d = f.disposition if f.disposition and f.disposition.active else None
            w.writerow([spreadsheet_safe(v) for v in base + [
                f.resource_type, f.resource_id, f.resource_name, f.owner, f.seen, f.expected,
                d.kind if d else ("expired waiver" if f.expired_waiver else "open"),
                d.approver if d else "", d.expires if d else "", f.fingerprint, o.reason]])
    return out.getvalue()


# -- junit.xml -----------------------------------------------------------------------------------


def render_junit(report: RunReport) -> str:
    """One testcase per control and target. CI tools (GitLab) ignore properties, so the control ID
    and severity are in the classname and the name."""
    outcomes = report.sorted_outcomes()
    suite = ET.Element("testsuite", name="pytest-dbsec", tests=str(len(outcomes)),
                       failures=str(sum(o.outcome == FAILED for o in outcomes)),
                       errors=str(sum(o.outcome == ERROR for o in outcomes)),
                       skipped=str(sum(o.outcome in ("skipped", "waived", "accepted") for o in outcomes)),
                       timestamp=str(report.meta.get("started", "")))
    props = ET.SubElement(suite, "properties")
    for key in ("tool_version", "sdk_version", "source"):
        ET.SubElement(props, "property", name=key, value=str(report.meta.get(key, "")))
    ET.SubElement(props, "property", name="complete", value=str(report.complete).lower())
    for o in outcomes:
        area = o.control.id.split("-")[0]
        case = ET.SubElement(suite, "testcase", classname=f"dbsec.{area}.{o.effective_severity}",
                             name=f"{o.control.id} [{o.effective_severity}] {o.control.title} [{o.target}]",
                             time=f"{o.duration_s:.3f}")
        ET.SubElement(case, "properties").extend([
            ET.Element("property", name="control_id", value=o.control.id),
            ET.Element("property", name="severity", value=o.effective_severity),
            ET.Element("property", name="target", value=o.target)])
        lines = [f.line() + disposition_note(f) for f in o.findings]
        if o.outcome == FAILED:
            open_n = len(o.open_findings)
            el = ET.SubElement(case, "failure", message=f"{open_n} finding{'s' if open_n != 1 else ''}",
                               type=o.control.id)
            el.text = "\n".join(lines + [f"Remediation: {o.control.remediation}"])
        elif o.outcome == ERROR:
            el = ET.SubElement(case, "error", message=(o.reason or "error")[:500], type="data unavailable")
            el.text = o.reason or ""
        elif o.outcome in ("skipped", "waived", "accepted"):
            msg = o.reason or o.outcome
            el = ET.SubElement(case, "skipped", message=f"{o.outcome}: {msg}"[:500])
            el.text = "\n".join(lines) or msg
        elif o.outcome == "attested" and o.attestation:
            ET.SubElement(case, "system-out").text = json.dumps(o.attestation, sort_keys=True)
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


# -- evidence.json -------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_evidence(report: RunReport, report_dir: Path, files: list[Path], baseline: dict) -> Path:
    """The manifest: what was produced, their hashes, the baseline and the run. Written last."""
    report_dir = Path(report_dir)
    entries = []
    for p in files:
        p = Path(p)
        if p.exists():
            try:
                name = str(p.resolve().relative_to(report_dir.resolve()))
            except ValueError:
                name = str(p.resolve())
            entries.append({"file": name, "sha256": sha256_file(p), "bytes": p.stat().st_size})
    doc = {
        "format": EVIDENCE_FORMAT,
        "version": 1,
        "run": report.meta,
        "complete": report.complete,
        "baseline": baseline,
        "gate": report.gate,
        "summary": report.to_json()["summary"],
        "files": entries,
    }
    return write_atomic(report_dir / "evidence.json", json.dumps(doc, indent=2, sort_keys=True) + "\n")


def verify_evidence(manifest: Path) -> list[str]:
    """Recompute every hash in an evidence manifest; return the problems (empty: all intact)."""
    manifest = Path(manifest)
    doc = json.loads(manifest.read_text())
    if doc.get("format") != EVIDENCE_FORMAT:
        return [f"{manifest}: not a pytest-dbsec evidence manifest"]
    problems = []
    for entry in doc.get("files", []):
        path = Path(entry["file"])
        if not path.is_absolute():
            path = manifest.parent / path
        if not path.exists():
            problems.append(f"{entry['file']}: missing")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{entry['file']}: changed since the run (SHA-256 differs)")
    return problems


def write_reports(report: RunReport, report_dir: Path) -> list[Path]:
    report_dir = Path(report_dir)
    return [
        write_atomic(report_dir / "findings.json", render_json(report)),
        write_atomic(report_dir / "findings.csv", render_csv(report)),
        write_atomic(report_dir / "junit.xml", render_junit(report)),
    ]
