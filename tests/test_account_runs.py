"""Account-wide runs: ``pytest --databricks-account-profile X`` alone audits every workspace of the account.

The emulator serves pytest_dbsec/emulator/tenants/account.yaml (prod, dev, research where the auditor is
not assigned, legacy which is FAILED) on one port per workspace; the run reaches them with the account
profile's credential through --dbsec-workspace-urls, as it would reach private-link hosts in the cloud.
Real SDK over real HTTP; the emulator's request log is the evidence of what was called.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml
from dbsec_helpers import outcome_of

from pytest_dbsec.cli import main
from pytest_dbsec.connect import Target
from pytest_dbsec.emulator import ACCOUNT_TENANT
from pytest_dbsec.inventory import ACCOUNT
from pytest_dbsec.targets import TargetError, parse_urls, plan

WORKSPACES = ["prod", "dev", "research", "legacy"]
TOK_AND_IAM_09 = ("-k", "TOK_01 or IAM_09")


@pytest.fixture
def account_emu(databricks_emulator):
    return databricks_emulator(yaml.safe_load(ACCOUNT_TENANT.read_text()))


@pytest.fixture
def account_profile(monkeypatch, tmp_path):
    """Write a ~/.databrickscfg with the account profile `acct` for an emulator; return its name."""

    def make(emu, principal: str = "dbsec-auditor") -> str:
        cfg = tmp_path / "account.databrickscfg"
        cfg.write_text(f"[acct]\nhost = {emu.account_url}\naccount_id = {emu.account_id}\n"
                       f"token = {emu.token_for(principal)}\n")
        monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(cfg))
        return "acct"

    return make


@pytest.fixture
def account_run(pytester, account_profile):
    """account_run(emu, *args, urls=...) -> (result, findings.json or None): an account-wide run."""

    def run(emu, *args, urls=None):
        urls = ",".join(w["url"] for w in emu.workspaces) if urls is None else urls
        opts = ["-p", "no:cacheprovider", "--dbsec-report-dir", "out", "--databricks-account-profile",
                account_profile(emu)] + (["--dbsec-workspace-urls", urls] if urls else [])
        result = pytester.runpytest(*opts, *(args or TOK_AND_IAM_09))
        path = pytester.path / "out" / "findings.json"
        return result, (json.loads(path.read_text()) if path.exists() else None)

    return run


def by_target(report, control):
    return {r["target"]: r for r in report["results"] if r["control_id"] == control}


def api_calls(emu, target=None):
    return Counter((r.target, r.method, r.path) for r in emu.requests
                   if r.path.startswith("/api/") and target in (None, r.target))


# -- every workspace, the account once ----------------------------------------------------------


def test_an_account_run_judges_every_workspace_and_the_account_once(account_run, account_emu, pytester):
    result, report = account_run(account_emu, *TOK_AND_IAM_09, "--dbsec-snapshot-out", "out/snap.json")
    assert result.ret == 1, result.stdout.str()
    tok = by_target(report, "TOK-01")
    assert sorted(tok) == sorted(WORKSPACES)
    assert tok["prod"]["outcome"] == "failed"
    assert [f["resource_id"] for f in tok["prod"]["findings"]] == ["prod-etl-forever"]
    assert tok["dev"]["outcome"] == "passed"
    # the account-scoped control runs once, against the account
    assert list(by_target(report, "IAM-09")) == [ACCOUNT]
    # test ids carry the workspace name
    for ws in WORKSPACES:
        assert tok[ws]["nodeid"].endswith(f"::test_TOK_01_no_token_without_expiry[{ws}]")
    assert "ERROR tokens.py::test_TOK_01_no_token_without_expiry[research]" in result.stdout.str()
    assert report["complete"] is False  # two workspaces could not be read
    # the snapshot (and so a replay) holds every workspace, with the account's ids
    snap = json.loads((pytester.path / "out" / "snap.json").read_text())
    assert {w["name"]: w["id"] for w in snap["workspaces"]} == {w["name"]: w["id"] for w in account_emu.workspaces}
    assert snap["meta"]["targets"]["prod"]["via"] == "account"
    # the HTML report (written by the same run) shows every workspace too
    html = (pytester.path / "out" / "compliance.html").read_text()
    for ws in WORKSPACES:
        assert f"[{ws}]" in html or f">{ws}<" in html, ws
    # one credential: every workspace call was made with the account's token, and only read
    assert {r.principal for r in account_emu.requests if r.path.startswith("/api/")} == \
        {"7f1c2b9e-0000-4000-8000-00000000a001"}
    assert {r.method for r in account_emu.requests} == {"GET"}


def test_a_workspace_the_auditor_is_not_assigned_to_errors_with_the_reason(account_run, account_emu):
    result, report = account_run(account_emu)
    r = by_target(report, "TOK-01")["research"]
    assert r["outcome"] == "error"
    assert "not a member" in r["reason"] and "must be assigned to the workspace" in r["reason"], r["reason"]
    assert "emu-account-auditor" not in result.stdout.str() + result.stderr.str()
    # one refused preflight, then nothing more is tried there
    assert api_calls(account_emu, "research") == Counter({("research", "GET", "/api/2.0/preview/scim/v2/Me"): 1})


def test_a_workspace_that_is_not_running_errors_without_a_request(account_run, account_emu):
    result, report = account_run(account_emu)
    r = by_target(report, "TOK-01")["legacy"]
    assert r["outcome"] == "error"
    assert "not running (status FAILED: Workspace failed to start" in r["reason"]
    assert api_calls(account_emu, "legacy") == Counter()


def test_a_workspace_that_fails_errors_and_the_others_still_run(account_run, account_emu):
    account_emu.add_fault("* /api/*", status=500, message="backend exploded", target="dev")
    result, report = account_run(account_emu)
    tok = by_target(report, "TOK-01")
    assert tok["dev"]["outcome"] == "error" and "backend exploded" in tok["dev"]["reason"]
    assert tok["prod"]["outcome"] == "failed" and tok["prod"]["findings"]
    assert outcome_of(report, "IAM-09", ACCOUNT)["outcome"] == "passed"
    assert result.ret == 1  # not a usage error: the run went on


def test_the_account_profile_with_a_workspace_profile_still_audits_that_one_workspace(
        pytester, account_emu, account_profile):
    # --databricks-profile names the workspace to audit: no enumeration, the account is the account
    cfg = account_profile(account_emu)
    path = Path(os.environ["DATABRICKS_CONFIG_FILE"])
    path.write_text(path.read_text() + f"\n[prodws]\nhost = {account_emu.workspace_url('prod')}\n"
                                       f"token = {account_emu.token_for('dbsec-auditor')}\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--dbsec-report-dir", "out", "--databricks-profile",
                                "prodws", "--databricks-account-profile", cfg, *TOK_AND_IAM_09)
    report = json.loads((pytester.path / "out" / "findings.json").read_text())
    assert result.ret == 1  # prod's never-expiring token
    assert sorted(by_target(report, "TOK-01")) == ["prodws"]
    assert list(by_target(report, "IAM-09")) == [ACCOUNT]
    assert not api_calls(account_emu, "dev")


# -- choosing workspaces ----------------------------------------------------------------------


@pytest.mark.parametrize("pattern, expected", [
    ("prod", ["prod"]),
    ("1000000000000002", ["dev"]),  # by id
    ("*e*", ["dev", "research", "legacy"]),  # a glob on names
    ("p*,dev", ["prod", "dev"]),
])
def test_dbsec_workspaces_filters_by_name_id_or_glob(account_run, account_emu, pattern, expected):
    _, report = account_run(account_emu, *TOK_AND_IAM_09, "--dbsec-workspaces", pattern)
    assert sorted(by_target(report, "TOK-01")) == sorted(expected)
    assert list(by_target(report, "IAM-09")) == [ACCOUNT]
    for ws in set(WORKSPACES) - set(expected):
        assert not api_calls(account_emu, ws), f"{ws} was filtered out but called"


def test_a_filter_matching_nothing_is_a_usage_error(account_run, account_emu):
    result, report = account_run(account_emu, "--dbsec-workspaces", "prd", "-k", "TOK_01")
    assert result.ret == 4 and report is None
    err = result.stderr.str()
    assert "--dbsec-workspaces: 'prd' matches no workspace of the account" in err
    assert "dev, legacy, prod, research" in err


def test_urls_are_matched_to_workspaces_by_id_whatever_their_order(account_run, account_emu):
    urls = ",".join(w["url"] for w in reversed(account_emu.workspaces))
    result, report = account_run(account_emu, urls=urls)
    tok = by_target(report, "TOK-01")
    assert tok["prod"]["outcome"] == "failed" and tok["dev"]["outcome"] == "passed"
    # each workspace's data came from its own listener
    assert api_calls(account_emu, "prod")[("prod", "GET", "/api/2.0/token-management/tokens")] == 1
    assert api_calls(account_emu, "dev")[("dev", "GET", "/api/2.0/token-management/tokens")] == 1


def test_a_workspace_without_a_url_in_the_list_errors_and_says_so(account_run, account_emu):
    # legacy is named by its deployment in the host: matched without a call (it is down anyway)
    urls = f"{account_emu.workspace_url('prod')},https://multi-legacy.privatelink.example.com"
    result, report = account_run(account_emu, urls=urls)
    tok = by_target(report, "TOK-01")
    assert tok["prod"]["outcome"] == "failed"
    assert tok["dev"]["outcome"] == "error" and "has no URL in --dbsec-workspace-urls" in tok["dev"]["reason"]
    assert tok["legacy"]["outcome"] == "error" and "not running" in tok["legacy"]["reason"]
    assert "--dbsec-workspace-urls" not in tok["legacy"]["reason"]


@pytest.mark.parametrize("urls, fragment", [
    ("ftp://host", "is not a workspace URL"),
    ("https://host/some/path", "is not a workspace URL"),
    ("http://host:port", "is not a URL"),
    ("https://a.example.com,https://a.example.com/", "is given twice"),
    (",", "no URL given"),
])
def test_malformed_urls_are_usage_errors(account_run, account_emu, urls, fragment):
    result, report = account_run(account_emu, "-k", "TOK_01", urls=urls)
    assert result.ret == 4 and report is None
    assert fragment in result.stderr.str()
    assert not api_calls(account_emu), "bad input is refused before any call"


def test_a_url_of_another_account_is_a_usage_error(account_run, account_emu, databricks_emulator):
    from pytest_dbsec.emulator import MINIMAL_TENANT

    other = databricks_emulator(MINIMAL_TENANT)
    result, report = account_run(account_emu, "-k", "TOK_01", urls=other.workspace_url("main"))
    assert result.ret == 4 and report is None
    assert "which the account does not list" in result.stderr.str()


@pytest.mark.parametrize("args", [
    ["--dbsec-demo", "--dbsec-workspaces", "prod"],
    ["--dbsec-demo", "--dbsec-workspace-urls", "https://a.example.com"],
])
def test_workspace_flags_without_an_account_wide_run_are_usage_errors(pytester, args):
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    assert result.ret == 4
    assert "use it with --databricks-account-profile alone" in result.stderr.str()


def test_unreachable_account_is_a_usage_error(pytester, monkeypatch, tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cfg = tmp_path / "cfg"
    cfg.write_text(f"[acct]\nhost = http://127.0.0.1:{port}\naccount_id = a-1\ntoken = x\n")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(cfg))
    result = pytester.runpytest("-p", "no:cacheprovider", "--databricks-account-profile", "acct", "-k", "TOK_01")
    assert result.ret == 4 and "cannot connect" in result.stderr.str()


def test_plan_keeps_workspace_names_unique():
    listed = [{"workspace_id": 1, "workspace_name": "a", "workspace_status": "RUNNING"},
              {"workspace_id": 2, "workspace_name": "a", "workspace_status": "RUNNING"},
              {"workspace_id": 3, "workspace_name": "b", "workspace_status": "PROVISIONING"},
              {"workspace_id": 4, "workspace_name": "account", "workspace_status": "RUNNING"}]
    got = plan(listed, None, [], Target(ACCOUNT, kind="account"), "--f", "--u")
    assert [(w.name, w.id, w.unavailable is None) for w in got] == [
        ("a (1)", 1, True), ("a (2)", 2, True), ("b", 3, False), ("account (4)", 4, True)]
    assert "not running (status PROVISIONING)" in got[2].unavailable
    assert [w.name for w in plan(listed, "a (2)", [], Target(ACCOUNT, kind="account"), "--f", "--u")] == ["a (2)"]


def test_parse_urls_normalises():
    assert parse_urls("adb-1.azuredatabricks.net, http://127.0.0.1:8080/", "--u") == \
        ["https://adb-1.azuredatabricks.net", "http://127.0.0.1:8080"]
    with pytest.raises(TargetError, match="--u: 'ftp://h' is not a workspace URL"):
        parse_urls("ftp://h", "--u")


# -- pytest-xdist -----------------------------------------------------------------------------


def test_under_xdist_each_workspace_is_collected_once_by_one_worker(account_run, account_emu):
    pytest.importorskip("xdist")
    args = ("-k", "TOK or IAM_09")
    _, single = account_run(account_emu, *args)
    single_calls = api_calls(account_emu)
    account_emu.clear_requests()
    result, spread = account_run(account_emu, *args, "-n", "2", "-v")
    # the same verdicts, reported once by the controller with every workspace
    pick = lambda rep: sorted((r["control_id"], r["target"], r["outcome"], len(r["findings"])) for r in rep["results"])
    assert pick(spread) == pick(single)
    assert {r["target"] for r in spread["results"]} == set(WORKSPACES) | {ACCOUNT}
    # exactly the calls of a single-process run: the account listed once, each workspace read once
    assert api_calls(account_emu) == single_calls
    assert sum(n for (t, _, p), n in single_calls.items() if p.endswith("/workspaces")) == 1
    # each workspace's controls ran on one worker
    workers: dict[str, set[str]] = {}
    for gw, ws in re.findall(r"\[(gw\d)\].*?test_TOK_\d\d_\w+\[(\w+)\]", result.stdout.str()):
        workers.setdefault(ws, set()).add(gw)
    assert set(workers) == set(WORKSPACES) and all(len(g) == 1 for g in workers.values()), workers
    assert len(set().union(*workers.values())) == 2, "the workspaces are spread over both workers"


def test_under_xdist_a_bad_profile_is_still_a_usage_error(pytester):
    pytest.importorskip("xdist")
    result = pytester.runpytest("-p", "no:cacheprovider", "--dbsec-report-dir", "out", "--databricks-profile",
                                "nope", "-k", "TOK_01", "-n", "2")
    assert result.ret == 4 and "nope" in result.stderr.str()
    assert not (pytester.path / "out").exists()


# -- incident verification over every workspace ---------------------------------------------


@pytest.fixture
def inc_tenant(tenant):
    """inc_base with a second workspace where the compromised SP also holds a token."""
    t = tenant("inc_base")
    t["account"]["workspaces"].append({
        "name": "ws2", "id": 3333333332, "metastore": "inc-ms",
        "assignments": [{"principal": "dbsec-auditor", "permissions": ["ADMIN"]},
                        {"principal": "ci-deployer", "permissions": ["USER"]}],
        "tokens": [{"token_id": "ws2-deploy", "owner": "ci-deployer", "comment": "deploy too",
                    "creation_time": "-2d", "expiry_time": "+30d"}]})
    return t


def test_inc_over_an_account_run_audits_every_workspace(account_run, databricks_emulator, inc_tenant):
    emu = databricks_emulator(inc_tenant)
    result, report = account_run(emu, "--dbsec-principal", "ci-deployer")
    inc = [r for r in report["results"] if r["control_id"].startswith("INC-")]
    assert len(inc) == 7 and all(r["target"] == ACCOUNT for r in inc)
    assert not [r for r in inc if r["outcome"] == "error"], [r["reason"] for r in inc]
    tokens = {f["resource_id"] for f in outcome_of(report, "INC-04")["findings"]}
    assert {"ws2/ws2-deploy"} <= tokens and any(t.startswith("ws1/") for t in tokens)
    access = {f["resource_id"] for f in outcome_of(report, "INC-01")["findings"]}
    assert any(a.startswith("ws2:") for a in access) and any(a.startswith("ws1:") for a in access)


def test_inc_errors_when_a_workspace_of_the_account_cannot_be_read(account_run, databricks_emulator, inc_tenant):
    inc_tenant["account"]["workspaces"][1]["assignments"] = [{"principal": "ci-deployer", "permissions": ["USER"]}]
    emu = databricks_emulator(inc_tenant)
    result, report = account_run(emu, "--dbsec-principal", "ci-deployer", "-k", "INC_04")
    r = outcome_of(report, "INC-04")
    assert r["outcome"] == "error" and "ws2" in r["reason"] and "not a member" in r["reason"], r["reason"]


# -- dbsec access ---------------------------------------------------------------------------


def test_dbsec_access_with_only_an_account_profile_enumerates_the_workspaces(account_emu, account_profile, capsys):
    profile = account_profile(account_emu)
    urls = ",".join(w["url"] for w in account_emu.workspaces)
    rc = main(["access", "--principal", "alice@corp.example.com", "--databricks-account-profile", profile,
               "--workspace-urls", urls, "--output", "json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["workspaces"] == sorted(WORKSPACES)
    assert doc["complete"] is False
    assert {e["scope"] for e in doc["errors"]} == {"research", "legacy"}
    assert "INCOMPLETE ANSWER" in err and "emu-account-auditor" not in out + err
    # alice's ADMIN on research comes from the account's assignments even though research is unreadable
    assert "research" in out
    rc = main(["access", "--principal", "alice@corp.example.com", "--databricks-account-profile", profile,
               "--workspace-urls", urls, "--workspaces", "prod,dev", "--output", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["workspaces"] == ["dev", "prod"] and doc["complete"] is True
    assert main(["access", "--principal", "alice@corp.example.com", "--databricks-account-profile", profile,
                 "--workspace-urls", urls, "--workspaces", "nope"]) == 4
    assert "'nope' matches no workspace" in capsys.readouterr().err


# -- the emulator: an account credential on workspaces ----------------------------------------


def test_the_account_credential_works_on_assigned_workspaces_only(account_emu):
    from databricks.sdk import AccountClient, WorkspaceClient
    from databricks.sdk.config import Config
    from databricks.sdk.errors import Unauthenticated

    a = AccountClient(config=Config(host=account_emu.account_url, account_id=account_emu.account_id,
                                    token=account_emu.token_for("dbsec-auditor"), auth_type="pat"))
    for ws in a.workspaces.list():
        cfg = a.config.deep_copy()  # what AccountClient.get_workspace_client does, with the emulator's host
        cfg.host, cfg.account_id, cfg.workspace_id = account_emu.workspace_url(ws.workspace_name), None, \
            str(ws.workspace_id)
        cfg.init_auth()
        w = WorkspaceClient(config=cfg)
        if ws.workspace_name in ("prod", "dev", "legacy"):
            assert w.current_user.me().user_name == "7f1c2b9e-0000-4000-8000-00000000a001"
        else:
            with pytest.raises(Unauthenticated, match="not a member"):
                w.current_user.me()
    # a workspace token stays valid on its own workspace only
    alice = account_emu.token_for("alice@corp.example.com", "research")
    w = WorkspaceClient(config=Config(host=account_emu.workspace_url("prod"), token=alice, auth_type="pat"))
    with pytest.raises(Unauthenticated):
        w.current_user.me()


def test_without_a_url_list_a_workspace_is_reached_the_way_the_sdk_does(account_emu):
    """No URL given: the SDK's AccountClient.get_workspace_client recipe -- the deployment's URL in the
    account's cloud, the account's credentials, no account id, the workspace id."""
    from pytest_dbsec.connect import _config

    account = Target(ACCOUNT, kind="account", host=account_emu.account_url, account_id=account_emu.account_id,
                     token=account_emu.token_for("dbsec-auditor"))
    listed = [{"workspace_id": 1000000000000001, "workspace_name": "prod", "deployment_name": "multi-prod",
               "workspace_status": "RUNNING"}]
    (ws,) = plan(listed, None, [], account, "--f", "--u")
    cfg = _config(ws.target(account), 5, 5)
    assert cfg.host == "https://multi-prod.cloud.databricks.com"
    assert cfg.account_id is None and cfg.workspace_id == "1000000000000001" and cfg.token == account.token
    assert not [r for r in account_emu.requests if r.target != "account"], "building a client sends nothing"


def test_an_azure_workspace_keeps_its_resource_id():
    listed = [{"workspace_id": 7, "workspace_name": "az", "deployment_name": "adb-7", "workspace_status": "RUNNING",
               "azure_workspace_info": {"subscription_id": "sub-1", "resource_group": "rg-1"}}]
    (ws,) = plan(listed, None, [], Target(ACCOUNT, kind="account"), "--f", "--u")
    assert ws.azure_resource_id == "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Databricks/workspaces/az"


def test_a_hostile_workspace_name_is_carried_as_data(account_run, databricks_emulator):
    t = yaml.safe_load(ACCOUNT_TENANT.read_text())
    hostile = 'dev "eu" <b>[1]'
    t["account"]["workspaces"][1]["name"] = hostile
    emu = databricks_emulator(t)
    result, report = account_run(emu, "--dbsec-workspaces", "dev*,prod")
    tok = by_target(report, "TOK-01")
    assert sorted(tok) == sorted([hostile, "prod"])
    assert tok[hostile]["outcome"] == "passed" and tok["prod"]["outcome"] == "failed"
    assert tok[hostile]["nodeid"].endswith(f"[{hostile}]")


# -- the account's workspaces are listed once ---------------------------------------------------


def _workspace_lists(emu) -> int:
    return sum(1 for r in emu.requests if r.target == ACCOUNT and r.path.endswith("/workspaces"))


@pytest.mark.parametrize("xdist", [False, True])
def test_an_account_run_lists_the_workspaces_once_and_the_section_records_that_call(
        account_run, account_emu, pytester, xdist):
    """The run lists the account's workspaces to plan its targets; the account_workspaces section
    starts from that list instead of asking again, and its call log holds the listing call."""
    if xdist:
        pytest.importorskip("xdist")
    args = ("-k", "NET_05 or TOK_01", "--dbsec-snapshot-out", "out/snap.json") + (("-n", "2") if xdist else ())
    result, report = account_run(account_emu, *args)
    assert by_target(report, "NET-05")[ACCOUNT]["outcome"] in ("passed", "failed"), result.stdout.str()
    assert _workspace_lists(account_emu) == 1
    snap = json.loads((pytester.path / "out" / "snap.json").read_text())
    section = snap["account"]["sections"]["account_workspaces"]
    assert section["status"] == "ok"
    assert sorted(w["workspace_name"] for w in section["data"]["workspaces"]) == sorted(WORKSPACES)
    assert all("permission_assignments" in w for w in section["data"]["workspaces"])
    listed = [c for c in section["calls"] if c["path"].endswith("/workspaces")]
    assert [(c["method"], c["status"]) for c in listed] == [("GET", 200)]
    # every request the run made to the account is in some section's call log, the listing included
    recorded = Counter(c["path"] for s in snap["account"]["sections"].values() for c in s["calls"])
    served = Counter(r.path for r in account_emu.requests if r.target == ACCOUNT and r.path.startswith("/api/"))
    assert recorded == served


def test_without_an_account_wide_run_the_section_lists_the_workspaces_itself(pytester, account_emu, monkeypatch,
                                                                             tmp_path):
    """A workspace profile plus the account profile: no enumeration to start from, so the section lists
    the workspaces itself (the preflight's listing only proves the credentials)."""
    prod = next(w for w in account_emu.workspaces if w["name"] == "prod")
    cfg = tmp_path / "two.databrickscfg"
    cfg.write_text(f"[prod]\nhost = {prod['url']}\ntoken = {account_emu.token_for('dbsec-auditor')}\n\n"
                   f"[acct]\nhost = {account_emu.account_url}\naccount_id = {account_emu.account_id}\n"
                   f"token = {account_emu.token_for('dbsec-auditor')}\n")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(cfg))
    opts = ("-p", "no:cacheprovider", "--dbsec-report-dir", "out", "--databricks-profile", "prod",
            "--databricks-account-profile", "acct", "-k", "NET_05")
    pytester.runpytest(*opts)
    report = json.loads((pytester.path / "out" / "findings.json").read_text())
    r = by_target(report, "NET-05")[ACCOUNT]
    assert r["outcome"] in ("passed", "failed"), r["reason"]
    lists = _workspace_lists(account_emu)
    assert lists == 2  # the preflight's check of the account credentials, then the section's read



def test_a_section_starting_from_the_run_s_listing_still_errors_with_the_reason(account_run, account_emu):
    account_emu.add_fault("GET /api/2.0/accounts/*/workspaces/*/permissionassignments", status=403)
    _, report = account_run(account_emu, "-k", "NET_05")
    r = by_target(report, "NET-05")[ACCOUNT]
    assert r["outcome"] == "error", r
    assert "permissionassignments -> 403" in r["reason"] and "account admin" in r["reason"], r["reason"]
    assert _workspace_lists(account_emu) == 1


def test_dbsec_access_account_wide_lists_the_workspaces_once(account_emu, account_profile, capsys):
    profile = account_profile(account_emu)
    urls = ",".join(w["url"] for w in account_emu.workspaces)
    rc = main(["access", "--principal", "alice@corp.example.com", "--databricks-account-profile", profile,
               "--workspace-urls", urls, "--workspaces", "prod,dev", "--output", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["complete"] is True
    assert _workspace_lists(account_emu) == 1


# -- INC with a workspace that cannot be read: fail closed, or a waiver accepts exactly that gap --------

ETL_SP = "etl-sp"  # in prod: a USER assignment, a token that never expires, an active OAuth secret


@pytest.fixture
def gap_emu(databricks_emulator):
    """The account tenant with the auditor assigned to research too: legacy (FAILED) is the only
    workspace that cannot be read."""
    t = yaml.safe_load(ACCOUNT_TENANT.read_text())
    research = next(w for w in t["account"]["workspaces"] if w["name"] == "research")
    research["assignments"].append({"principal": "dbsec-auditor", "permissions": ["ADMIN"]})
    return databricks_emulator(t)


def gap_waivers(pytester, *waivers) -> str:
    """A baseline extending default with these waivers; its path."""
    path = pytester.path / "incident-baseline.yaml"
    path.write_text(yaml.safe_dump({"extends": "default", "waivers": list(waivers)}, sort_keys=False))
    return str(path)


def gap_waiver(control: str, workspace: str = "legacy", days: int = 30, **extra) -> dict:
    import datetime as dt

    return {"control": control, "resource": f"workspace/{workspace}",
            "justification": f"{workspace} never came up; its cloud account is frozen (IR-2026-17)",
            "approver": "ciso@corp.example.com",
            "expires": (dt.date.today() + dt.timedelta(days=days)).isoformat(), **extra}


INC_IDS = [f"INC-0{i}" for i in range(1, 8)]


def inc_results(report) -> dict:
    return {r["control_id"]: r for r in report["results"] if r["control_id"].startswith("INC-")}


def test_inc_errors_naming_a_failed_workspace_and_how_to_accept_it(account_run, gap_emu):
    result, report = account_run(gap_emu, "--dbsec-principal", ETL_SP)
    inc = inc_results(report)
    assert sorted(inc) == INC_IDS, result.stdout.str()
    for cid, r in inc.items():
        assert r["outcome"] == "error", (cid, r["reason"])
        assert "workspace legacy (status FAILED) could not be read: workspace 'legacy' is not running" \
            in r["reason"], r["reason"]
        assert f"{{control: {cid}, resource: 'workspace/legacy', justification: ..., approver: ..., " \
               "expires: YYYY-MM-DD}" in r["reason"], r["reason"]
        assert "research" not in r["reason"] and "prod" not in r["reason"]
        assert "(a workspace that is not RUNNING can come back with its tokens and ACLs)" in r["reason"]
    assert result.ret == 1
    assert {r.method for r in gap_emu.requests} == {"GET"}
    assert api_calls(gap_emu, "legacy") == Counter()  # a workspace that is not running is not called


def test_a_valid_waiver_for_the_unread_workspace_lets_inc_judge_the_others_and_shows_the_gap(
        account_run, gap_emu, pytester):
    baseline = gap_waivers(pytester, *(gap_waiver(c) for c in INC_IDS))
    result, report = account_run(gap_emu, "--dbsec-principal", ETL_SP, "--dbsec-baseline", baseline, "-rA")
    inc = inc_results(report)
    out = result.stdout.str()
    # judged on prod, dev and research: what is left fails with its findings ...
    assert inc["INC-04"]["outcome"] == "failed", inc["INC-04"]["reason"]
    open_ids = {f["resource_id"] for f in inc["INC-04"]["findings"] if f["disposition"] is None}
    assert "prod/prod-etl-forever" in open_ids and any(f["resource_type"] == "oauth_secret"
                                                       for f in inc["INC-04"]["findings"])
    assert inc["INC-01"]["outcome"] == "failed"
    assert any(f["resource_id"].startswith("prod:USER:") for f in inc["INC-01"]["findings"])
    # ... and where it is contained, the only thing left is the accepted gap: waived, not passed
    for cid in ("INC-03", "INC-05", "INC-07"):
        assert inc[cid]["outcome"] == "waived", (cid, inc[cid]["reason"])
    # every INC result carries the gap as a waived finding, with its justification and expiry
    for cid, r in inc.items():
        [gap] = [f for f in r["findings"] if f["resource_id"] == "workspace/legacy"]
        assert gap["resource_type"] == "workspace" and gap["details"]["workspace_status"] == "FAILED"
        assert "not running (status FAILED" in gap["seen"]
        d = gap["disposition"]
        assert d["kind"] == "waived" and d["active"] and "IR-2026-17" in d["justification"]
        assert d["expires"] == gap_waiver(cid)["expires"] and d["approver"] == "ciso@corp.example.com"
        assert d["source"].startswith(baseline + ":")
    assert {w["control"]: w["status"] for w in report["waivers"]} == {c: "active" for c in INC_IDS}
    # the other reports show it too: JUnit, HTML, terminal
    junit = (pytester.path / "out" / "junit.xml").read_text()
    assert "workspace workspace/legacy 'legacy'" in junit and "IR-2026-17" in junit
    assert "until " + gap_waiver("INC-04")["expires"] in junit
    html = (pytester.path / "out" / "compliance.html").read_text()
    assert "workspace/legacy" in html and "IR-2026-17" in html
    assert "XFAIL" in out and "workspace/legacy" in out and "IR-2026-17" in out
    # the gate: INC-04 and INC-01 still fail the run; the data stays incomplete, and says so
    assert result.ret == 1 and report["complete"] is False


def test_a_gap_waiver_gives_the_same_verdicts_from_a_snapshot_and_under_xdist(account_run, gap_emu, pytester):
    baseline = gap_waivers(pytester, *(gap_waiver(c) for c in INC_IDS))
    args = ("--dbsec-principal", ETL_SP, "--dbsec-baseline", baseline)
    _, live = account_run(gap_emu, *args, "--dbsec-snapshot-out", "snap.json")
    snap = json.loads((pytester.path / "snap.json").read_text())
    assert {w["name"]: w.get("unread", "")[:40] for w in snap["workspaces"]}["legacy"] == \
        "workspace 'legacy' is not running (statu"

    def pick(rep):
        return sorted((r["control_id"], r["outcome"], sorted((f["resource_id"], (f["disposition"] or {}).get("kind"))
                                                             for f in r["findings"])) for r in rep["results"])

    replay = pytester.runpytest("-p", "no:cacheprovider", "--dbsec-report-dir", "replayed", "--dbsec-replay",
                                "snap.json", *args)
    replayed = json.loads((pytester.path / "replayed" / "findings.json").read_text())
    assert pick(replayed) == pick(live), replay.stdout.str()
    pytest.importorskip("xdist")
    _, spread = account_run(gap_emu, *args, "-n", "2")
    assert pick(spread) == pick(live)
    assert {r["outcome"] for r in live["results"]} == {"failed", "waived"}


def test_an_expired_gap_waiver_protects_nothing(account_run, gap_emu, pytester):
    baseline = gap_waivers(pytester, gap_waiver("INC-04", days=-1))
    _, report = account_run(gap_emu, "--dbsec-principal", ETL_SP, "--dbsec-baseline", baseline, "-k", "INC_04")
    r = inc_results(report)["INC-04"]
    assert r["outcome"] == "error" and "workspace legacy (status FAILED)" in r["reason"], r["reason"]
    assert f"its waiver ({baseline}:" in r["reason"] and "expired on" in r["reason"], r["reason"]
    assert [w["status"] for w in report["waivers"]] == ["expired"]


@pytest.mark.parametrize("waiver", [
    gap_waiver("INC-04", workspace="research"),  # another workspace
    gap_waiver("INC-04", workspace="leg*"),  # a glob never accepts a gap: one workspace, named exactly
    gap_waiver("INC-05"),  # another control
    gap_waiver("INC-04", workspace_glob="prod"),  # applies to a workspace, not to the account's controls
], ids=["other-workspace", "glob", "other-control", "not-the-account"])
def test_a_waiver_that_does_not_name_this_gap_exactly_does_not_accept_it(account_run, gap_emu, pytester, waiver):
    if "workspace_glob" in waiver:
        waiver = {**{k: v for k, v in waiver.items() if k != "workspace_glob"}, "workspace": waiver["workspace_glob"]}
    baseline = gap_waivers(pytester, waiver)
    _, report = account_run(gap_emu, "--dbsec-principal", ETL_SP, "--dbsec-baseline", baseline, "-k", "INC_04")
    r = inc_results(report)["INC-04"]
    assert r["outcome"] == "error" and "workspace legacy (status FAILED) could not be read" in r["reason"]
    assert [w["status"] for w in report["waivers"]] == ["stale"]


def test_a_gap_waiver_does_not_cover_a_section_that_failed_in_a_workspace_that_was_read(
        account_run, gap_emu, pytester):
    gap_emu.add_fault("GET /api/2.0/token-management/tokens", status=403, target="prod")
    baseline = gap_waivers(pytester, gap_waiver("INC-04"), gap_waiver("INC-04", workspace="prod"))
    _, report = account_run(gap_emu, "--dbsec-principal", ETL_SP, "--dbsec-baseline", baseline, "-k", "INC_04")
    r = inc_results(report)["INC-04"]
    assert r["outcome"] == "error", r
    assert "'tokens' for prod" in r["reason"] and "403" in r["reason"], r["reason"]


def test_workspaces_left_out_of_the_run_are_gaps_the_same_waiver_accepts(account_run, gap_emu, pytester):
    args = ("--dbsec-principal", ETL_SP, "-k", "INC_04", "--dbsec-workspaces", "prod,legacy")
    _, report = account_run(gap_emu, *args)
    r = inc_results(report)["INC-04"]
    assert r["outcome"] == "error"
    for ws in ("dev", "research"):
        assert f"workspace {ws} (status RUNNING) is not part of this run" in r["reason"], r["reason"]
    assert "workspace legacy (status FAILED) could not be read" in r["reason"]
    # accepting two of the three is not enough
    baseline = gap_waivers(pytester, gap_waiver("INC-04"), gap_waiver("INC-04", workspace="dev"))
    _, report = account_run(gap_emu, *args, "--dbsec-baseline", baseline)
    r = inc_results(report)["INC-04"]
    assert r["outcome"] == "error" and "workspace research (status RUNNING) is not part of this run" in r["reason"]
    assert "workspace dev" not in r["reason"] and "workspace legacy" not in r["reason"], r["reason"]
    baseline = gap_waivers(pytester, *(gap_waiver("INC-04", workspace=w) for w in ("legacy", "dev", "research")))
    _, report = account_run(gap_emu, *args, "--dbsec-baseline", baseline)
    r = inc_results(report)["INC-04"]
    assert r["outcome"] == "failed", r["reason"]
    gaps = {f["resource_id"]: f for f in r["findings"] if f["details"].get("gap")}
    assert sorted(gaps) == ["workspace/dev", "workspace/legacy", "workspace/research"]
    assert all(f["disposition"]["kind"] == "waived" for f in gaps.values())
    assert gaps["workspace/dev"]["details"]["in_run"] is False
    assert "prod/prod-etl-forever" in {f["resource_id"] for f in r["findings"]}


@pytest.mark.parametrize("broken, message", [
    ({"expires": None}, "waivers[0].expires: required (a waiver must expire)"),
    ({"justification": None}, "waivers[0].justification: required (a waiver must say why)"),
    ({"control": "INC-09"}, "waivers[0].control: unknown control 'INC-09'"),
])
def test_a_bad_gap_waiver_is_bad_input(account_run, gap_emu, pytester, broken, message):
    waiver = {k: v for k, v in {**gap_waiver("INC-04"), **broken}.items() if v is not None}
    baseline = gap_waivers(pytester, waiver)
    result, report = account_run(gap_emu, "--dbsec-principal", ETL_SP, "--dbsec-baseline", baseline)
    assert result.ret == 4 and report is None
    assert message in result.stderr.str() and baseline in result.stderr.str(), result.stderr.str()


def test_a_snapshot_says_which_workspace_could_not_be_read():
    from pytest_dbsec.inventory import Inventory, SnapshotError

    def snap(unread):
        return {"format": "pytest-dbsec/snapshot", "version": 1, "account": None,
                "workspaces": [{"name": "legacy", "kind": "workspace", "unread": unread, "sections": {}}]}

    inv = Inventory.from_json(snap("workspace 'legacy' is not running (status FAILED)"))
    assert inv.workspaces["legacy"].unread.startswith("workspace 'legacy' is not running")
    assert inv.to_json()["workspaces"][0]["unread"] == inv.workspaces["legacy"].unread
    with pytest.raises(SnapshotError, match=r"snapshot.workspaces\[0\].unread: expected the reason"):
        Inventory.from_json(snap(5))


# -- the account's identities are read once per run, under pytest-xdist too ----------------------------

ADMIN_CONTROLS = "IAM_03 or IAM_04 or IAM_05"  # workspace controls reading admin_assignments


def _identity_lists(emu) -> Counter:
    """The account SCIM list requests (not reads of one identity by id), by kind and page."""
    return Counter((r.path.rsplit("/", 1)[-1], json.dumps(r.query, sort_keys=True)) for r in emu.requests
                   if r.target == ACCOUNT and re.search(r"/scim/v2/(Users|Groups|ServicePrincipals)$", r.path))


@pytest.mark.parametrize("account_controls", [False, True], ids=["workspace-controls-only", "with-IAM-09"])
def test_under_xdist_the_account_identities_are_read_once_for_every_workspace(
        account_run, account_emu, pytester, account_controls):
    """admin_assignments (a workspace section) carries the account's identities: workers running the
    admin controls of different workspaces take them from the one read of the run (the account's
    account_identities section, shared through the xdist cache), as a single process does."""
    pytest.importorskip("xdist")
    args = ("-k", ADMIN_CONTROLS + (" or IAM_09" if account_controls else ""), "-v",
            "--dbsec-snapshot-out", "out/snap.json")
    _, single = account_run(account_emu, *args)
    single_lists, single_calls = _identity_lists(account_emu), api_calls(account_emu)
    account_emu.clear_requests()
    result, spread = account_run(account_emu, *args, "-n", "2")
    pick = lambda rep: sorted((r["control_id"], r["target"], r["outcome"], len(r["findings"])) for r in rep["results"])
    assert pick(spread) == pick(single)
    assert {r["target"] for r in spread["results"] if r["control_id"] == "IAM-03" and r["outcome"] in
            ("passed", "failed")} == {"prod", "dev"}, spread["results"]
    # the admin controls of prod and dev ran on different workers: each needed the identities
    ran_on = dict((ws, gw) for gw, ws in re.findall(r"\[(gw\d)\].*?test_IAM_03_\w+\[(\w+)\]", result.stdout.str()))
    assert ran_on["prod"] != ran_on["dev"], ran_on
    # one full read of the account's users, groups and service principals, every page once
    lists = _identity_lists(account_emu)
    assert {kind for kind, _ in lists} == {"Users", "Groups", "ServicePrincipals"}
    assert lists == single_lists and set(lists.values()) == {1}, lists
    assert api_calls(account_emu) == single_calls
    # and the snapshot says where they were read: the account section holds those calls, once
    snap = json.loads((pytester.path / "out" / "snap.json").read_text())
    recorded = Counter(c["path"] for sc in [snap["account"], *snap["workspaces"]]
                       for s in sc["sections"].values() for c in s["calls"] if "/scim/v2/" in c["path"]
                       and c["path"].startswith("/api/2.0/accounts/"))
    assert recorded == Counter(r.path for r in account_emu.requests if r.target == ACCOUNT
                               and "/scim/v2/" in r.path and r.path.startswith("/api/"))


@pytest.mark.parametrize("xdist", [False, True])
def test_when_the_account_identities_cannot_be_read_every_workspace_s_admin_controls_error_with_the_reason(
        account_run, account_emu, xdist):
    if xdist:
        pytest.importorskip("xdist")
    account_emu.add_fault("GET /api/2.0/accounts/*/scim/v2/Groups", status=403)
    _, report = account_run(account_emu, "-k", ADMIN_CONTROLS, *(("-n", "2") if xdist else ()))
    assert report["complete"] is False
    for ws in ("prod", "dev"):
        for cid in ("IAM-03", "IAM-04", "IAM-05"):
            r = by_target(report, cid)[ws]
            assert r["outcome"] == "error", r
            assert "needs section 'account/account_identities', which failed" in r["reason"], r["reason"]
            assert "/scim/v2/Groups -> 403" in r["reason"] and "account admin" in r["reason"], r["reason"]
    assert {"scope": ACCOUNT, "section": "account_identities"} in [
        {k: e[k] for k in ("scope", "section")} for e in report["data_errors"]]
    # the failure is the run's answer for every workspace: the account was asked once, by one worker
    assert sum(1 for r in account_emu.requests if r.target == ACCOUNT and r.path.endswith("/scim/v2/Groups")) == 1


ACCOUNT_NEEDS_EXTENSION = '''
def pytest_dbsec_register_sections(section):
    @section("inactive_account_users", "workspace", account_needs=("account_identities",))
    def inactive_account_users(w, ctx):
        return [u["userName"] for u in ctx.account_data("account_identities")["users"] if u.get("active") is False]
'''

USES_ACCOUNT_NEEDS = '''
import pytest

@pytest.mark.dbsec(id="ORG-21", title="Inactive account users listed", severity="low", scope="workspace",
                   sections=["inactive_account_users"], refs={"seeds": ["org"]}, rationale="r", remediation="x")
def test_ORG_21_inactive_account_users(workspace, findings):
    for name in workspace.data("inactive_account_users"):
        findings.fail(resource_type="user", resource_id=name, seen="inactive", expected="removed")
'''


def test_a_plugin_s_workspace_section_shares_the_account_identities_read_under_xdist(
        account_run, account_emu, pytester):
    """The README's extension example: a workspace section declaring account_needs reads the account's
    identities through ctx.account_data, sharing the run's one read with admin_assignments."""
    pytest.importorskip("xdist")
    from pytest_dbsec.collect import SECTIONS

    pytester.makeconftest(ACCOUNT_NEEDS_EXTENSION)
    pytester.makepyfile(test_org=USES_ACCOUNT_NEEDS)
    try:
        _, report = account_run(account_emu, "-k", "ORG_21 or IAM_03", "-n", "2")
    finally:  # the controller ran in this process: its registry must not keep the test's section
        SECTIONS.pop("inactive_account_users", None)
    for cid in ("ORG-21", "IAM-03"):
        assert {t for t, r in by_target(report, cid).items() if r["outcome"] in ("passed", "failed")} == \
            {"prod", "dev"}, report["results"]
    lists = _identity_lists(account_emu)
    assert {kind for kind, _ in lists} == {"Users", "Groups", "ServicePrincipals"}
    assert set(lists.values()) == {1}, lists
