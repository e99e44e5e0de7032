"""compliance.html (pytest_dbsec/report/html.py) through pytest-html 4.

The inner sessions stand in for the core plugin: their conftest sets ``report.dbsec`` from
``Outcome`` objects and calls ``configure(...)`` itself, so these tests exercise the HTML module
alone, whatever the state of the core plugin's wiring. Hostile workspace and resource names are
part of every run; a real Chromium renders the page to prove pytest-html's script ran and that no
injected markup executed.
"""

from __future__ import annotations

import html
import json
import re
import textwrap

import pytest
from dbsec_helpers import chromium, render_in_chromium

from pytest_dbsec.findings import Control, Disposition, Finding, Outcome
from pytest_dbsec.report import RunReport
from pytest_dbsec.report.html import findings_fragment, summary_fragments

HOSTILE_WS = "<script>alert(1)</script>"
HOSTILE_NAME = '"><img src=x onerror=alert(2)>'
# Payloads that leave a trace in the DOM if they ever run, for the browser check: an <img> whose
# error handler adds a <pwn-...> element (an <img> inserted through innerHTML does fire onerror).
MARKER_WS = "<img src=x onerror=document.body.appendChild(document.createElement('pwn-ws'))>"
MARKER_NAME = "\"'><img src=x onerror=document.body.appendChild(document.createElement('pwn-name'))>"

CONFTEST = textwrap.dedent(r'''
    import os
    from pathlib import Path

    import pytest

    from pytest_dbsec.findings import Control, Disposition, Finding, Outcome
    from pytest_dbsec.report import RunReport
    from pytest_dbsec.report import html as dbsec_html

    HOSTILE_WS = __HOSTILE_WS__
    HOSTILE_NAME = __HOSTILE_NAME__
    MARKER_WS = __MARKER_WS__
    MARKER_NAME = __MARKER_NAME__
    TARGETS = ["prod", HOSTILE_WS, MARKER_WS]

    def control(cid, title, severity, refs, verified_by="api"):
        return Control(id=cid, title=title, severity=severity, scope="workspace", sections=("tokens",),
                       refs=refs, rationale=f"Rationale of {cid}: tokens leak.",
                       remediation=f"Remediation of {cid}: run `databricks tokens revoke`.",
                       verified_by=verified_by)

    CONTROLS = {
        "test_TOK_01_no_token_without_expiry": control(
            "TOK-01", "No token without expiry", "high", {"SAT": ("IA-4",), "CIS": ("2.1.6",)}),
        "test_TOK_03_workspace_caps_tokens": control(
            "TOK-03", "Workspace caps token lifetime", "medium", {"SOC2": ("CC6.1",), "NIST": ("IA-5",)}),
        "test_NET_01_ip_access_lists": control("NET-01", "IP access lists enabled", "critical", {"ISO27001": ("A.8.20",)}),
        "test_GOV_09_incident_runbook": control("GOV-09", "Incident runbook exists", "low", {"seeds": ("gov",)},
                                                verified_by="attestation"),
    }

    WAIVER = dict(kind="waived", justification="Migration ticket SEC-42 " + HOSTILE_NAME,
                  approver="ciso@" + HOSTILE_NAME, expires="2099-01-31", source="baselines/prod.yaml:14")

    def finding(cid, target, rid, name, **kw):
        return Finding(control_id=cid, target=target, resource_type="token", resource_id=rid, resource_name=name,
                       seen="no expiry (expiry_time -1)", expected="an expiry date", owner="alice@corp.example",
                       details={"created": "2025-01-01", "note": HOSTILE_NAME}, **kw)

    def plan(func, target):
        """(outcome, phase that decides it, findings, reason, attestation)"""
        if func.startswith("test_TOK_01"):
            if target == "prod":
                return ("failed", "call", [
                    finding("TOK-01", target, "tok-hostile", HOSTILE_NAME),
                    finding("TOK-01", target, "tok-marker", MARKER_NAME),
                    finding("TOK-01", target, "tok-expired", "old batch token",
                            expired_waiver=Disposition(**{**WAIVER, "expires": "2020-06-30"}, active=False)),
                ], None, None)
            if target == HOSTILE_WS:
                return ("waived", "call", [finding("TOK-01", target, "tok-w", "waived token",
                                                   disposition=Disposition(**WAIVER))], None, None)
            return ("accepted", "call", [finding("TOK-01", target, "tok-a", "accepted token", disposition=Disposition(
                kind="accepted", justification="Break-glass token, reviewed quarterly", source="baselines/prod.yaml:30"))],
                None, None)
        if func.startswith("test_TOK_03"):
            if target == "prod":
                return ("error", "setup", [], "data section 'workspace_conf' for prod is unavailable: 403 "
                        "PERMISSION_DENIED " + HOSTILE_NAME, None)
            return ("passed", "call", [], None, None)
        if func.startswith("test_NET_01"):
            if target == MARKER_WS:
                return ("skipped", "setup", [], "no IP access list feature on this tier " + HOSTILE_NAME, None)
            return ("passed", "call", [], None, None)
        if func.startswith("test_GOV_09"):
            return ("attested", "call", [], "Runbook reviewed", {
                "statement": "Incident runbook exists and was exercised " + HOSTILE_NAME,
                "attested_by": "secops@corp.example", "date": "2025-05-01", "expires": "2026-05-01"})
        return None

    def nodeid(func, target):
        return f"test_controls.py::{func}[{target}]"

    def outcome(func, target):
        p = plan(func, target)
        res, _, findings, reason, attestation = p
        return Outcome(control=CONTROLS[func], target=target, nodeid=nodeid(func, target), outcome=res,
                       findings=findings, reason=reason, attestation=attestation, duration_s=0.01,
                       severity="critical" if func.startswith("test_TOK_03") else None)

    def run_report():
        outcomes = [outcome(f, t) for f in CONTROLS for t in TARGETS]
        complete = os.environ.get("DBSEC_TEST_COMPLETE") == "1"
        # the shapes findings.waiver_statuses / accepted_status / gate give the core plugin's RunReport
        waivers = [
            {"control": "TOK-01", "resource": "tok-w*", "workspace": "*", "justification": WAIVER["justification"],
             "approver": WAIVER["approver"], "expires": "2099-01-31", "source": "baselines/prod.yaml:14",
             "status": "active", "matched": 1},
            {"control": "TOK-01", "resource": "tok-expired", "workspace": "prod", "justification": "batch job",
             "approver": "cto@corp.example", "expires": "2020-06-30", "source": "baselines/prod.yaml:20",
             "status": "expired", "matched": 1},
            {"control": "NET-01", "resource": HOSTILE_NAME, "workspace": HOSTILE_WS, "justification": "old VPN",
             "approver": "net@corp.example", "expires": "2099-12-31", "source": "baselines/prod.yaml:26",
             "status": "stale", "matched": 0},
        ]
        accepted = {"file": "baselines/accepted.yaml", "entries": 2, "matched": 1, "resolved": [
            {"fingerprint": "0123456789abcdef", "control_id": "TOK-01", "target": "prod", "resource_type": "token",
             "resource_id": "tok-gone", "source": "baselines/accepted.yaml:12"}]}
        gate = {"fail_on": "high", "allow_errors": False, "exit_code": 1,
                "failing": [{"control_id": "TOK-01", "target": "prod", "severity": "high", "open_findings": 2}],
                "below_threshold": 0, "errors": [{"control_id": "TOK-03", "target": "prod", "reason": "403"}],
                "other_failures": 0}
        return RunReport(
            meta={"tool": "pytest-dbsec", "tool_version": "0.1.0", "sdk_version": "0.156.0", "source": "demo",
                  "started": "2025-06-01T10:00:00Z", "finished": "2025-06-01T10:00:09Z",
                  "targets": {t: {"kind": "workspace", "host": f"https://{t}.cloud.databricks.com",
                                  "profile": None} for t in TARGETS},
                  "baseline": {"name": "prod-" + HOSTILE_NAME, "path": "baselines/prod.yaml", "sha256": "ab" * 32},
                  "judged_on": "2025-06-01"},
            outcomes=outcomes, complete=complete,
            data_errors=[] if complete else [{"scope": "prod", "section": "workspace_conf",
                                              "error": "403 PERMISSION_DENIED " + HOSTILE_NAME}],
            waivers=waivers, accepted=accepted, gate=gate)

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(config):
        no_report = os.environ.get("DBSEC_TEST_NO_REPORT") == "1"
        dbsec_html.configure(config, Path(config.rootpath) / "reports" / "compliance.html",
                             (lambda: None) if no_report else run_report)

    # like the core plugin's preflight finding a dead host once the run has started: exit code 4
    def pytest_runtestloop(session):
        if os.environ.get("DBSEC_TEST_USAGE_ERROR") == "1":
            raise pytest.UsageError("cannot connect: the host does not answer")

    def pytest_generate_tests(metafunc):
        if "ws" in metafunc.fixturenames:
            metafunc.parametrize("ws", TARGETS, ids=TARGETS)

    def _plan_of(item):
        callspec = getattr(item, "callspec", None)
        if callspec is None or item.originalname not in CONTROLS:
            return None
        return item.originalname, callspec.params["ws"], plan(item.originalname, callspec.params["ws"])

    @pytest.fixture(autouse=True)
    def _decide_at_setup(request):
        p = _plan_of(request.node)
        if p and p[2][1] == "setup":
            if p[2][0] == "skipped":
                pytest.skip(p[2][3])
            raise RuntimeError(p[2][3])

    @pytest.fixture
    def planned(request):
        return _plan_of(request.node)[2][0]

    # plays the core plugin: report.dbsec on the report of the phase that decided the outcome
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(item, call):
        report = yield
        p = _plan_of(item)
        if p and p[2][1] == call.when:
            report.dbsec = outcome(p[0], p[1]).to_json()
        return report
''')
for _name, _value in (("HOSTILE_WS", HOSTILE_WS), ("HOSTILE_NAME", HOSTILE_NAME), ("MARKER_WS", MARKER_WS),
                      ("MARKER_NAME", MARKER_NAME)):
    CONFTEST = CONFTEST.replace(f"__{_name}__", repr(_value))

TESTS = textwrap.dedent('''
    import pytest

    def _act(planned):
        # as the core plugin does: open findings fail, fully waived or accepted ones are an xfail
        if planned == "failed":
            pytest.fail("TOK-01 found tokens without expiry", pytrace=False)
        if planned in ("waived", "accepted"):
            pytest.xfail(planned)

    def test_TOK_01_no_token_without_expiry(ws, planned):
        _act(planned)

    def test_TOK_03_workspace_caps_tokens(ws, planned):
        _act(planned)

    def test_NET_01_ip_access_lists(ws, planned):
        _act(planned)

    def test_GOV_09_incident_runbook(ws, planned):
        _act(planned)

    @pytest.fixture
    def broken_teardown():
        yield
        raise RuntimeError("teardown broke")

    def test_GOV_09b_teardown_only(broken_teardown):
        """an ordinary test (no dbsec result) whose teardown fails: two rows, ours empty"""

    @pytest.mark.parametrize("value", ["x"], ids=[__USER_ID__])
    def test_users_own(value):
        """a user's ordinary test whose id is hostile"""
''').replace("__USER_ID__", repr("<img src=x onerror=document.body.appendChild(document.createElement('pwn-id'))>"))

CONTROL_IDS = ("TOK-01", "TOK-03", "NET-01", "GOV-09")


@pytest.fixture
def inner(pytester, monkeypatch):
    """Write the inner project; return a runner giving (result, page text) for compliance.html."""
    for name in ("DBSEC_TEST_COMPLETE", "DBSEC_TEST_NO_REPORT", "DBSEC_TEST_USAGE_ERROR"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_controls=TESTS)

    def run(*args, env: dict | None = None, page: str = "reports/compliance.html"):
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        # the core plugin stays out: the conftest plays its part, so this tests the HTML module alone
        result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:dbsec", *args)
        path = pytester.path / page
        return result, (path.read_text(encoding="utf-8") if path.exists() else None)

    return run


def blob(page: str) -> dict:
    """pytest-html's data blob (the results table is built from it by the page's script)."""
    m = re.search(r'data-jsonblob="([^"]*)"', page)
    assert m, "no data blob in the page"
    return json.loads(html.unescape(m.group(1)))


def summary_part(page: str) -> str:
    """The page without the data blob and styles: what the server side inserted as raw HTML."""
    return re.sub(r"<style.*?</style>", "", re.sub(r'data-jsonblob="[^"]*"', 'data-jsonblob=""', page), flags=re.S)


def rows(page: str) -> list[dict]:
    return [t for tests in blob(page)["tests"].values() for t in tests]


# -- the page ------------------------------------------------------------------------------------


def test_page_is_written_self_contained_escaped_and_complete_in_content(inner, pytester):
    result, page = inner()
    assert result.ret == 1  # TOK-01 on prod fails, TOK-03 errors
    assert page is not None, result.stdout.str()
    result.stdout.fnmatch_lines(["*Generated html report*compliance.html*"])

    # self-contained: no external script, stylesheet, image or font; nothing beside the file
    for m in re.finditer(r'<(script|link|img|iframe|source|video)\b[^>]*\b(src|href)\s*=\s*"([^"]*)"', page):
        assert not m.group(3).startswith(("http://", "https://", "//")), m.group(0)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page)
    assert "<style" in page and "<script>" in page
    assert sorted(p.name for p in (pytester.path / "reports").iterdir()) == ["compliance.html"]

    top = summary_part(page)
    assert "<title id=\"head-title\">Databricks security compliance</title>" in page
    # hostile names: escaped where we put them, never raw anywhere
    for raw in (HOSTILE_WS, HOSTILE_NAME, MARKER_WS, MARKER_NAME):
        assert raw not in page
    assert html.escape(HOSTILE_WS) in top  # environment: targets and "judged on"
    assert html.escape(HOSTILE_NAME) in top  # baseline name, data errors, waivers
    assert "onerror=alert" not in top.replace(html.escape(HOSTILE_NAME), "")

    # banner, environment
    assert "INCOMPLETE" in top and "workspace_conf" in top and "403 PERMISSION_DENIED" in top
    assert "COMPLETE</b>:" not in top.replace("INCOMPLETE</b>:", "")
    for text in ("Audit environment", "demo", "0.1.0", "0.156.0", "2025-06-01T10:00:00Z", "2025-06-01T10:00:09Z",
                 "https://prod.cloud.databricks.com", "ab" * 32, "prod-" + html.escape(HOSTILE_NAME)):
        assert text in top, text
    # summary tables
    assert "Results by severity" in top and "Results by framework" in top
    for fw in ("SAT", "CIS", "SOC2", "NIST", "ISO27001", "seeds"):
        assert f"<th>{fw}</th>" in top, fw
    assert "2.1.6 (TOK-01)" in top and "IA-5 (TOK-03)" in top  # failing requirements, with their controls
    # waivers with their status and matches; accepted findings: matched now and resolved entries
    assert "3 waivers: 1 active, 1 expired, 1 stale" in top
    for status in ("active", "expired", "stale"):
        assert f"dbsec-ws-{status}\">{status}</span>" in top
    assert "2020-06-30" in top and "2099-01-31" in top and "ciso@" + html.escape(HOSTILE_NAME) in top
    assert "Accepted findings" in top and "<b>1</b> matched a finding" in top and "<b>1</b> resolved" in top
    assert "Break-glass token, reviewed quarterly" in top and "tok-gone" in top
    assert "CI gate: FAIL" in top and "fail on <b>high</b>" in top

    # the results table: our columns, our outcome, per control x target
    head = re.search(r'<thead id="results-table-head">(.*?)</thead>', page, re.S).group(1)
    for label in ("Status", "Control", "Severity", "Target"):
        assert f">{label}</th>" in head
    by_id = {}
    for row in rows(page):
        cells = row["resultsTableRow"]
        text = "".join(cells)
        m = re.search(r'col-dbsecControl"><b>([^<]*)</b>', text)
        if m:
            by_id.setdefault(m.group(1), []).append((text, row))
    assert set(by_id) == set(CONTROL_IDS)
    assert all(len(v) == 3 for v in by_id.values())  # one row per control and target
    statuses = {re.search(r"dbsec-st-(\w+)", t).group(1) for v in by_id.values() for t, _ in v}
    assert statuses == {"failed", "waived", "accepted", "error", "passed", "skipped", "attested"}
    for text, row in by_id["TOK-03"]:
        assert "dbsec-sev-critical" in text  # the effective severity, re-rated
    # the details: findings, dispositions, reasons, attestation, remediation; everything escaped
    details = {cid: "".join(x["content"] for _, row in v for x in row["extras"] if x["format_type"] == "html")
               for cid, v in by_id.items()}
    tok = details["TOK-01"]
    for text in ("No token without expiry", "Rationale of TOK-01", "tok-hostile", html.escape(HOSTILE_NAME),
                 html.escape(MARKER_NAME), "alice@corp.example", "no expiry (expiry_time -1)", "an expiry date",
                 "Waiver EXPIRED on 2020-06-30", "<b>Waived</b> by ciso@", "until 2099-01-31",
                 "baselines/prod.yaml:14", "<b>Accepted</b>: Break-glass token", "Remediation:",
                 "<code>databricks tokens revoke</code>"):
        assert text in tok, text
    assert "Could not be judged (ERROR):" in details["TOK-03"] and "PERMISSION_DENIED" in details["TOK-03"]
    assert "Skipped:</b> no IP access list feature" in details["NET-01"]
    assert "Attestation" in details["GOV-09"] and "secops@corp.example" in details["GOV-09"]
    for frag in list(details.values()) + ["".join(r["resultsTableRow"]) for r in rows(page)]:
        for raw in (HOSTILE_WS, HOSTILE_NAME, MARKER_WS, MARKER_NAME, "<img"):
            assert raw not in frag
    # pytest-html's own test id cell is escaped too (it is not, in pytest-html 4.2)
    ids = [re.search(r'col-testId">(.*?)</td>', "".join(r["resultsTableRow"])).group(1) for r in rows(page)]
    assert any(html.escape(MARKER_WS) in i for i in ids)
    assert any("pwn-id" in i for i in ids) and not any("<" in i for i in ids)


def test_ordinary_tests_and_teardown_rows_get_empty_cells(inner):
    result, page = inner()
    user_rows = [r for nodeid, tests in blob(page)["tests"].items() for r in tests
                 if "test_users_own" in nodeid or "teardown_only" in nodeid]
    assert {r["result"] for r in user_rows} == {"Passed", "Error"}  # ordinary pass; the teardown error
    for r in user_rows:
        assert len(r["resultsTableRow"]) == 8
        for name in ("dbsecStatus", "dbsecControl", "dbsecSeverity", "dbsecTarget"):
            assert f'<td class="col-{name}"></td>' in r["resultsTableRow"]


def test_pytest_log_is_kept_only_where_it_adds_something(inner):
    result, page = inner()
    logs = {}
    for nodeid, tests in blob(page)["tests"].items():
        for r in tests:
            m = re.search(r'dbsec-st-(\w+)', "".join(r["resultsTableRow"]))
            logs[(nodeid, m.group(1) if m else None)] = r.get("log", "")
    # a judged control's detail is the record: its pytest text (assertion, xfail traceback) is not repeated
    assert all(not log for (n, st), log in logs.items() if st and st != "error")
    # an ERROR keeps its traceback, and ordinary tests keep theirs
    assert all("RuntimeError" in log for (n, st), log in logs.items() if st == "error")
    assert any("teardown broke" in log for (n, st), log in logs.items() if st is None)


def test_complete_run_shows_complete_banner(inner):
    result, page = inner(env={"DBSEC_TEST_COMPLETE": "1"})
    top = summary_part(page)
    assert "COMPLETE</b>:" in top and "INCOMPLETE" not in top


def test_no_run_report_renders_a_notice(inner):
    result, page = inner(env={"DBSEC_TEST_NO_REPORT": "1"})
    assert page is not None
    assert "INCOMPLETE</b>: no compliance data for this run" in page
    assert "TOK-01" in "".join("".join(r["resultsTableRow"]) for r in rows(page))


def test_users_own_html_option_is_respected(inner, pytester):
    result, page = inner("--html", "mine/report.html", page="mine/report.html")
    assert page is not None and not (pytester.path / "reports" / "compliance.html").exists()
    assert "Audit environment" in page
    assert (pytester.path / "mine" / "assets" / "style.css").exists()  # they did not ask for self-contained


def test_bad_input_found_during_the_run_leaves_nothing_written(inner, pytester):
    result, page = inner(env={"DBSEC_TEST_USAGE_ERROR": "1"})
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert not (pytester.path / "reports").exists()
    # a page the user asked for with --html is theirs: pytest-html's behaviour is left alone
    result, page = inner("--html", "mine.html", page="mine.html", env={"DBSEC_TEST_USAGE_ERROR": "1"})
    assert result.ret == pytest.ExitCode.USAGE_ERROR and page is not None


def test_collect_only_writes_no_page(inner, pytester):
    result, page = inner("--collect-only", "-q")
    assert result.ret == 0 and not (pytester.path / "reports").exists()


def test_html_plugin_disabled_means_no_page_and_no_error(inner, pytester):
    result, page = inner("-p", "no:html")
    assert result.ret == 1 and page is None
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_xdist_workers_results_reach_the_page(inner):
    pytest.importorskip("xdist")
    result, page = inner("-n", "2")
    assert page is not None, result.stdout.str()
    texts = ["".join(r["resultsTableRow"]) for r in rows(page)]
    assert sum("col-dbsecControl\"><b>TOK-01</b>" in t for t in texts) == 3
    assert any("Waiver EXPIRED" in x["content"] for r in rows(page) for x in r["extras"])
    assert "Results by severity" in page


def test_demo_run_through_the_core_plugin_writes_the_page(pytester):
    """The real wiring: the core plugin calls configure() and sets report.dbsec itself."""
    result = pytester.runpytest("-p", "no:cacheprovider", "--dbsec-demo", "-k", "test_TOK_01 or test_TOK_02 or test_TOK_03 or test_TOK_04", "--dbsec-report-dir", "out")
    assert result.ret == 1  # the demo tenant fails token controls
    page = (pytester.path / "out" / "compliance.html").read_text(encoding="utf-8")
    assert "Audit environment" in page and "demo" in summary_part(page)
    texts = ["".join(r["resultsTableRow"]) for r in rows(page)]
    for cid in ("TOK-01", "TOK-02", "TOK-03", "TOK-04"):
        assert sum(f'col-dbsecControl"><b>{cid}</b>' in t for t in texts) == 2, cid  # prod and dev
    assert any("dbsec-st-failed" in t for t in texts)
    details = [x["content"] for r in rows(page) for x in r["extras"] if x["format_type"] == "html"]
    assert len(details) == 8 and all(d.startswith('<div class="dbsec dbsec-detail') for d in details)


# -- the fragments on their own -------------------------------------------------------------------

EVIL = "<x-evil a=\"1\" b='2' onload=z()>&amp;"


def _evil_outcome(outcome: str, **kw) -> Outcome:
    control = Control(id="TOK-01", title="T " + EVIL, severity="high", scope="workspace", sections=("tokens",),
                      refs={"SAT": ("IA-4 " + EVIL,), "CIS": ("2.1.6",)}, rationale="R " + EVIL,
                      remediation="M " + EVIL)
    return Outcome(control=control, target="ws " + EVIL, nodeid="n::" + EVIL, outcome=outcome, **kw)


def _evil_finding(**kw) -> Finding:
    return Finding(control_id="TOK-01", target="ws " + EVIL, resource_type="t " + EVIL, resource_id="id " + EVIL,
                   resource_name="name " + EVIL, seen="seen " + EVIL, expected="exp " + EVIL, owner="own " + EVIL,
                   details={"k " + EVIL: "v " + EVIL, "nested": {"x": EVIL}}, **kw)


def _assert_escaped(fragment: str) -> None:
    assert "<x-evil" not in fragment and "onload=z()" not in fragment.replace("onload=z()&gt;", "")
    assert "&lt;x-evil a=&quot;1&quot; b=&#x27;2&#x27; onload=z()&gt;&amp;amp;" in fragment


@pytest.mark.parametrize("outcome", ["failed", "error", "skipped", "waived", "accepted", "attested", "passed"])
def test_findings_fragment_escapes_every_field(outcome):
    d = Disposition(kind="waived", justification="j " + EVIL, approver="a " + EVIL, expires="2099 " + EVIL,
                    source="s " + EVIL)
    findings = [_evil_finding(), _evil_finding(disposition=d),
                _evil_finding(expired_waiver=Disposition(**{**d.to_json(), "active": False}))]
    o = _evil_outcome(outcome, findings=findings, reason="why " + EVIL, severity="critical",
                      attestation={"statement": "st " + EVIL, EVIL: EVIL})
    frag = findings_fragment(o.to_json())
    _assert_escaped(frag)
    assert "T &lt;x-evil" in frag and "M &lt;x-evil" in frag and "R &lt;x-evil" in frag
    assert "name &lt;x-evil" in frag and "own &lt;x-evil" in frag and "Waiver EXPIRED on 2099 &lt;x-evil" in frag
    assert "re-rated by the baseline from high to critical" in frag
    if outcome in ("error", "skipped"):
        assert "why &lt;x-evil" in frag
    if outcome == "attested":
        assert "st &lt;x-evil" in frag


def test_summary_fragments_escape_every_field_and_list_waivers_and_accepted():
    accepted = Disposition(kind="accepted", justification="accepted on 2025-01-01 " + EVIL, source="acc.yaml:3")
    outcomes = [_evil_outcome(o, findings={"failed": [_evil_finding()],
                                           "accepted": [_evil_finding(disposition=accepted)]}.get(o, []))
                for o in ("failed", "error", "passed", "waived", "accepted")]
    rr = RunReport(meta={"tool_version": EVIL, "sdk_version": EVIL, "source": EVIL, "started": EVIL,
                         "finished": EVIL, "targets": {EVIL: {"kind": EVIL, "host": EVIL, "profile": EVIL}},
                         "baseline": {"name": EVIL, "path": EVIL, "sha256": EVIL}, "judged_on": EVIL, EVIL: EVIL,
                         "snapshot": {"started": EVIL, "targets": {EVIL: {"host": EVIL}}, EVIL: [EVIL]}},
                   outcomes=outcomes, complete=False, data_errors=[{"scope": EVIL, "section": EVIL, "error": EVIL}])
    data = rr.to_json()
    data["waivers"] = [
        {"control": "TOK-01", "workspace": EVIL, "resource": EVIL, "approver": EVIL, "expires": "2099-01-01",
         "justification": EVIL, "source": EVIL, "status": "active", "matched": 2},
        {"control": "TOK-02", "approver": "b", "expires": "2020-01-01", "justification": "old", "status": "expired",
         "matched": 1},
        {"control": "TOK-04", "approver": "c", "expires": "2099-01-01", "justification": "nothing", "status": "stale",
         "matched": 0, EVIL: EVIL},
    ]
    data["accepted"] = {"file": EVIL, "entries": 3, "matched": 1, "resolved": [
        {"fingerprint": "abc123", "control_id": "TOK-01", "target": EVIL, "resource_type": EVIL,
         "resource_id": EVIL, "source": EVIL}]}
    data["gate"] = {"fail_on": EVIL, "allow_errors": False, "exit_code": 1, "failing": [{}], "errors": [{}],
                    "below_threshold": 2, "other_failures": 0}
    blocks = summary_fragments(data)
    top = "".join(blocks)
    _assert_escaped(top)
    assert top.startswith("<style>")
    assert "INCOMPLETE" in top and "CI gate: FAIL" in top and "2 failing below it" in top
    assert "Snapshot (data read by the run that saved it)" in top
    assert "3 waivers: 1 active, 1 expired, 1 stale" in top
    assert "3 entries; <b>1</b> matched a finding in this run; <b>1</b> resolved" in top
    assert "Accepted in this run (1)" in top and "accepted on 2025-01-01" in top and "Resolved entries (1)" in top
    # by severity: TOK-01 is high here; 1 each of failed, error, waived, accepted, passed
    sev = next(b for b in blocks if "Results by severity" in b)
    high = re.search(r'dbsec-sev-high">high</span></th>(.*?)</tr>', sev).group(1)
    assert re.findall(r">(\d+)</td>", high) == ["1", "1", "1", "1", "0", "1", "0", "5"]
    fw = next(b for b in blocks if "Results by framework" in b)
    assert "<th>SAT</th>" in fw and "<th>CIS</th>" in fw and "2.1.6 (TOK-01)" in fw


def test_waivers_on_findings_are_shown_even_if_the_report_lists_none():
    d = Disposition(kind="waived", justification="ticket 7", approver="ciso", expires="2099-01-01", source="b.yaml:3")
    data = RunReport(meta={}, outcomes=[_evil_outcome("waived", findings=[_evil_finding(disposition=d)])],
                     complete=True).to_json()
    data["waivers"] = []
    top = "".join(summary_fragments(data))
    assert "1 waiver: 1 active" in top and "ticket 7" in top and "b.yaml:3" in top


def test_summary_tolerates_a_minimal_report():
    top = "".join(summary_fragments({"complete": True, "results": []}))
    assert "COMPLETE</b>:" in top and "No waivers in the baseline." in top
    assert "No accepted-findings file in this run." in top


# -- a real browser ----------------------------------------------------------------------------------


def test_real_browser_renders_the_page_and_runs_no_injected_script(inner, pytester, tmp_path):
    browser = chromium()

    # the harness itself: the same payload, inserted the way pytest-html inserts raw HTML, is caught
    probe = tmp_path / "probe.html"
    probe.write_text("<html><body><div id=a></div><script>document.getElementById('a').innerHTML = "
                     + json.dumps(MARKER_WS) + "</script></body></html>")
    dom, _ = render_in_chromium(browser, probe, tmp_path)
    assert "<pwn-ws></pwn-ws>" in dom

    result, page = inner()
    assert page is not None
    dom, log = render_in_chromium(browser, pytester.path / "reports" / "compliance.html", tmp_path)
    # pytest-html builds the results table in its script: our rows being there proves it ran
    for cid in CONTROL_IDS:
        assert f'<td class="col-dbsecControl"><b>{cid}</b></td>' in dom, cid
    assert dom.count('class="col-dbsecControl"><b>') == 12
    assert "Waiver EXPIRED on 2020-06-30" in dom and "Audit environment" in dom
    # nothing injected ran: no marker element, no live handler, no console error
    for marker in ("<pwn-ws", "<pwn-name", "<pwn-id"):
        assert marker not in dom, marker
    assert not re.search(r"<img[^>]*onerror", dom)
    assert "<title id=\"head-title\">Databricks security compliance</title>" in dom
    console = [line for line in log.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "Uncaught" in line or "Error" in line], console
