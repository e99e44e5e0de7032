"""Compliance evidence: waivers, accepted findings, overrides, attestations, the CI gate, the report
formats, the `dbsec` evidence tools, plugin hooks and pytest-xdist -- end to end against the emulator."""

from __future__ import annotations

import csv
import datetime as dt
import json
import xml.etree.ElementTree as ET

import pytest

from pytest_dbsec.cli import main as dbsec

TODAY = dt.date.today()
FUTURE = (TODAY + dt.timedelta(days=30)).isoformat()
PAST = (TODAY - dt.timedelta(days=1)).isoformat()


# These tests are about the machinery, judged through TOK-01..04; a test's own -k replaces this.
TOK_01_04 = ("-k", "test_TOK_01 or test_TOK_02 or test_TOK_03 or test_TOK_04")


def run(pytester, *args):
    select = () if "-k" in args else TOK_01_04
    result = pytester.runpytest("-p", "no:cacheprovider", "--dbsec-report-dir", "out", *select, *args)
    path = pytester.path / "out" / "findings.json"
    return result, (json.loads(path.read_text()) if path.exists() else None)


def result_of(report, control, target="emu"):
    return next(r for r in report["results"] if r["control_id"] == control and r["target"] == target)


@pytest.fixture
def bad_tenant(emulator, tenant, profile):
    """The token tenant plus one token that never expires (fails TOK-01, TOK-02, TOK-04)."""
    t = tenant("tokens")
    t["account"]["workspaces"][0]["tokens"].append(
        {"token_id": "tok-forever", "owner": "bob@corp.example.com", "comment": "=HYPERLINK(\"x\")",
         "creation_time": "-5d", "expiry_time": -1})
    emu = emulator(t)
    return emu, profile(emu, "ws1")


def write_baseline(pytester, body: str) -> str:
    (pytester.path / "b.yaml").write_text("extends: default\n" + body)
    return "b.yaml"


# -- waivers -----------------------------------------------------------------------------------


def test_waiver_reports_the_finding_as_waived_with_who_and_until_when(pytester, bad_tenant):
    _, name = bad_tenant
    b = write_baseline(pytester, f"""
waivers:
  - control: TOK-01
    resource: tok-forever
    justification: migration to OAuth in progress
    approver: ciso@corp.example.com
    expires: {FUTURE}
  - control: TOK-02
    resource: nothing-matches-this
    justification: old
    approver: ciso@corp.example.com
    expires: {FUTURE}
""")
    result, report = run(pytester, "--databricks-profile", name, "--dbsec-baseline", b, "-k", "TOK_01 or TOK_02")
    r = result_of(report, "TOK-01")
    assert r["outcome"] == "waived"
    (f,) = r["findings"]
    assert f["disposition"]["approver"] == "ciso@corp.example.com" and f["disposition"]["expires"] == FUTURE
    assert f["disposition"]["source"].endswith("b.yaml:4")
    assert result_of(report, "TOK-02")["outcome"] == "failed"  # a waiver covers one control only
    statuses = {w["resource"]: (w["status"], w["matched"]) for w in report["waivers"]}
    assert statuses == {"tok-forever": ("active", 1), "nothing-matches-this": ("stale", 0)}
    result.stdout.fnmatch_lines(["*1 stale*", "*XFAIL*TOK_01*waived*"])


def test_an_expired_waiver_stops_protecting_and_is_reported(pytester, bad_tenant):
    _, name = bad_tenant
    b = write_baseline(pytester, f"""
waivers:
  - {{control: TOK-01, resource: "tok-*", justification: was fine, approver: a@x.com, expires: {PAST}}}
""")
    result, report = run(pytester, "--databricks-profile", name, "--dbsec-baseline", b, "-k", "TOK_01")
    assert result.ret == 1
    r = result_of(report, "TOK-01")
    assert r["outcome"] == "failed"
    (f,) = r["findings"]
    assert f["disposition"] is None and f["expired_waiver"]["expires"] == PAST
    assert report["waivers"][0]["status"] == "expired" and report["waivers"][0]["matched"] == 1


def test_a_waiver_for_an_unknown_control_is_a_usage_error(pytester, bad_tenant):
    _, name = bad_tenant
    b = write_baseline(pytester, f"""
waivers:
  - {{control: TOK-99, resource: x, justification: j, approver: a@x.com, expires: {FUTURE}}}
""")
    result, report = run(pytester, "--databricks-profile", name, "--dbsec-baseline", b)
    assert result.ret == 4 and report is None
    assert "b.yaml:4" in result.stderr.str() and "TOK-99" in result.stderr.str()


# -- overrides ---------------------------------------------------------------------------------


def test_controls_disabled_or_rerated_by_the_baseline(pytester, bad_tenant):
    _, name = bad_tenant
    b = write_baseline(pytester, """
controls:
  TOK-04: {enabled: false, reason: covered by TOK-02 here}
  TOK-02: {severity: low, reason: tokens are short-lived by IdP policy}
""")
    result, report = run(pytester, "--databricks-profile", name, "--dbsec-baseline", b, "--dbsec-fail-on", "medium")
    r4 = result_of(report, "TOK-04")
    assert r4["outcome"] == "skipped" and "covered by TOK-02 here" in r4["reason"]
    r2 = result_of(report, "TOK-02")
    assert r2["severity"] == "low" and r2["declared_severity"] == "high" and r2["outcome"] == "failed"
    # TOK-01 (high) still fails the gate; TOK-02 now below it
    assert [g["control_id"] for g in report["gate"]["failing"]] == ["TOK-01"]


# -- the gate ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_on, code", [("low", 1), ("medium", 1), ("high", 0), ("none", 0)])
def test_fail_on_severity(pytester, emulator, tenant, profile, fail_on, code):
    t = tenant("tokens")
    t["account"]["workspaces"][0]["conf"]["maxTokenLifetimeDays"] = None  # TOK-03 fails: medium
    emu = emulator(t)
    result, report = run(pytester, "--databricks-profile", profile(emu, "ws1"), "--dbsec-fail-on", fail_on)
    assert result_of(report, "TOK-03")["outcome"] == "failed"
    assert result.ret == code == report["gate"]["exit_code"]
    result.stdout.fnmatch_lines([f"*gate: {'FAIL' if code else 'PASS'}*"])


@pytest.mark.parametrize("allow, code", [(False, 1), (True, 0)])
def test_errors_fail_the_gate_unless_allowed(pytester, emulator, tenant, profile, allow, code):
    emu = emulator(tenant("tokens"))
    args = ["--databricks-profile", profile(emu, "ws1", principal="alice@corp.example.com")]
    result, report = run(pytester, *args, *(["--dbsec-allow-errors"] if allow else []))
    assert {r["outcome"] for r in report["results"]} == {"error"}
    assert result.ret == code
    assert report["complete"] is False  # allowed or not, the evidence says it is incomplete


def test_a_failing_ordinary_test_still_fails_the_run(pytester, emulator, tenant, profile):
    emu = emulator(tenant("tokens"))
    pytester.makepyfile(test_plain="def test_broken():\n    assert False\n")
    result, report = run(pytester, "--databricks-profile", profile(emu, "ws1"), "-k", TOK_01_04[1] + " or broken")
    assert {r["outcome"] for r in report["results"]} == {"passed"}
    assert result.ret == 1 and report["gate"]["other_failures"] == 1


# -- accepted findings ---------------------------------------------------------------------------


def test_accepted_findings_only_new_failures_fail(pytester, emulator, tenant, profile):
    t = tenant("tokens")
    t["account"]["workspaces"][0]["tokens"].append(
        {"token_id": "tok-old-1", "owner": "bob@corp.example.com", "comment": "legacy",
         "creation_time": "-5d", "expiry_time": -1})
    emu = emulator(t)
    ws = emu.tenant["account"]["workspaces"][0]  # the emulator's own copy: edits show on the next request
    name = profile(emu, "ws1")
    result, first = run(pytester, "--databricks-profile", name)
    assert result.ret == 1
    accepted = pytester.path / "accepted.yaml"
    assert dbsec(["baseline", "accept", "--from", str(pytester.path / "out" / "findings.json"),
                  "-o", str(accepted)]) == 0
    result, second = run(pytester, "--databricks-profile", name, "--dbsec-accepted", str(accepted))
    assert result.ret == 0, result.stdout.str()
    assert result_of(second, "TOK-01")["outcome"] == "accepted"
    assert second["accepted"]["matched"] == len(second["accepted"]["resolved"]) + second["accepted"]["matched"]
    # a new bad token fails; the old one is still accepted
    ws["tokens"].append({"token_id": "tok-new", "owner": "alice@corp.example.com", "comment": "new",
                         "creation_time": "-1d", "expiry_time": -1})
    emu.refresh()
    result, third = run(pytester, "--databricks-profile", name, "--dbsec-accepted", str(accepted))
    assert result.ret == 1
    tok01 = result_of(third, "TOK-01")
    assert tok01["outcome"] == "failed"
    assert {f["resource_id"]: (f["disposition"] or {}).get("kind") for f in tok01["findings"]} == {
        "tok-old-1": "accepted", "tok-new": None}
    # the old token is revoked: its accepted entries are reported as resolved
    ws["tokens"] = [tok for tok in ws["tokens"] if tok["token_id"] != "tok-old-1"]
    emu.refresh()
    result, fourth = run(pytester, "--databricks-profile", name, "--dbsec-accepted", str(accepted))
    resolved = {(r["control_id"], r["resource_id"]) for r in fourth["accepted"]["resolved"]}
    assert ("TOK-01", "tok-old-1") in resolved


def test_dbsec_diff_lists_new_and_resolved_findings(pytester, bad_tenant, capsys):
    emu, name = bad_tenant
    run(pytester, "--databricks-profile", name)
    old = pytester.path / "old.json"
    old.write_text((pytester.path / "out" / "findings.json").read_text())
    ws = emu.tenant["account"]["workspaces"][0]
    ws["tokens"] = [tok for tok in ws["tokens"] if tok["token_id"] != "tok-forever"]
    emu.refresh()
    run(pytester, "--databricks-profile", name)
    capsys.readouterr()
    code = dbsec(["diff", str(old), str(pytester.path / "out" / "findings.json"), "--output", "json"])
    diff = json.loads(capsys.readouterr().out)
    assert code == 0 and diff["new"] == []
    assert {(d["control_id"], d["resource_id"]) for d in diff["resolved"]} == {
        ("TOK-01", "tok-forever"), ("TOK-02", "tok-forever"), ("TOK-04", "tok-forever")}
    assert {(c["control_id"], c["old"], c["new"]) for c in diff["changed"]} >= {("TOK-01", "failed", "passed")}
    assert dbsec(["diff", str(pytester.path / "out" / "findings.json"), str(old)]) == 1  # reversed: new ones
    assert dbsec(["diff", str(old), str(pytester.path / "nope.json")]) == 4


# -- attestations ------------------------------------------------------------------------------

ATTESTED = '''
import pytest

@pytest.mark.dbsec(id="ORG-12", title="SSO enforced (attested)", severity="high", scope="workspace",
                   sections=[], refs={"SOC2": ["CC6.1"]}, rationale="no API", remediation="attest it",
                   verified_by="attestation")
def test_ORG_12_sso_enforced(workspace):
    pass
'''


@pytest.mark.parametrize("attestation, outcome", [
    ("", "failed"),
    (f"  - {{control: ORG-12, statement: SSO enforced in Okta, evidence: 'https://wiki/sso', attested_by: ciso, "
     f"date: {TODAY.isoformat()}, valid_days: 90}}\n", "attested"),
    (f"  - {{control: ORG-12, statement: old, evidence: 'https://wiki/sso', attested_by: ciso, "
     f"date: {(TODAY - dt.timedelta(days=100)).isoformat()}, valid_days: 90}}\n", "failed"),
])
def test_attested_controls(pytester, emulator, tenant, profile, attestation, outcome):
    emu = emulator(tenant("tokens"))
    pytester.makepyfile(test_org=ATTESTED)
    b = write_baseline(pytester, "attestations:\n" + attestation if attestation else "")
    result, report = run(pytester, "--databricks-profile", profile(emu, "ws1"), "--dbsec-baseline", b, "test_org.py",
                         "-k", "ORG")
    r = result_of(report, "ORG-12")
    assert r["outcome"] == outcome
    if outcome == "attested":
        assert r["attestation"]["attested_by"] == "ciso" and r["reason"] == "SSO enforced in Okta"
    else:
        (f,) = r["findings"]
        assert f["resource_type"] == "attestation" and ("stale" in f["seen"] or "no attestation" in f["seen"])


# -- report formats and evidence -----------------------------------------------------------------


def test_junit_csv_and_evidence_are_rendered_from_the_same_findings(pytester, bad_tenant, capsys):
    _, name = bad_tenant
    result, report = run(pytester, "--databricks-profile", name)
    out = pytester.path / "out"
    suite = ET.parse(out / "junit.xml").getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert len(cases) == len(report["results"]) == 4
    tok01 = cases["TOK-01 [high] No token without expiry [emu]"]
    assert tok01.get("classname") == "dbsec.TOK.high"
    assert "tok-forever" in tok01.find("failure").text
    assert cases["TOK-03 [medium] Workspace caps token lifetime [emu]"].find("failure") is None

    rows = list(csv.DictReader((out / "findings.csv").open()))
    forever = [r for r in rows if r["resource_id"] == "tok-forever"]
    assert {r["control_id"] for r in forever} == {"TOK-01", "TOK-02", "TOK-04"}
    assert all(r["resource_name"].startswith("'=") for r in forever), "formula injection neutralised"
    assert {r["control_id"] for r in rows if not r["resource_id"]} == {"TOK-03"}  # passed, no findings

    evidence = json.loads((out / "evidence.json").read_text())
    files = {e["file"] for e in evidence["files"]}
    assert {"findings.json", "findings.csv", "junit.xml", "compliance.html"} <= files
    assert evidence["baseline"]["name"] == "default" and len(evidence["baseline"]["sha256"]) == 64
    assert dbsec(["verify", str(out / "evidence.json")]) == 0
    (out / "findings.csv").write_text("tampered\n")
    capsys.readouterr()
    assert dbsec(["verify", str(out / "evidence.json")]) == 1
    assert "findings.csv: changed" in capsys.readouterr().out


# -- extension points ----------------------------------------------------------------------------

EXTENSION = '''
import json, pathlib, pytest

def pytest_dbsec_register_sections(section):
    @section("me", "workspace", title="the auditing identity")
    def me(w, ctx):
        return w.current_user.me().as_dict()

def pytest_dbsec_findings(report, config):
    pathlib.Path("siem.json").write_text(json.dumps(report.to_json()["summary"]))
'''

USES_EXTENSION = '''
import pytest

@pytest.mark.dbsec(id="ORG-20", title="Auditor is a service principal", severity="low", scope="workspace",
                   sections=["me"], refs={"seeds": ["org"]}, rationale="r", remediation="x")
def test_ORG_20_auditor_is_sp(workspace, findings):
    me = workspace.data("me")
    if "@" in me["userName"]:
        findings.fail(resource_type="user", resource_id=me["id"], seen=me["userName"], expected="a service principal")
'''


def test_plugins_add_sections_and_receive_findings(pytester, emulator, tenant, profile):
    emu = emulator(tenant("tokens"))
    pytester.makeconftest(EXTENSION)
    pytester.makepyfile(test_org=USES_EXTENSION)
    result, report = run(pytester, "--databricks-profile", profile(emu, "ws1"), "test_org.py", "-k", "ORG")
    assert result_of(report, "ORG-20")["outcome"] == "passed"
    assert json.loads((pytester.path / "siem.json").read_text())["passed"] == 1


# -- pytest-xdist ------------------------------------------------------------------------------


def test_xdist_fetches_the_inventory_once_and_the_controller_reports(pytester, bad_tenant):
    pytest.importorskip("xdist")
    emu, name = bad_tenant
    result, report = run(pytester, "--databricks-profile", name, "-n", "2")
    assert len(report["results"]) == 4 and report["complete"] is True
    assert result_of(report, "TOK-01")["outcome"] == "failed"
    token_calls = [r for r in emu.requests if r.path == "/api/2.0/token-management/tokens"]
    assert len(token_calls) == 1, "workers share one collection"
    assert result.ret == 1


def test_the_readme_example_baseline_is_valid(tmp_path):
    import re
    from pathlib import Path

    from pytest_dbsec.baseline import Baseline

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    example = re.search(r"```yaml\n(# baselines/prod.yaml\n.*?)```", readme, re.S).group(1)
    (tmp_path / "prod.yaml").write_text(example)
    b = Baseline.load(str(tmp_path / "prod.yaml"))
    b.validate_control_ids({"TOK-01", "TOK-02", "TOK-03", "TOK-04"})
    assert b.get("tokens.max_lifetime_days") == 60 and b.waivers[0].workspace == "prod"


def test_replay_under_xdist_matches(pytester):
    pytest.importorskip("xdist")
    run(pytester, "--dbsec-demo", "--dbsec-snapshot-out", "s.json")
    single = json.loads((pytester.path / "out" / "findings.json").read_text())
    result, spread = run(pytester, "--dbsec-replay", "s.json", "-n", "2")
    pick = lambda rep: [(r["control_id"], r["target"], r["outcome"], len(r["findings"])) for r in rep["results"]]
    assert pick(spread) == pick(single) and spread["complete"] is True
