"""``compliance.html``: the audit report, through pytest-html 4.

pytest-html owns the page (results table, filters, sorting, the self-contained file); this module
only feeds it our own data, the dicts of ``Outcome.to_json()`` and ``RunReport.to_json()``, never
pytest's report text. The core plugin calls :func:`configure` from its ``pytest_configure``.

Everything that reaches the page from data is escaped here: pytest-html inserts table cells,
extras and summary blocks as raw HTML (``innerHTML`` / jinja ``|safe``), and workspace and object
names come from the audited tenant or from a snapshot file, so they are hostile input. The page
carries no event handler and no link built from data.

What pytest-html 4.2 does with each piece (read from its source, ``basereport.py``/``app.js``):

* table cells (``pytest_html_results_table_row``) and the header: raw HTML, parsed by the page's JS;
* the test id cell: pytest-html interpolates ``report.nodeid`` unescaped, so a parametrized id such
  as ``test_x[<img src=x onerror=...>]`` would run script; we rebuild that cell escaped;
* ``extras.html`` content: raw (``insertAdjacentHTML``);
* summary prefix/summary/postfix: raw (``|safe``);
* the log (longrepr, captured output): escaped by pytest-html;
* the JSON data blob: escaped by jinja's autoescape (it sits in an attribute).
"""

from __future__ import annotations

import json
import re
import sys
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

from ..findings import FRAMEWORKS, OUTCOMES, SEVERITIES

if TYPE_CHECKING:
    from . import RunReport

TITLE = "Databricks security compliance"
PLUGIN_NAME = "dbsec-html"
# marks our extras so the fragment is attached once per report even if two hooks see it
_DETAIL_MARK = '<div class="dbsec dbsec-detail'

# Our columns in the results table, after pytest-html's "Result". The class names feed pytest-html's
# sorting: it keys rows by the ``col-(\w+)`` class of each cell, so the names are single words.
_COLUMNS = (("dbsecStatus", "Status"), ("dbsecControl", "Control"), ("dbsecSeverity", "Severity"),
            ("dbsecTarget", "Target"))
_INSERT_AT = 1

_OUTCOME_HELP = {
    "failed": "open findings",
    "error": "could not be judged (data unreadable or the control broke)",
    "waived": "findings covered by an active waiver",
    "accepted": "findings accepted in the baseline",
    "attested": "verified by a current attestation, not by the API",
    "passed": "no findings",
    "skipped": "not applicable",
}


def _e(value: Any) -> str:
    """Escape for text and for double- or single-quoted attributes alike."""
    if value is None:
        return ""
    return escape(value if isinstance(value, str) else str(value), quote=True)


def _text(value: Any) -> str:
    """Escaped prose; `backticked` spans become <code>. Safe: the markup is added after escaping and
    a backtick is not special in HTML."""
    return re.sub(r"`([^`\n]+)`", r"<code>\1</code>", _e(value))


def _value(value: Any) -> str:
    """A value of unknown shape (details, attestation fields, future keys), escaped."""
    if value is None or value == "":
        return '<span class="dbsec-none">&mdash;</span>'
    if isinstance(value, (dict, list, tuple)):
        return _e(json.dumps(value, sort_keys=True, default=str))
    return _text(value)


def _sev_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def _badge(kind: str, value: Any) -> str:
    # the class name is built from data too: keep only what a class name can hold
    cls = re.sub(r"[^a-z0-9_-]", "", str(value).lower())
    return f'<span class="dbsec-badge dbsec-{kind} dbsec-{kind}-{cls}">{_e(value)}</span>'


def status_badge(outcome: Any) -> str:
    return _badge("st", outcome)


def severity_badge(severity: Any) -> str:
    return _badge("sev", severity)


# -- one control result -------------------------------------------------------------------------


def _disposition_cell(finding: dict) -> str:
    parts = []
    d = finding.get("disposition") or None
    if d and d.get("active", True):
        if d.get("kind") == "waived":
            parts.append(
                f'<div class="dbsec-disp"><b>Waived</b> by {_e(d.get("approver") or "unknown approver")}'
                f' until {_e(d.get("expires") or "no date")}: {_text(d.get("justification"))}'
                f'{_source(d)}</div>')
        else:
            parts.append(f'<div class="dbsec-disp"><b>Accepted</b>: {_text(d.get("justification"))}'
                         f'{_source(d)}</div>')
    else:
        parts.append('<span class="dbsec-open">open</span>')
    # an expired waiver no longer protects the finding; say so loudly, with who had signed it off
    expired = finding.get("expired_waiver") or (d if d and not d.get("active", True) else None)
    if expired:
        parts.append(
            f'<div class="dbsec-expired">Waiver EXPIRED on {_e(expired.get("expires") or "?")} &mdash; '
            f'no longer protects (was approved by {_e(expired.get("approver") or "unknown")}: '
            f'{_text(expired.get("justification"))}){_source(expired)}</div>')
    return "".join(parts)


def _source(d: dict) -> str:
    return f' <span class="dbsec-src">({_e(d["source"])})</span>' if d.get("source") else ""


def _findings_table(findings: list[dict]) -> str:
    rows = []
    for f in findings:
        details = f.get("details") or {}
        detail_html = ""
        if isinstance(details, dict) and details:
            detail_html = '<div class="dbsec-fdetails">' + "; ".join(
                f"{_e(k)}: {_value(v)}" for k, v in sorted(details.items(), key=lambda kv: str(kv[0]))) + "</div>"
        name = f.get("resource_name")
        rows.append(
            "<tr>"
            f'<td>{_e(f.get("resource_type"))}</td>'
            f'<td class="dbsec-rid">{_e(f.get("resource_id"))}</td>'
            f'<td>{_value(name if name != f.get("resource_id") else None)}</td>'
            f'<td>{_value(f.get("owner"))}</td>'
            f'<td>{_text(f.get("seen"))}{detail_html}</td>'
            f'<td>{_text(f.get("expected"))}</td>'
            f"<td>{_disposition_cell(f)}</td>"
            "</tr>")
    return ('<table class="dbsec-t dbsec-findings"><thead><tr><th>Resource type</th><th>ID</th><th>Name</th>'
            "<th>Owner</th><th>Seen</th><th>Expected</th><th>Disposition</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _attestation(att: Any) -> str:
    if not att:
        return ""
    if not isinstance(att, dict):
        return f'<div class="dbsec-block dbsec-attest"><b>Attestation:</b> {_value(att)}</div>'
    # the statement first, then who/when, then whatever else the baseline recorded
    order = ("statement", "attested_by", "by", "approver", "date", "attested_on", "expires", "evidence", "source")
    keys = [k for k in order if k in att] + sorted(k for k in att if k not in order)
    items = "".join(f"<dt>{_e(k.replace('_', ' '))}</dt><dd>{_value(att[k])}</dd>" for k in keys)
    return f'<div class="dbsec-block dbsec-attest"><b>Attestation</b><dl class="dbsec-dl">{items}</dl></div>'


def _refs(refs: Any) -> str:
    if not isinstance(refs, dict) or not refs:
        return ""
    items = [f'<span class="dbsec-ref"><b>{_e(fw)}</b> {_e(", ".join(map(str, v if isinstance(v, (list, tuple)) else [v])))}</span>'
             for fw, v in refs.items()]
    return f'<p class="dbsec-refs">References: {" ".join(items)}</p>'


def findings_fragment(result: dict) -> str:
    """Escaped HTML for one control result (the dict ``Outcome.to_json()`` returns): title, rationale,
    findings table, dispositions, reason, attestation, remediation."""
    control = result.get("control") or {}
    outcome = result.get("outcome") or "?"
    severity = result.get("severity") or control.get("severity")
    declared = result.get("declared_severity") or control.get("severity")
    findings = result.get("findings") or []
    remediation = result.get("remediation") or control.get("remediation")
    rationale = result.get("rationale") or control.get("rationale")
    refs = result.get("refs") or control.get("refs")
    outcome_cls = re.sub(r"[^a-z]", "", str(outcome).lower())

    out = [f'{_DETAIL_MARK} dbsec-o-{outcome_cls}">',
           '<div class="dbsec-head">'
           f'<span class="dbsec-id">{_e(result.get("control_id"))}</span> '
           f'<span class="dbsec-title">{_e(result.get("title") or control.get("title"))}</span> '
           f"{status_badge(outcome)} {severity_badge(severity)}"
           f' <span class="dbsec-on">on <b>{_e(result.get("target"))}</b></span></div>']
    if declared and severity and declared != severity:
        out.append(f'<p class="dbsec-note">Severity re-rated by the baseline from {_e(declared)} '
                   f"to {_e(severity)}.</p>")
    if rationale:
        out.append(f'<p class="dbsec-rationale"><b>Why it matters:</b> {_text(rationale)}</p>')
    reason = result.get("reason")
    if outcome == "error":
        out.append('<div class="dbsec-block dbsec-reason-error"><b>Could not be judged (ERROR):</b> '
                   f"{_text(reason or 'no reason recorded')}</div>")
    elif outcome == "skipped":
        out.append(f'<div class="dbsec-block dbsec-reason-skip"><b>Skipped:</b> '
                   f"{_text(reason or 'no reason recorded')}</div>")
    elif reason and outcome != "attested":
        out.append(f'<div class="dbsec-block"><b>Note:</b> {_text(reason)}</div>')
    if outcome == "attested":
        out.append(_attestation(result.get("attestation")) or
                   '<div class="dbsec-block dbsec-reason-error"><b>Attested, but no attestation was '
                   "recorded.</b></div>")
        if reason:
            out.append(f'<div class="dbsec-block"><b>Statement:</b> {_text(reason)}</div>')
    if findings:
        open_n = sum(1 for f in findings
                     if not (f.get("disposition") and (f.get("disposition") or {}).get("active", True)))
        out.append(f'<p class="dbsec-fcount"><b>{len(findings)} finding{"s" if len(findings) != 1 else ""}</b>'
                   f" ({open_n} open)</p>")
        out.append(_findings_table(findings))
    elif outcome in ("passed", "attested"):
        out.append('<p class="dbsec-fcount">No findings.</p>')
    if remediation and (findings or outcome in ("failed", "error", "waived", "accepted")):
        out.append(f'<div class="dbsec-block dbsec-remediation"><b>Remediation:</b> {_text(remediation)}</div>')
    elif remediation:
        out.append(f'<p class="dbsec-remediation-quiet"><b>Remediation (if it fails):</b> {_text(remediation)}</p>')
    out.append(_refs(refs))
    out.append("</div>")
    return "".join(out)


# -- the summary --------------------------------------------------------------------------------


def _counts_row(label_html: str, counts: dict[str, int]) -> str:
    cells = []
    for o in OUTCOMES:
        n = counts.get(o, 0)
        cls = "num zero" if not n else f"num dbsec-c-{o}"
        cells.append(f'<td class="{cls}">{n}</td>')
    total = sum(counts.get(o, 0) for o in OUTCOMES)
    return f"<tr><th>{label_html}</th>{''.join(cells)}<td class=\"num total\">{total}</td></tr>"


def _counts_head(first: str) -> str:
    ths = "".join(f'<th title="{_e(_OUTCOME_HELP[o])}">{status_badge(o)}</th>' for o in OUTCOMES)
    return f"<thead><tr><th>{_e(first)}</th>{ths}<th>total</th></tr></thead>"


def _banner(report: dict, results: list[dict]) -> str:
    errors = [r for r in results if r.get("outcome") == "error"]
    failed = [r for r in results if r.get("outcome") == "failed"]
    if report.get("complete") is True:
        verdict = (f"{len(failed)} control run{'s' if len(failed) != 1 else ''} failed" if failed
                   else "no control failed")
        return ('<div class="dbsec dbsec-banner dbsec-complete"><b>COMPLETE</b>: all data was read and every '
                f"selected control reached a verdict; {_e(verdict)}.</div>")
    items = []
    for d in report.get("data_errors") or []:
        if isinstance(d, dict):
            items.append(f"<li><b>{_e(d.get('scope'))}</b> / data section <code>{_e(d.get('section'))}</code>: "
                         f"{_text(d.get('error'))}</li>")
        else:
            items.append(f"<li>{_text(d)}</li>")
    for r in errors:
        items.append(f"<li>control <b>{_e(r.get('control_id'))}</b> on <b>{_e(r.get('target'))}</b> could not "
                     f"be judged: {_text(r.get('reason') or 'no reason recorded')}</li>")
    if not items:
        items.append("<li>the run was interrupted or stopped early: not every selected control reached a "
                     "verdict</li>")
    return ('<div class="dbsec dbsec-banner dbsec-incomplete"><b>INCOMPLETE</b>: this report does not cover '
            "everything that was asked; a missing verdict is not a pass."
            f'<ul>{"".join(items)}</ul></div>')


def _environment(report: dict, results: list[dict]) -> str:
    run = dict(report.get("run") or {})
    rows: list[tuple[str, str]] = []

    def take(key: str, label: str, render: Callable[[Any], str] = _value) -> None:
        if key in run:
            rows.append((label, render(run.pop(key))))

    take("source", "Source", lambda v: f"<b>{_e(v)}</b>" + {
        "live": " (read from the workspace APIs)", "demo": " (embedded demo tenant, not a real workspace)",
        "replay": " (evaluated offline from a saved snapshot)"}.get(str(v), ""))
    targets = run.pop("targets", None)
    if isinstance(targets, dict) and targets:
        trows = []
        for name, t in targets.items():
            t = t if isinstance(t, dict) else {"value": t}
            extra = {k: v for k, v in t.items() if k not in ("kind", "host", "profile")}
            trows.append((f"<tr><td><b>{_e(name)}</b></td><td>{_e(t.get('kind'))}</td><td>{_value(t.get('host'))}"
                          f"</td><td>{_value(t.get('profile'))}</td>", _value(extra) if extra else ""))
        more = any(x for _, x in trows)
        rows.append(("Targets", '<table class="dbsec-t dbsec-inner"><thead><tr><th>name</th><th>kind</th>'
                                f"<th>host</th><th>profile</th>{'<th>other</th>' if more else ''}</tr></thead>"
                                "<tbody>" + "".join(r + (f"<td>{x}</td>" if more else "") + "</tr>" for r, x in trows)
                     + "</tbody></table>"))
    seen = sorted({str(r.get("target")) for r in results if r.get("target") is not None})
    if seen:
        rows.append(("Results for", ", ".join(f"<b>{_e(s)}</b>" for s in seen)))
    baseline = run.pop("baseline", None)
    if isinstance(baseline, dict):
        path = f" ({_e(baseline['path'])})" if baseline.get("path") else ""
        rows.append(("Baseline", f"<b>{_e(baseline.get('name'))}</b>{path}, SHA-256 "
                                 f"<code class=\"dbsec-hash\">{_e(baseline.get('sha256'))}</code>"))
    elif baseline is not None:
        rows.append(("Baseline", _value(baseline)))
    take("accepted", "Accepted findings file")
    take("judged_on", "Judged as of (date)")
    tool = run.pop("tool", "pytest-dbsec")
    if "tool_version" in run:
        rows.append(("Tool", f"{_e(tool)} {_e(run.pop('tool_version'))}"))
    take("sdk_version", "databricks-sdk")
    take("started", "Started")
    take("finished", "Finished")
    snapshot = run.pop("snapshot", None)
    if isinstance(snapshot, dict):
        # a replay judges data read earlier: when, from where and by which versions is the evidence
        order = ("source", "started", "finished", "complete", "tool_version", "sdk_version", "calls", "targets")
        keys = [k for k in order if k in snapshot] + sorted(k for k in snapshot if k not in order)
        items = "".join(f"<dt>{_e(str(k).replace('_', ' '))}</dt><dd>{_value(snapshot[k])}</dd>" for k in keys)
        rows.append(("Snapshot (data read by the run that saved it)", f'<dl class="dbsec-dl">{items}</dl>'))
    elif snapshot is not None:
        rows.append(("Snapshot", _value(snapshot)))
    rows.append(("Complete", "<b>yes</b>" if report.get("complete") is True else
                 '<b class="dbsec-expired">NO</b>'))
    for key in sorted(run):  # whatever the run records beyond the above, so nothing is hidden
        rows.append((key.replace("_", " "), _value(run[key])))
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<div class="dbsec"><h2>Audit environment</h2><table class="dbsec-t dbsec-env">{body}</table></div>'


def _by_severity(results: list[dict]) -> str:
    table: dict[str, dict[str, int]] = {s: {} for s in SEVERITIES}
    for r in results:
        sev = str(r.get("severity") or (r.get("control") or {}).get("severity") or "unknown")
        counts = table.setdefault(sev, {})
        counts[r.get("outcome")] = counts.get(r.get("outcome"), 0) + 1
    rows = [_counts_row(severity_badge(s), table[s]) for s in sorted(table, key=_sev_rank)]
    total: dict[str, int] = {}
    for c in table.values():
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    rows.append(_counts_row("all", total).replace("<tr>", '<tr class="dbsec-total">', 1))
    return ('<div class="dbsec"><h2>Results by severity</h2><p class="dbsec-note">One result per control and '
            "target; severity as rated by the baseline.</p>"
            f'<table class="dbsec-t dbsec-counts">{_counts_head("severity")}<tbody>{"".join(rows)}</tbody></table></div>')


def _by_framework(results: list[dict]) -> str:
    counts: dict[str, dict[str, int]] = {}
    failing: dict[str, dict[str, set]] = {}
    for r in results:
        refs = (r.get("control") or {}).get("refs") or r.get("refs") or {}
        if not isinstance(refs, dict):
            continue
        for fw, items in refs.items():
            c = counts.setdefault(str(fw), {})
            c[r.get("outcome")] = c.get(r.get("outcome"), 0) + 1
            if r.get("outcome") in ("failed", "error"):
                for item in items if isinstance(items, (list, tuple)) else [items]:
                    failing.setdefault(str(fw), {}).setdefault(str(item), set()).add(str(r.get("control_id")))
    if not counts:
        return ('<div class="dbsec"><h2>Results by framework</h2><p>No result references a framework.</p></div>')
    order = [f for f in FRAMEWORKS if f in counts] + sorted(f for f in counts if f not in FRAMEWORKS)
    rows = []
    for fw in order:
        row = _counts_row(_e(fw), counts[fw])
        refs = failing.get(fw, {})
        detail = ", ".join(f"{_e(ref)} ({_e(', '.join(sorted(cids)))})" for ref, cids in sorted(refs.items()))
        rows.append(row.replace("</tr>", f'<td class="dbsec-failing">{detail or "&mdash;"}</td></tr>'))
    head = _counts_head("framework").replace("</tr></thead>", "<th>requirements not met (controls)</th></tr></thead>")
    return ('<div class="dbsec"><h2>Results by framework</h2><p class="dbsec-note">Control results whose control '
            "maps to the framework; a control mapping to several frameworks counts in each.</p>"
            f'<table class="dbsec-t dbsec-counts">{head}<tbody>{"".join(rows)}</tbody></table></div>')


def _matched(entry: dict) -> Any:
    for key in ("matched", "matched_count", "matches", "match_count"):
        if key in entry:
            v = entry[key]
            return len(v) if isinstance(v, (list, tuple)) else v
    return None


def _first(entry: dict, *keys: str) -> Any:
    for k in keys:
        if entry.get(k) not in (None, ""):
            return entry[k]
    return None


# keys a waiver or accepted entry is shown by; anything else it carries goes in the last column
_ENTRY_KEYS = ("control", "control_id", "workspace", "target", "resource_type", "resource", "resource_id",
               "resource_name", "fingerprint", "approver", "expires", "justification", "source", "status",
               "active", "matched", "kind")


def _waiver_status(w: dict) -> str:
    if w.get("status"):
        return str(w["status"])
    if w.get("active") is False:
        return "expired"
    if _matched(w) == 0:
        return "stale"
    return "active"


def _what(entry: dict) -> str:
    """What a waiver or an accepted entry covers: control, workspace and resource, as far as given."""
    bits = []
    for label, keys in (("control", ("control", "control_id")), ("workspace", ("workspace", "target")),
                        ("type", ("resource_type",)), ("resource", ("resource", "resource_id")),
                        ("name", ("resource_name",)), ("fingerprint", ("fingerprint",))):
        v = _first(entry, *keys)
        if v is not None:
            bits.append(f'<span class="dbsec-kv">{_e(label)} <b>{_value(v)}</b></span>')
    return " ".join(bits) or '<span class="dbsec-none">&mdash;</span>'


def _rest(entry: dict) -> str:
    extra = {k: v for k, v in entry.items() if k not in _ENTRY_KEYS}
    return (" " + _value(extra)) if extra else ""


def _disposed(results: list[dict], kind: str) -> list[tuple[dict, dict, dict]]:
    """(result, finding, disposition) for every finding carrying a disposition of this kind; an
    expired waiver counts as a waiver."""
    out = []
    for r in results:
        for f in r.get("findings") or []:
            for d in (f.get("disposition"), f.get("expired_waiver")):
                if isinstance(d, dict) and d.get("kind", "waived") == kind:
                    out.append((r, f, d))
    return out


def _waivers_from_findings(results: list[dict]) -> list[dict]:
    """The waivers seen on findings, when the run report lists none of the baseline's own."""
    out: dict[tuple, dict] = {}
    for r, f, d in _disposed(results, "waived"):
        st = "active" if d.get("active", True) else "expired"
        key = (d.get("source"), d.get("approver"), d.get("expires"), d.get("justification"), st)
        e = out.setdefault(key, {"control": f.get("control_id"), "workspace": f.get("target"),
                                 "approver": d.get("approver"), "expires": d.get("expires"),
                                 "justification": d.get("justification"), "source": d.get("source"),
                                 "status": st, "matched": 0})
        e["matched"] += 1
    return list(out.values())


def _waivers(report: dict, results: list[dict]) -> str:
    listed = report.get("waivers")
    note = ""
    if not listed and _disposed(results, "waived"):
        # findings name waivers the report does not list: show them rather than claim there are none
        listed = _waivers_from_findings(results)
        note = ('<p class="dbsec-note">Waivers as found on findings; waivers that matched nothing (stale) are '
                "not part of this run's data.</p>")
    if not listed:
        return '<div class="dbsec"><h2>Waivers</h2><p>No waivers in the baseline.</p></div>'
    n = {s: 0 for s in ("active", "expired", "stale")}
    rows = []
    for w in listed:
        w = w if isinstance(w, dict) else {"justification": w}
        st = _waiver_status(w)
        n[st] = n.get(st, 0) + 1
        matched = _matched(w)
        rows.append(
            f'<tr><td>{_badge("ws", st)}</td><td>{_what(w)}</td>'
            f"<td>{_value(w.get('approver'))}</td><td>{_value(w.get('expires'))}</td>"
            f"<td>{_value(w.get('justification'))}</td>"
            f'<td class="num">{_e(matched) if matched is not None else "&mdash;"}</td>'
            f"<td>{_value(w.get('source'))}{_rest(w)}</td></tr>")
    counts = ", ".join(f"{v} {_e(k)}" for k, v in n.items() if v)
    return ('<div class="dbsec"><h2>Waivers</h2>'
            f'<p>{len(listed)} waiver{"s" if len(listed) != 1 else ""}: {counts}. An expired waiver no longer '
            "protects its findings; a stale one matched nothing and can be removed.</p>" + note +
            '<table class="dbsec-t dbsec-waivers"><thead><tr><th>status</th><th>covers</th><th>approver</th>'
            "<th>until</th><th>justification</th><th>findings matched</th><th>source</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></div>")


def _accepted(report: dict, results: list[dict]) -> str:
    acc = report.get("accepted")
    matched = _disposed(results, "accepted")
    if not acc and not matched:
        return '<div class="dbsec"><h2>Accepted findings</h2><p>No accepted-findings file in this run.</p></div>'
    out = ['<div class="dbsec"><h2>Accepted findings</h2>']
    resolved: list = []
    if isinstance(acc, dict):
        resolved = [e for e in acc.get("resolved") or [] if e is not None]
        n_match = acc.get("matched")
        out.append(f"<p>File <code>{_e(acc.get('file') or '?')}</code>: {_e(acc.get('entries', '?'))} entries; "
                   f"<b>{_e(n_match if n_match is not None else len(matched))}</b> matched a finding in this run; "
                   f"<b>{len(resolved)}</b> resolved (the control ran on its target and no longer finds it: "
                   "the entry can be removed).</p>")
    elif isinstance(acc, list):  # a list of entries, each with its own status and count
        for e in acc:
            e = e if isinstance(e, dict) else {"fingerprint": e}
            if str(e.get("status")) == "resolved" or _matched(e) == 0:
                resolved.append(e)
        out.append(f"<p>{len(acc)} entries; {len(resolved)} resolved (the entry can be removed).</p>")
    else:
        out.append('<p class="dbsec-note">Accepted findings as found on findings; the run did not report the '
                   "accepted-findings file itself.</p>")
    if matched:
        rows = "".join(
            f"<tr><td>{_e(f.get('control_id') or r.get('control_id'))}</td><td>{_e(f.get('target'))}</td>"
            f"<td>{_e(f.get('resource_type'))}</td><td class=\"dbsec-rid\">{_e(f.get('resource_id'))}</td>"
            f"<td>{_value(f.get('resource_name'))}</td><td>{_value(d.get('justification'))}</td>"
            f"<td>{_value(d.get('source'))}</td><td><code>{_e(f.get('fingerprint'))}</code></td></tr>"
            for r, f, d in matched)
        out.append(f"<h3>Accepted in this run ({len(matched)})</h3>"
                   '<table class="dbsec-t dbsec-accepted"><thead><tr><th>control</th><th>target</th><th>type</th>'
                   "<th>resource</th><th>name</th><th>accepted</th><th>source</th><th>fingerprint</th></tr>"
                   f"</thead><tbody>{rows}</tbody></table>")
    if resolved:
        rows = "".join(
            f"<tr><td>{_badge('ac', 'resolved')}</td><td>{_what(e if isinstance(e, dict) else {'fingerprint': e})}"
            f"</td><td>{_value(e.get('source') if isinstance(e, dict) else None)}"
            f"{_rest(e) if isinstance(e, dict) else ''}</td></tr>"
            for e in resolved)
        out.append(f"<h3>Resolved entries ({len(resolved)})</h3>"
                   '<table class="dbsec-t dbsec-resolved"><thead><tr><th>status</th><th>entry</th><th>source</th>'
                   f"</tr></thead><tbody>{rows}</tbody></table>")
    out.append("</div>")
    return "".join(out)


def _gate(report: dict) -> str:
    g = report.get("gate")
    if not isinstance(g, dict) or not g:
        return ""
    code = g.get("exit_code")
    failing = g.get("failing") or []
    errors = g.get("errors") or []
    parts = [f"fail on <b>{_e(g.get('fail_on', '?'))}</b> and above",
             f"errors {'allowed' if g.get('allow_errors') else 'fail the run'}",
             f"<b>{len(failing)}</b> control run{'s' if len(failing) != 1 else ''} failing at or above it"]
    if g.get("below_threshold"):
        parts.append(f"{_e(g['below_threshold'])} failing below it (reported, not gating)")
    if errors:
        parts.append(f"<b>{len(errors)}</b> could not be judged")
    if g.get("other_failures"):
        parts.append(f"{_e(g['other_failures'])} other test failure(s)")
    verdict = "FAIL" if code else "PASS"
    return (f'<div class="dbsec dbsec-gate dbsec-gate-{verdict.lower()}"><b>CI gate: {verdict}</b> '
            f"(exit code {_e(code)}): {'; '.join(parts)}.</div>")


def summary_fragments(report_json: dict) -> list[str]:
    """Escaped HTML blocks for the top of the page: banner, environment, by-severity, by-framework,
    waivers, accepted. ``report_json`` is ``RunReport.to_json()``."""
    results = [r for r in report_json.get("results") or [] if isinstance(r, dict)]
    return [STYLE, _banner(report_json, results), _gate(report_json), _environment(report_json, results),
            _by_severity(results),
            _by_framework(results), _waivers(report_json, results), _accepted(report_json, results),
            '<div class="dbsec"><h2>Results</h2><p class="dbsec-note">One row per control and target. '
            "<b>Status</b> is the compliance outcome; <b>Result</b> is pytest's (a waived, accepted or attested "
            "control passes the run). Click a row for its findings and remediation.</p></div>"]


def _notice(message: str) -> list[str]:
    return [STYLE, f'<div class="dbsec dbsec-banner dbsec-incomplete"><b>INCOMPLETE</b>: {_e(message)}</div>']


# -- pytest-html wiring -------------------------------------------------------------------------


def _test_id(report: Any) -> str:
    # the same id pytest-html shows: the nodeid, plus the phase when it is not the call
    when = getattr(report, "when", None)
    return report.nodeid + (f"::{when}" if when and when != "call" else "")


def _attach(report: Any) -> None:
    result = getattr(report, "dbsec", None)
    if not isinstance(result, dict):
        return
    extras = getattr(report, "extras", None)
    if not isinstance(extras, list):
        extras = list(extras or [])
    if any(isinstance(x, dict) and str(x.get("content", "")).startswith(_DETAIL_MARK) for x in extras):
        return
    from pytest_html import extras as html_extras

    extras.append(html_extras.html(findings_fragment(result)))
    report.extras = extras


class HtmlHooks:
    """The pytest-html hook implementations, registered by :func:`configure`."""

    def __init__(self, get_report: Callable[[], "RunReport | None"], owned: Path | None = None):
        self.get_report = get_report
        # the page we asked pytest-html to write (None when the user chose their own --html), and the
        # folders that did not exist before it: what to take back if the run ends in a usage error
        self.owned = owned
        self.new_dirs: list[Path] = []
        if owned is not None:
            d = owned.parent
            while not d.exists():
                self.new_dirs.append(d)
                d = d.parent

    # pytest-html writes its page at every session end, also after bad input found once the run had
    # started (a dead host, rejected credentials: exit code 4). The rule for that case is "nothing
    # written", so the page is taken back; a user's own --html page is theirs and is left alone.
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session, exitstatus):
        try:
            return (yield)
        finally:
            if self.owned is not None and exitstatus == pytest.ExitCode.USAGE_ERROR:
                self.owned.unlink(missing_ok=True)
                for d in self.new_dirs:  # innermost first
                    try:
                        d.rmdir()
                    except OSError:
                        break  # not empty: something else lives there now

    # tryfirst makes this the outer wrapper: its code after the yield runs after the core plugin's
    # wrapper has set ``report.dbsec``
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        _attach(report)
        return report

    # With xdist, the workers may run without this object registered; the controller still sees
    # ``report.dbsec`` (report attributes travel with the report) and adds the fragment here, before
    # pytest-html's own (trylast) logreport reads the extras.
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report):
        _attach(report)

    def pytest_html_report_title(self, report):
        report.title = TITLE

    def pytest_html_results_table_header(self, cells):
        for offset, (name, label) in enumerate(_COLUMNS):
            cells.insert(_INSERT_AT + offset, f'<th class="sortable" data-column-type="{name}">{label}</th>')

    def pytest_html_results_table_row(self, report, cells):
        if not cells:
            return  # another plugin removed the row
        # pytest-html 4.2 puts the nodeid in this cell unescaped; rebuild it from the nodeid so it is
        # right whether or not a pytest-html version escapes it itself
        for i, cell in enumerate(cells):
            if isinstance(cell, str) and cell.startswith('<td class="col-testId">'):
                cells[i] = f'<td class="col-testId">{_e(_test_id(report))}</td>'
        result = getattr(report, "dbsec", None)
        if isinstance(result, dict):
            sev = result.get("severity")
            values = [
                # the hidden rank makes pytest-html's text sort order outcomes/severities by weight
                f'<span hidden>{OUTCOMES.index(result.get("outcome")) if result.get("outcome") in OUTCOMES else 9}'
                f"</span>{status_badge(result.get('outcome'))}",
                f'<b>{_e(result.get("control_id"))}</b>',
                f"<span hidden>{_sev_rank(sev)}</span>{severity_badge(sev)}",
                _e(result.get("target")),
            ]
        else:
            values = ["", "", "", ""]  # a user's own test, or a teardown row: the row still lines up
        for offset, ((name, _), value) in enumerate(zip(_COLUMNS, values)):
            cells.insert(_INSERT_AT + offset, f'<td class="col-{name}">{value}</td>')

    def pytest_html_results_table_html(self, report, data):
        result = getattr(report, "dbsec", None)
        if isinstance(result, dict) and result.get("outcome") != "error":
            # the detail above is the record; pytest's text of the same verdict (an assertion, an
            # xfail traceback) would only repeat it, unformatted. An ERROR keeps its traceback: it
            # is what a control's author needs.
            data[:] = []

    def pytest_html_results_summary(self, prefix, summary, postfix, session):
        try:
            report = self.get_report()
        except Exception as e:  # noqa: BLE001 - the page must still say it is not a full report
            prefix.extend(_notice(f"the compliance summary could not be built: {type(e).__name__}: {e}"))
            sys.stderr.write(f"dbsec: compliance.html: summary not built: {type(e).__name__}: {e}\n")
            return
        if report is None:
            prefix.extend(_notice("no compliance data for this run (no control reached a verdict, or the run "
                                  "stopped before its results were gathered); see findings.json and the "
                                  "terminal output."))
            return
        try:
            prefix.extend(summary_fragments(report.to_json()))
        except Exception as e:  # noqa: BLE001 - a rendering bug must not lose the whole page
            prefix.extend(_notice(f"the compliance summary could not be rendered: {type(e).__name__}: {e}"))
            sys.stderr.write(f"dbsec: compliance.html: summary not rendered: {type(e).__name__}: {e}\n")


def configure(config: pytest.Config, path: Path, get_report: Callable[[], "RunReport | None"]) -> None:
    """Called from the core plugin's pytest_configure (tryfirst) when a dbsec run is active.
    Sets pytest-html's options so it writes a self-contained report to `path` (config.option.htmlpath,
    self_contained_html), unless the user already passed --html (then respect theirs), and registers a
    plugin object with the pytest-html hooks."""
    # pytest-html absent or disabled (-p no:html): its hook specs do not exist, so registering our
    # hooks would be a plugin validation error; there is simply no HTML report
    if not config.pluginmanager.hasplugin("html"):
        return
    if config.pluginmanager.get_plugin(PLUGIN_NAME) is not None:
        return
    owned = None
    # --collect-only judges nothing and writes no report; a user's own --html is respected as given
    if (not hasattr(config, "workerinput") and not config.getoption("htmlpath", None)
            and not config.option.collectonly):
        config.option.htmlpath = str(path)
        # one file an auditor can archive or mail: styles and script inline, no assets folder
        config.option.self_contained_html = True
        owned = Path.cwd() / Path(path)  # where pytest-html will put it (it resolves against the cwd)
    config.pluginmanager.register(HtmlHooks(get_report, owned), PLUGIN_NAME)


STYLE = """<style>
/* pytest-dbsec: readable for an auditor (pytest-html's default text is light grey), printable */
body { color: #1f2328; font-size: 13px; }
#results-table { color: #1f2328; font-size: 13px; }
#results-table td, #results-table th { vertical-align: top; }
.dbsec { color: #1f2328; line-height: 1.45; max-width: 1400px; }
.dbsec h2 { margin: 22px 0 6px; font-size: 17px; border-bottom: 1px solid #d0d7de; padding-bottom: 3px; }
.dbsec p { margin: 4px 0; }
.dbsec code { background: #f3f4f6; border-radius: 3px; padding: 0 3px; font-family: Menlo, Consolas, monospace;
  font-size: 12px; word-break: break-word; }
.dbsec-t { border-collapse: collapse; margin: 6px 0 12px; background: #fff; }
.dbsec-t th, .dbsec-t td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
.dbsec-t thead th { background: #f6f8fa; }
.dbsec-t tbody th { background: #fbfbfc; font-weight: bold; }
.dbsec-t td.num { text-align: right; font-variant-numeric: tabular-nums; min-width: 3em; }
.dbsec-t td.zero { color: #a0a7b0; }
.dbsec-t td.total, .dbsec-total th, .dbsec-total td { font-weight: bold; }
.dbsec-total th, .dbsec-total td { border-top: 2px solid #8c959f; }
.dbsec-counts td.dbsec-c-failed, .dbsec-counts td.dbsec-c-error { color: #b3111e; font-weight: bold;
  background: #fff1f0; }
.dbsec-env th { width: 11em; white-space: nowrap; }
.dbsec-inner { margin: 0; }
.dbsec-hash { word-break: break-all; }
.dbsec-note { color: #57606a; font-size: 12px; }
.dbsec-none { color: #a0a7b0; }
.dbsec-badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 11px; font-weight: bold;
  text-transform: uppercase; letter-spacing: .02em; white-space: nowrap; border: 1px solid transparent; }
.dbsec-st { color: #fff; background: #6e7781; }
.dbsec-st-failed { background: #cf222e; }
.dbsec-st-error { background: #953800; }
.dbsec-st-waived { background: #8250df; }
.dbsec-st-accepted { background: #0969da; }
.dbsec-st-attested { background: #1b7c83; }
.dbsec-st-passed { background: #1a7f37; }
.dbsec-st-skipped { background: #6e7781; }
.dbsec-sev { background: #fff; }
.dbsec-sev-critical { color: #fff; background: #82071e; }
.dbsec-sev-high { color: #cf222e; border-color: #cf222e; }
.dbsec-sev-medium { color: #9a4600; border-color: #bc4c00; }
.dbsec-sev-low { color: #7d5a00; border-color: #bf8700; }
.dbsec-sev-info { color: #57606a; border-color: #8c959f; }
.dbsec-gate { padding: 6px 12px; border-radius: 4px; margin: 0 0 10px; font-size: 13px; }
.dbsec-gate-fail { background: #fff1f0; border: 1px solid #cf222e; }
.dbsec-gate-pass { background: #f0fff4; border: 1px solid #1a7f37; }
.dbsec h3 { font-size: 14px; margin: 10px 0 4px; }
.dbsec-ws, .dbsec-ac { background: #eaeef2; color: #24292f; }
.dbsec-ws-active, .dbsec-ac-matched { background: #ddf4ff; color: #0550ae; }
.dbsec-ws-expired { background: #ffebe9; color: #a40e26; border-color: #cf222e; }
.dbsec-ws-stale, .dbsec-ac-resolved { background: #fff8c5; color: #7d4e00; }
.dbsec-banner { padding: 10px 14px; border-radius: 4px; margin: 8px 0 12px; font-size: 14px; }
.dbsec-banner ul { margin: 6px 0 0; padding-left: 22px; font-size: 13px; }
.dbsec-complete { background: #dafbe1; border: 1px solid #1a7f37; color: #0f5323; }
.dbsec-incomplete { background: #ffebe9; border: 2px solid #cf222e; color: #82071e; }
.dbsec-detail { background: #fff; border-left: 5px solid #d0d7de; padding: 8px 12px; margin: 2px 0 8px; }
.dbsec-o-failed { border-left-color: #cf222e; }
.dbsec-o-error { border-left-color: #953800; }
.dbsec-o-waived { border-left-color: #8250df; }
.dbsec-o-accepted { border-left-color: #0969da; }
.dbsec-o-attested { border-left-color: #1b7c83; }
.dbsec-o-passed { border-left-color: #1a7f37; }
.dbsec-head { font-size: 15px; margin-bottom: 4px; }
.dbsec-id { font-weight: bold; font-family: Menlo, Consolas, monospace; }
.dbsec-title { font-weight: bold; }
.dbsec-on { color: #57606a; font-size: 13px; }
.dbsec-block { margin: 6px 0; padding: 6px 10px; background: #f6f8fa; border-radius: 4px; }
.dbsec-reason-error { background: #fff1e5; border: 1px solid #bc4c00; }
.dbsec-reason-skip { background: #f6f8fa; border: 1px solid #d0d7de; }
.dbsec-remediation { background: #ddf4ff; border: 1px solid #54aeff; }
.dbsec-remediation-quiet { color: #57606a; font-size: 12px; }
.dbsec-attest { background: #e6f6f7; border: 1px solid #1b7c83; }
.dbsec-dl { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; margin: 4px 0 0; }
.dbsec-dl dt { font-weight: bold; }
.dbsec-dl dd { margin: 0; }
.dbsec-findings { width: 100%; font-size: 12px; }
.dbsec-rid { font-family: Menlo, Consolas, monospace; overflow-wrap: anywhere; min-width: 9em; max-width: 18em; }
/* pytest's log is dropped for judged controls (see pytest_html_results_table_html): no empty grey box */
.logwrapper:not(:has(.log)) { display: none; }
.dbsec-fdetails { color: #57606a; font-size: 11px; margin-top: 2px; }
.dbsec-open { color: #b3111e; font-weight: bold; }
.dbsec-expired { color: #b3111e; font-weight: bold; }
.dbsec-open + .dbsec-expired { margin-top: 3px; }
.dbsec-src { color: #57606a; font-size: 11px; }
.dbsec-refs { color: #57606a; font-size: 12px; }
.dbsec-ref { margin-right: 10px; }
.dbsec-kv { margin-right: 8px; white-space: nowrap; }
.dbsec-failing { font-size: 12px; }
@media print {
  /* on paper every detail shows; filters and the raw pytest log do not */
  #results-table .extras-row.hidden { display: table-row !important; }
  .logwrapper, .controls, p.filter, .summary__reload { display: none !important; }
  .dbsec-badge { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
</style>"""
