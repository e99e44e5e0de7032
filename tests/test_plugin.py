"""The plugin end to end: options -> real SDK over HTTP -> emulator -> inventory -> controls -> reports.

Runs pytest-in-pytest (pytester) against the Databricks REST emulator. No mocks of the SDK.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from dbsec_helpers import assert_read_only

TOK = ["TOK-01", "TOK-02", "TOK-03", "TOK-04"]


# These tests are about the machinery, judged through TOK-01..04; a test's own -k replaces this.
TOK_01_04 = ("-k", "test_TOK_01 or test_TOK_02 or test_TOK_03 or test_TOK_04")


def run(pytester, *args):
    select = () if "-k" in args else TOK_01_04
    result = pytester.runpytest("-p", "no:cacheprovider", "--dbsec-report-dir", "out", *select, *args)
    path = pytester.path / "out" / "findings.json"
    report = json.loads(path.read_text()) if path.exists() else None
    return result, report


def outcomes(report, target=None) -> dict:
    return {r["control_id"]: r["outcome"] for r in report["results"] if target in (None, r["target"])}


def result_of(report, control, target):
    return next(r for r in report["results"] if r["control_id"] == control and r["target"] == target)


# -- the demo ---------------------------------------------------------------------------------


def test_demo_run_fails_tok_controls_for_the_demo_bad_tokens(pytester):
    result, report = run(pytester, "--dbsec-demo")
    assert result.ret == 1  # controls failed
    prod = outcomes(report, "prod")
    assert prod == {"TOK-01": "failed", "TOK-02": "failed", "TOK-03": "failed", "TOK-04": "failed"}
    tok01 = result_of(report, "TOK-01", "prod")
    assert tok01["findings"], "TOK-01 must list the never-expiring tokens"
    for f in tok01["findings"]:
        assert f["resource_type"] == "token" and f["owner"] and f["details"]["expires"] == "never"
        assert f["seen"].startswith("no expiry")
    # dev has no cap at all: TOK-03 fails, TOK-04 has nothing to compare against
    dev = outcomes(report, "dev")
    assert dev["TOK-03"] == "failed" and dev["TOK-04"] == "skipped"
    assert "maxTokenLifetimeDays" in result_of(report, "TOK-04", "dev")["reason"]
    # the failure message in the terminal lists offending tokens with owner and expiry
    result.stdout.fnmatch_lines(["*TOK-01 No token without expiry [[]high[]]: * findings in prod*",
                                 "*token *owner *seen no expiry*"])
    assert report["complete"] is True
    assert report["run"]["source"] == "demo"


def test_collect_only_lists_every_control_without_network_or_reports(pytester):
    result = pytester.runpytest("--dbsec-demo", "--collect-only", "-q", "--dbsec-report-dir", "out")
    assert result.ret == 0
    text = result.stdout.str()
    for cid in TOK:
        assert f"test_{cid.replace('-', '_')}" in text
    assert "[prod]" in text and "[dev]" in text
    assert not (pytester.path / "out").exists()


# -- a purpose-built tenant through a real ~/.databrickscfg profile ----------------------------


def test_compliant_tenant_passes_every_tok_control(pytester, emulator, tenant, profile):
    emu = emulator(tenant("tokens"))
    name = profile(emu, "ws1")
    result, report = run(pytester, "--databricks-profile", name)
    assert result.ret == 0, result.stdout.str()
    assert outcomes(report) == {c: "passed" for c in TOK}
    assert report["results"][0]["target"] == name


@pytest.mark.parametrize("token, failing", [
    ({"comment": "forever", "creation_time": "-5d", "expiry_time": -1}, {"TOK-01", "TOK-02", "TOK-04"}),
    ({"comment": "a year", "creation_time": "-5d", "expiry_time": "+360d"}, {"TOK-02", "TOK-04"}),
])
def test_each_bad_token_fails_the_controls_it_breaks(pytester, emulator, tenant, profile, token, failing):
    t = tenant("tokens")
    t["account"]["workspaces"][0]["tokens"].append({"token_id": "tok-bad", "owner": "bob@corp.example.com", **token})
    emu = emulator(t)
    result, report = run(pytester, "--databricks-profile", profile(emu, "ws1"))
    assert result.ret == 1
    got = {c for c, o in outcomes(report).items() if o == "failed"}
    assert got == failing
    for cid in failing:
        (f,) = result_of(report, cid, "emu")["findings"]
        assert f["resource_id"] == "tok-bad" and f["owner"] == "bob@corp.example.com"
        assert f["resource_name"] == token["comment"]


@pytest.mark.parametrize("cap, fails", [(None, True), ("0", True), ("365", True), ("abc", True), ("30", False)])
def test_workspace_token_cap(pytester, emulator, tenant, profile, cap, fails):
    t = tenant("tokens")
    t["account"]["workspaces"][0]["conf"]["maxTokenLifetimeDays"] = cap
    emu = emulator(t)
    result, report = run(pytester, "--databricks-profile", profile(emu, "ws1"), "-k", "TOK_03")
    assert outcomes(report) == {"TOK-03": "failed" if fails else "passed"}


def test_baseline_threshold_is_read_not_hard_coded(pytester, emulator, tenant, profile):
    emu = emulator(tenant("tokens"))
    (pytester.path / "strict.yaml").write_text("extends: default\ntokens:\n  max_lifetime_days: 75\n")
    result, report = run(pytester, "--databricks-profile", profile(emu, "ws1"), "--dbsec-baseline", "strict.yaml",
                         "-k", "TOK_02")
    (f,) = result_of(report, "TOK-02", "emu")["findings"]  # the 90-day token, not the 60-day one
    assert f["resource_id"] == "tok-bob-1" and "75 days" in f["expected"]


# -- fail closed -------------------------------------------------------------------------------


def test_permission_denied_makes_controls_error_with_the_reason(pytester, emulator, tenant, profile):
    emu = emulator(tenant("tokens"))
    result, report = run(pytester, "--databricks-profile", profile(emu, "ws1", principal="alice@corp.example.com"))
    assert result.ret == 1
    assert outcomes(report) == {c: "error" for c in TOK}
    reason = result_of(report, "TOK-01", "emu")["reason"]
    assert "/api/2.0/token-management/tokens" in reason and "403" in reason
    assert "PERMISSION_DENIED" in reason and "workspace admin" in reason
    assert report["complete"] is False
    assert {e["section"] for e in report["data_errors"]} == {"tokens", "workspace_conf"}
    result.stdout.fnmatch_lines(["*ERROR at setup of test_TOK_01*", "*INCOMPLETE*"])


def test_429_is_retried_and_the_run_completes(pytester, emulator, tenant, profile):
    emu = emulator(tenant("tokens"))
    emu.add_fault("GET /api/2.0/token-management/tokens", status=429, retry_after=0, times=2)
    result, report = run(pytester, "--databricks-profile", profile(emu, "ws1"), "-k", "TOK_01")
    assert outcomes(report) == {"TOK-01": "passed"} and report["complete"]
    statuses = [r.status for r in emu.requests if r.path == "/api/2.0/token-management/tokens"]
    assert statuses == [429, 429, 200]


def test_persistent_5xx_is_an_error_not_a_pass(pytester, emulator, tenant, profile):
    emu = emulator(tenant("tokens"))
    emu.add_fault("GET /api/2.0/token-management/tokens", status=500, message="backend exploded")
    result, report = run(pytester, "--databricks-profile", profile(emu, "ws1"), "-k", "TOK_01 or TOK_03")
    assert outcomes(report) == {"TOK-01": "error", "TOK-03": "passed"}
    assert "500" in result_of(report, "TOK-01", "emu")["reason"]


def test_only_sections_the_selected_controls_need_are_fetched(pytester, emulator, tenant, profile):
    emu = emulator(tenant("tokens"))
    run(pytester, "--databricks-profile", profile(emu, "ws1"), "-k", "TOK_03")
    paths = {r.path for r in emu.requests}
    assert "/api/2.0/workspace-conf" in paths
    assert "/api/2.0/token-management/tokens" not in paths


# -- read-only, no secrets out -----------------------------------------------------------------


def test_read_only_and_no_token_value_in_any_output(pytester, emulator, tenant, profile, tmp_path):
    t = tenant("tokens")
    emu = emulator(t)
    name = profile(emu, "ws1")
    snap = pytester.path / "out" / "snap.json"
    result, report = run(pytester, "--databricks-profile", name, "--dbsec-snapshot-out", str(snap))
    assert emu.requests, "the emulator saw the run"
    assert_read_only(emu)  # the tool never changes a workspace
    secrets = [c["token"] for c in t["credentials"]]
    outputs = [p.read_text() for p in (pytester.path / "out").iterdir()]
    outputs += [result.stdout.str(), result.stderr.str()]
    for text in outputs:
        for s in secrets:
            assert s not in text


# -- snapshot and replay -----------------------------------------------------------------------


def _verdicts(report):
    return [{k: r[k] for k in ("control_id", "target", "outcome", "findings", "reason")} for r in report["results"]]


@pytest.mark.parametrize("snapshot_name", ["demo.json", "demo.json.gz"])
def test_replay_of_a_saved_snapshot_matches_the_live_run(pytester, snapshot_name):
    live_result, live = run(pytester, "--dbsec-demo", "--dbsec-snapshot-out", snapshot_name)
    assert (pytester.path / snapshot_name).exists()
    replay_result, replay = run(pytester, "--dbsec-replay", snapshot_name)
    assert replay_result.ret == live_result.ret
    assert _verdicts(replay) == _verdicts(live)
    assert replay["run"]["source"] == "replay"
    # the demo's credentials are dapi-style PATs: none may reach the snapshot, reports or terminal
    import gzip

    import yaml
    from pytest_dbsec.emulator import DEMO_TENANT

    secrets = [c["token"] for c in yaml.safe_load(DEMO_TENANT.read_text())["credentials"]]
    raw = (pytester.path / snapshot_name).read_bytes()
    texts = [gzip.decompress(raw).decode() if snapshot_name.endswith(".gz") else raw.decode(),
             (pytester.path / "out" / "findings.json").read_text(),
             live_result.stdout.str(), live_result.stderr.str()]
    assert secrets and not [s for s in secrets for t in texts if s in t]


def test_replay_makes_no_network_calls_and_errors_on_missing_sections(pytester, emulator, tenant, profile):
    emu = emulator(tenant("tokens"))
    run(pytester, "--databricks-profile", profile(emu, "ws1"), "-k", "TOK_03", "--dbsec-snapshot-out", "s.json")
    emu.clear_requests()
    result, report = run(pytester, "--dbsec-replay", "s.json")
    assert emu.requests == []
    assert outcomes(report)["TOK-03"] == "passed"
    assert outcomes(report)["TOK-01"] == "error"  # tokens were never collected into that snapshot
    assert "not in the snapshot" in result_of(report, "TOK-01", "emu")["reason"]


# -- bad input: one clear line, exit code 4, nothing written ------------------------------------


def _usage_error(result, *fragments):
    assert result.ret == 4, result.stdout.str() + result.stderr.str()
    text = result.stderr.str()
    for frag in fragments:
        assert frag in text, text
    return text


def test_unknown_profile_is_a_usage_error(pytester):
    result, report = run(pytester, "--databricks-profile", "nope")
    _usage_error(result, "nope")
    assert report is None


def test_unreachable_host_fails_within_seconds(pytester, monkeypatch):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    monkeypatch.setenv("DATABRICKS_TOKEN", "x")
    started = time.monotonic()
    result, report = run(pytester, "--databricks-host", f"http://127.0.0.1:{port}", "-k", "TOK_01")
    elapsed = time.monotonic() - started
    _usage_error(result, "host does not answer")
    assert elapsed < 30  # the SDK alone would retry for 300 s
    assert report is None


def test_bad_credentials_are_a_usage_error(pytester, emulator, tenant, monkeypatch):
    emu = emulator(tenant("tokens"))
    monkeypatch.setenv("DATABRICKS_TOKEN", "wrong-token")
    result, report = run(pytester, "--databricks-host", emu.workspace_url("ws1"), "-k", "TOK_01")
    text = _usage_error(result, "credentials rejected")
    assert "wrong-token" not in text and report is None


@pytest.mark.parametrize("args, fragment", [
    (["--dbsec-demo", "--databricks-profile", "x"], "cannot be combined"),
    (["--dbsec-replay", "s.json", "--dbsec-demo"], "cannot be combined"),
    (["--dbsec-demo", "--dbsec-max-workers", "0"], "--dbsec-max-workers"),
    (["--dbsec-replay", "missing.json"], "missing.json"),
    (["--dbsec-demo", "--dbsec-baseline", "nope.yaml"], "nope.yaml"),
    (["--dbsec-replay", "s.json", "--dbsec-warehouse-id", "wh1"], "--dbsec-warehouse-id reads a live"),
])
def test_bad_flags_are_usage_errors(pytester, args, fragment):
    result, report = run(pytester, *args)
    _usage_error(result, fragment)
    assert report is None


def test_bad_snapshot_names_file_and_key(pytester):
    (pytester.path / "s.json").write_text(json.dumps({"format": "pytest-dbsec/snapshot", "version": 1,
                                                      "workspaces": [{"kind": "workspace"}]}))
    result, report = run(pytester, "--dbsec-replay", "s.json")
    _usage_error(result, "s.json", "workspaces[0].name")


def test_no_dbsec_option_means_the_plugin_stays_out_of_the_way(pytester):
    pytester.makepyfile("def test_plain(): assert True")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "reports").exists()


# -- users' own controls ------------------------------------------------------------------------

CUSTOM = '''
import pytest

@pytest.mark.dbsec(id="ORG-01", title="Alice has no token", severity="low", scope="workspace",
                   sections=["tokens"], refs={"seeds": ["org policy"]}, rationale="r", remediation="ask alice")
def test_ORG_01_alice_has_no_token(workspace, findings):
    for t in workspace.data("tokens")["token_infos"]:
        if t["created_by_username"].startswith("alice"):
            findings.fail(resource_type="token", resource_id=t["token_id"], seen="alice token", expected="none")
'''


def test_users_custom_controls_run_beside_the_builtin_ones(pytester, emulator, tenant, profile):
    emu = emulator(tenant("tokens"))
    pytester.makepyfile(test_org=CUSTOM)
    result, report = run(pytester, "--databricks-profile", profile(emu, "ws1"), "-k", "test_TOK_01 or ORG")
    got = outcomes(report)
    assert got["ORG-01"] == "failed" and got["TOK-01"] == "passed"
    assert [f["resource_id"] for f in result_of(report, "ORG-01", "emu")["findings"]] == ["tok-alice-1"]


@pytest.mark.parametrize("marker, fragment", [
    ('id="ORG-01", title="t", severity="urgent", scope="workspace", sections=["tokens"], refs={"seeds": []}, '
     'rationale="r", remediation="x"', "severity 'urgent'"),
    ('id="ORG-01", title="t", severity="low", scope="workspace", sections=["nope"], refs={"seeds": []}, '
     'rationale="r", remediation="x"', "unknown data section"),
    ('id="ORG-02", title="t", severity="low", scope="workspace", sections=["tokens"], refs={"seeds": []}, '
     'rationale="r", remediation="x"', "must be named test_org_02"),
])
def test_bad_control_metadata_is_a_collection_error(pytester, marker, fragment):
    pytester.makepyfile(test_org=f"import pytest\n@pytest.mark.dbsec({marker})\n"
                                 f"def test_ORG_01_x(workspace, findings):\n    pass\n")
    result = pytester.runpytest("--dbsec-demo", "-p", "no:cacheprovider", "test_org.py", "--collect-only")
    assert result.ret == 2  # collection error
    result.stdout.fnmatch_lines([f"*{fragment}*"])


def test_a_control_reading_an_undeclared_section_is_an_error(pytester, emulator, tenant, profile):
    emu = emulator(tenant("tokens"))
    pytester.makepyfile(test_org=CUSTOM.replace('workspace.data("tokens")', 'workspace.data("compute")'))
    result, report = run(pytester, "--databricks-profile", profile(emu, "ws1"), "test_org.py", "-k", "ORG")
    r = result_of(report, "ORG-01", "emu")
    assert r["outcome"] == "error" and "does not declare" in r["reason"]


def test_conf_key_missing_on_this_workspace_is_a_skip_with_reason(pytester, emulator, tenant, profile):
    t = tenant("tokens")
    t["account"]["workspaces"][0]["conf_unsupported"] = ["maxTokenLifetimeDays"]
    emu = emulator(t)
    result, report = run(pytester, "--databricks-profile", profile(emu, "ws1"))
    got = outcomes(report)
    assert got["TOK-03"] == "skipped" and got["TOK-04"] == "skipped" and got["TOK-01"] == "passed"
    assert "does not exist on this workspace" in result_of(report, "TOK-03", "emu")["reason"]
    assert report["complete"] is True  # a key that does not exist is a fact, not missing data


ACCOUNT_CONTROL = '''
import pytest

@pytest.mark.dbsec(id="ORG-10", title="Few workspaces", severity="info", scope="account",
                   sections=["account_workspaces"], refs={"seeds": ["org"]}, rationale="r", remediation="x")
def test_ORG_10_few_workspaces(account, findings):
    for ws in account.data("account_workspaces")["workspaces"]:
        if not ws["permission_assignments"]:
            findings.fail(resource_type="workspace", resource_id=ws["workspace_id"], seen="no one", expected="someone")
'''


def test_account_scoped_controls_use_the_account_profile(pytester, emulator, tenant, profile, monkeypatch):
    emu = emulator(tenant("tokens"))
    name = profile(emu, "ws1")
    cfg = Path(__import__("os").environ["DATABRICKS_CONFIG_FILE"])
    with cfg.open("a") as f:
        f.write(f"[acct]\nhost = {emu.account_url}\naccount_id = {emu.account_id}\n"
                f"token = {emu.token_for('dbsec-auditor')}\n")
    pytester.makepyfile(test_acct=ACCOUNT_CONTROL)
    result, report = run(pytester, "--databricks-profile", name, "--databricks-account-profile", "acct",
                         "test_acct.py", "-k", "ORG")
    assert outcomes(report)["ORG-10"] == "passed"
    assert result_of(report, "ORG-10", "account")["target"] == "account"
    assert any(r.target == "account" and r.path.endswith("/permissionassignments") for r in emu.requests)
    # without account credentials the account control cannot read its data: ERROR, not pass
    result, report = run(pytester, "--databricks-profile", name, "test_acct.py", "-k", "ORG")
    r = result_of(report, "ORG-10", "account")
    assert r["outcome"] == "error" and "--databricks-account-profile" in r["reason"]


def test_a_stopped_run_still_writes_reports_marked_incomplete(pytester):
    result, report = run(pytester, "--dbsec-demo", "-x", "-k", "TOK")
    assert result.ret == 1
    assert report is not None and report["complete"] is False
    assert len(report["results"]) < 8


def test_snapshot_records_collection_metadata(pytester, emulator, tenant, profile):
    emu = emulator(tenant("tokens"))
    run(pytester, "--databricks-profile", profile(emu, "ws1"), "--dbsec-snapshot-out", "s.json.gz")
    from pytest_dbsec.inventory import Inventory

    snap = Inventory.load(pytester.path / "s.json.gz").to_json()
    ws = snap["workspaces"][0]
    assert ws["name"] == "emu" and ws["id"] == emu.workspaces[0]["id"]
    assert ws["host"] == emu.workspace_url("ws1")  # resolved by the SDK from the profile, recorded all the same
    assert snap["meta"]["sdk_version"] and snap["meta"]["tool_version"] and snap["meta"]["started"]
    assert snap["meta"]["targets"]["emu"] == {"kind": "workspace", "profile": "emu", "auth": "pat",
                                              "host": emu.workspace_url("ws1")}
    assert snap["meta"]["calls"] == sum(len(s["calls"]) for s in ws["sections"].values()) > 0
    assert snap["meta"]["complete"] is True and snap["meta"]["errors"] == []


USER_TEST = '''
from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config

def test_my_code_against_the_emulator(databricks_emulator):
    emu = databricks_emulator()
    w = WorkspaceClient(config=Config(host=emu.workspace_url("prod"),
                                      token=emu.token_for("dbsec-auditor", "prod"), auth_type="pat"))
    assert any(t.expiry_time == -1 for t in w.token_management.list())
'''


def test_users_can_test_their_code_with_the_databricks_emulator_fixture(pytester):
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_collect_only_lists_every_catalog_control(pytester):
    """Every control of shared/controls.md (INC belongs to the access-graph work) is collected."""
    import re

    catalog = Path(__file__).resolve().parents[2] / "shared" / "controls.md"
    if not catalog.exists():
        pytest.skip(f"the control catalog is not beside this checkout ({catalog})")
    ids = set(re.findall(r"^\| ([A-Z]{2,4}-\d{2}) \|", catalog.read_text(), re.M))
    ids = {i for i in ids if not i.startswith("INC-")}
    result = pytester.runpytest("--dbsec-demo", "--collect-only", "-q", "-p", "no:cacheprovider")
    collected = {m.replace("_", "-") for m in re.findall(r"::test_([A-Z]{2,4}_\d{2})_", result.stdout.str())}
    assert len(ids) == 74 and ids <= collected, sorted(ids - collected)


def test_no_secret_planted_in_the_demo_reaches_any_output(pytester):
    """The demo tenant hides fake credentials in notebooks, cluster env, job parameters and bearer
    tokens. A full run with a snapshot must not carry any of them anywhere."""
    import gzip
    import re

    from pytest_dbsec.emulator import DEMO_TENANT

    text = DEMO_TENANT.read_text()
    planted = set(re.findall(r"AKIA[A-Z0-9]{16}|dapi[0-9a-f]{32}|wJalr[A-Za-z0-9/+]{30,}", text))
    planted |= set(re.findall(r"password=([^;&\"' ]+)", text))
    planted |= set(re.findall(r'aws_secret_access_key="([^"]+)"', text))
    assert len(planted) >= 10  # the detector below is only as good as this list
    result = pytester.runpytest("--dbsec-demo", "-p", "no:cacheprovider", "--dbsec-report-dir", "out",
                                "--dbsec-snapshot-out", "out/snap.json.gz")
    outputs = {p.name: p.read_bytes() for p in (pytester.path / "out").iterdir()}
    outputs["snap.json.gz"] = gzip.decompress(outputs["snap.json.gz"])
    outputs["stdout"] = result.stdout.str().encode()
    outputs["stderr"] = result.stderr.str().encode()
    leaks = {(secret, name) for secret in planted for name, data in outputs.items() if secret.encode() in data}
    assert not leaks
