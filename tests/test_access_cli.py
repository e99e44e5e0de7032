"""`dbsec access`: the incident responder's CLI over the access graph.

Runs ``main([...])`` in-process against an emulator of tests/tenants/graph_base.yaml, through real
~/.databrickscfg profiles (as a user would), and offline from a snapshot. The expected answers are
the hand-worked ones of tests/test_graph_access.py (the tenant's header comment draws the graph).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from pytest_dbsec.cli import main
from pytest_dbsec.collect import Collector
from pytest_dbsec.connect import Target
from pytest_dbsec.inventory import ACCOUNT, ACL_SECTIONS, Inventory, Scope
from pytest_dbsec.report.access import CSV_COLUMNS, schema

TENANTS = Path(__file__).parent / "tenants"
ALICE, BOB, CAROL, DAVE = (f"{n}@corp.example.com" for n in ("alice", "bob", "carol", "dave"))
ETL_APP_ID = "7f1c2b9e-0000-4000-8000-00000000e71b"
SECRET_SCOPES = "GET /api/2.0/secrets/scopes/list"


@pytest.fixture
def tenant_emu(databricks_emulator):
    return databricks_emulator(yaml.safe_load((TENANTS / "graph_base.yaml").read_text()))


@pytest.fixture
def live(tenant_emu, access_profiles, capsys):
    """Run ``dbsec access`` against the emulator through profiles ws1 + account; (rc, stdout, stderr)."""
    emu = tenant_emu
    access_profiles(emu)

    def run(*args, account=True):
        profiles = ["--databricks-profile", "ws1"] + (["--databricks-account-profile", "account"] if account else [])
        rc = main(["access", *args, *profiles])
        out, err = capsys.readouterr()
        run.secrets = [emu.token_for("dbsec-auditor", "ws1"), emu.token_for("dbsec-auditor")]
        for secret in run.secrets:  # no credential value, whatever the output
            assert secret not in out and secret not in err
        assert "dapi" not in out
        return rc, out, err

    run.emu = emu
    return run


def as_json(out: str) -> dict:
    doc = json.loads(out)
    jsonschema.validate(doc, schema())  # the shipped schema describes what we print
    return doc


def rows(out: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(out))
    assert tuple(reader.fieldnames) == CSV_COLUMNS  # stable columns
    return list(reader)


# -- principal: the blast radius ---------------------------------------------------------------


def test_principal_json_has_the_hand_worked_answer_and_is_schema_valid(live):
    rc, out, err = live("--principal", ALICE, "--scan-workspace-objects", "--escalation-check", "--output", "json")
    assert rc == 0, err
    doc = as_json(out)
    assert doc["complete"] is True and doc["errors"] == [] and doc["mode"] == "principal"
    assert "INCOMPLETE" not in err and "collected" in err  # progress on stderr, stdout is the data
    # the runbook's jq: .uc_grants[] | select(.privilege=="SELECT")
    select = {r["full_name"]: r for r in doc["uc_grants"] if r["privilege"] == "SELECT"}
    assert set(select) == {"main", "main.sales", "main.sales.orders"}
    assert select["main"]["via"] == [ALICE, "data-engineers", "all-data-team"]
    assert select["main.sales.orders"]["inherited_from"] == "catalog main"
    assert select["main"]["inherited_by"] == 2  # main.sales and main.sales.orders inherit it
    [owner] = [r for r in doc["uc_grants"] if r["ownership"]]
    assert (owner["full_name"], owner["via"]) == ("main.sales", [ALICE, "data-engineers"])
    chains = {m["group"]: m["chain"] for m in doc["group_memberships"] if m["workspace_name"] is None}
    assert chains["all-data-team"] == [ALICE, "data-engineers", "all-data-team"]
    [role] = doc["workspace_roles"]
    assert (role["workspace_name"], role["workspace_id"], role["permission_level"]) == ("ws1", 1111111111, "USER")
    perms = {(r["object_type"], r["object_name"], r["permission_level"], tuple(r["via"]))
             for r in doc["workspace_object_permissions"]}
    assert perms == {("jobs", "Nightly ETL", "IS_OWNER", (ALICE,)),
                     ("jobs", "Nightly ETL", "CAN_MANAGE_RUN", (ALICE, "data-engineers", "all-data-team")),
                     ("pipelines", "orders_pipeline", "IS_OWNER", (ALICE,)),
                     ("clusters", "shared-etl", "CAN_ATTACH_TO", (ALICE, "data-engineers"))}
    findings = {(f["kind"], f["target"]) for f in doc["escalation_findings"]}
    assert findings >= {("owner", "schema main.sales"), ("all_privileges", "catalog finance"),
                        ("run_as_takeover", "job Nightly ETL (ws1)")}
    [pat] = doc["credentials"]
    assert pat["type"] == "pat" and pat["workspace_name"] == "ws1" and pat["token_id"]


def test_without_flags_objects_are_not_read_and_escalations_not_computed(live):
    rc, out, err = live("--principal", ALICE, "--output", "json")
    doc = as_json(out)
    assert rc == 0 and doc["complete"] is True  # sections left out on purpose are not gaps
    assert doc["workspace_object_permissions"] == [] and doc["run_as"] == [] and doc["escalation_findings"] == []
    assert doc["uc_grants"] and doc["scanned_workspace_objects"] is False
    assert "--scan-workspace-objects" in err
    paths = {r.path for r in live.emu.requests}
    assert not [p for p in paths if p.startswith(("/api/2.0/permissions/", "/api/2.0/secrets", "/api/2.1/jobs"))]


def test_service_principal_by_display_name_csv_filtered_to_jobs_and_pipelines(live):
    rc, out, err = live("--principal", "etl-sp", "--scan-workspace-objects", "--workspace-object-types",
                        "jobs,pipelines", "--output", "csv")
    assert rc == 0, err
    table = rows(out)
    assert {r["principal"] for r in table} == {ETL_APP_ID}  # named as grants and ACLs name it
    objects = [(r["resource_type"], r["access"], r["via"]) for r in table if r["record"] == "object_permission"]
    assert objects == [("jobs", "CAN_MANAGE_RUN", f"{ETL_APP_ID} -> data-engineers -> all-data-team")]
    run_as = {(r["resource_type"], r["resource"].split(" (")[0]) for r in table if r["record"] == "run_as"}
    assert run_as == {("job", "Nightly ETL"), ("pipeline", "orders_pipeline")}
    assert not [r for r in table if r["record"] == "secret_scope"]  # secrets not among the types
    assert not [r for r in table if r["resource_type"] == "clusters"]
    [select] = [r for r in table if r["record"] == "uc_grant" and r["resource"] == "main.sales.orders"
                and r["access"] == "SELECT" and r["inherited_from"] == ""]
    assert select["via"] == ETL_APP_ID
    assert {r["resource_type"] for r in table if r["record"] == "credential"} == {"pat", "oauth_secret"}


def test_text_is_a_tree_principal_groups_resources(live):
    rc, out, err = live("--principal", ALICE, "--scan-workspace-objects", "--escalation-check")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == f"{ALICE} (user, Alice)"
    i = next(n for n, l in enumerate(lines) if l.endswith("── data-engineers"))
    j = next(n for n, l in enumerate(lines) if l.endswith("── all-data-team") and n > i)
    k = next(n for n, l in enumerate(lines) if "SELECT on table main.sales.orders (inherited from catalog main)" in l)
    assert i < j < k  # alice → data-engineers → all-data-team → SELECT ...
    assert any("OWNER on schema main.sales" in l for l in lines[i:j])
    assert "Escalation findings:" in out and "run_as_takeover job Nightly ETL (ws1)" in out


# -- resource, group, compare -------------------------------------------------------------------


def test_resource_reverse_lookup_in_csv_json_and_text(live):
    rc, out, err = live("--resource", "main", "--output", "csv")
    assert rc == 0, err
    table = rows(out)
    select = {r["principal"]: r["via"] for r in table if r["access"] == "SELECT"}
    assert select == {"all-data-team": "all-data-team", CAROL: f"{CAROL} -> all-data-team",
                      "data-engineers": "data-engineers -> all-data-team",
                      ALICE: f"{ALICE} -> data-engineers -> all-data-team",
                      ETL_APP_ID: f"{ETL_APP_ID} -> data-engineers -> all-data-team"}
    assert [r["principal"] for r in table if r["access"] == "OWNER"] == [DAVE]
    assert BOB in {r["principal"] for r in table if r["access"] == "BROWSE"}  # through account users
    _, out, _ = live("--resource", "main.sales.orders", "--output", "json")
    doc = as_json(out)
    assert doc["resource"] == {"securable_type": "TABLE", "full_name": "main.sales.orders"}
    assert {r["inherited_from"] for r in doc["principals"] if r["principal"] == CAROL and r["privilege"] == "SELECT"} \
        == {"catalog main"}
    _, out, _ = live("--resource", "main")
    assert out.splitlines()[0] == "catalog main"
    assert any(l.endswith(f"── {CAROL}") for l in out.splitlines())


def test_group_members_and_what_the_group_reaches(live):
    rc, out, err = live("--group", "data-engineers", "--output", "json")
    assert rc == 0, err
    doc = as_json(out)
    assert doc["mode"] == "group" and doc["principal"]["kind"] == "group"
    assert {m["principal"]: m["chain"] for m in doc["members"]} == {
        ALICE: [ALICE, "data-engineers"], ETL_APP_ID: [ETL_APP_ID, "data-engineers"]}
    [owner] = [r for r in doc["uc_grants"] if r["ownership"]]
    assert owner["full_name"] == "main.sales" and owner["via"] == ["data-engineers"]


def test_compare_two_principals(live):
    rc, out, err = live("--compare", ALICE, CAROL, "--scan-workspace-objects", "--output", "json")
    assert rc == 0, err
    doc = as_json(out)
    only_a = {(r["full_name"], r["privilege"]) for r in doc["only_a"]["uc_grants"]}
    only_b = {(r["full_name"], r["privilege"]) for r in doc["only_b"]["uc_grants"]}
    assert ("main.sales", "OWNER") in only_a and ("main.sales.orders", "MODIFY") in only_b
    assert ("main", "SELECT") not in only_a | only_b  # both reach it through all-data-team
    assert {(r["object_name"], r["permission_level"]) for r in doc["only_b"]["workspace_object_permissions"]} == {
        ("Nightly ETL", "CAN_MANAGE")}
    assert ("Nightly ETL", "CAN_MANAGE_RUN") not in {
        (r["object_name"], r["permission_level"]) for r in doc["only_a"]["workspace_object_permissions"]}
    _, out, _ = live("--compare", ALICE, CAROL, "--output", "csv")
    sides = {(r["side"], r["resource"], r["access"]) for r in rows(out)}
    assert ("only_a", "main.sales", "OWNER") in sides and ("only_b", "main.sales.orders", "MODIFY") in sides


# -- incomplete data ----------------------------------------------------------------------------


def test_a_denied_section_makes_the_answer_incomplete_and_says_so(live):
    live.emu.add_fault(SECRET_SCOPES, status=403)
    rc, out, err = live("--principal", ALICE, "--scan-workspace-objects", "--output", "json")
    doc = as_json(out)
    assert rc == 0 and doc["complete"] is False
    [e] = doc["errors"]
    assert (e["scope"], e["section"]) == ("ws1", "secrets") and "403" in e["message"]
    assert "WARNING: INCOMPLETE" in err and "ws1/secrets" in err
    assert doc["uc_grants"]  # the rest still answers
    _, out, err = live("--principal", ALICE, "--scan-workspace-objects")
    assert "INCOMPLETE" in out and "ws1/secrets" in out and "WARNING" in err  # text says so too


def test_without_the_account_the_answer_is_incomplete(live):
    rc, out, err = live("--principal", ALICE, "--output", "json", account=False)
    doc = as_json(out)
    assert rc == 0 and doc["complete"] is False and any(e["scope"] == ACCOUNT for e in doc["errors"])
    assert "WARNING" in err


# -- offline and demo ---------------------------------------------------------------------------


def _snapshot(emu, path: Path) -> Path:
    inv, targets = Inventory(), {}
    for ws in emu.workspaces:
        targets[ws["name"]] = Target(ws["name"], host=ws["url"], token=emu.token_for("dbsec-auditor", ws["name"]))
        inv.workspaces[ws["name"]] = Scope(ws["name"], "workspace", id=ws["id"], host=ws["url"])
    targets[ACCOUNT] = Target(ACCOUNT, kind="account", host=emu.account_url, account_id=emu.account_id,
                              token=emu.token_for("dbsec-auditor"))
    inv.account = Scope(ACCOUNT, "account")
    sections = ("identities", "uc", "tokens", *ACL_SECTIONS, "jobs", "secrets", "compute", "workspace_objects",
                "workspace_acls")
    Collector(inv, targets, progress=lambda m: None).ensure(
        [(ws, s) for ws in inv.workspaces for s in sections]
        + [(ACCOUNT, s) for s in ("account_identities", "account_workspaces", "sp_secrets", "identity_roles")])
    return inv.save(path)


def test_snapshot_answers_offline_with_the_same_answer(live, tmp_path, capsys):
    snap = _snapshot(live.emu, tmp_path / "snap.json")
    _, live_out, _ = live("--principal", ALICE, "--scan-workspace-objects", "--escalation-check", "--output", "json")
    live.emu.clear_requests()
    rc = main(["access", "--snapshot", str(snap), "--principal", ALICE, "--scan-workspace-objects",
               "--escalation-check", "--output", "json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert live.emu.requests == []  # no network
    doc, live_doc = as_json(out), json.loads(live_out)
    for key in ("uc_grants", "workspace_roles", "workspace_object_permissions", "escalation_findings",
                "group_memberships", "credentials", "run_as", "complete"):
        assert doc[key] == live_doc[key], key
    # asking for less than the snapshot holds answers from the part asked for
    rc = main(["access", "--snapshot", str(snap), "--resource", "main", "--output", "csv"])
    assert rc == 0 and live.emu.requests == []
    assert DAVE in capsys.readouterr().out


def test_demo_tenant(capsys):
    rc = main(["access", "--demo", "--principal", "alice.nguyen@corp.example.com", "--escalation-check",
               "--output", "json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    doc = as_json(out)
    assert doc["principal"]["display_name"] == "Alice Nguyen" and doc["uc_grants"]
    assert "dapi" not in out + err  # the demo credentials are PATs: none may leak


def test_expand_inherited_lists_what_a_large_catalog_grant_covers(monkeypatch, capsys):
    # a limit of 1 makes the demo's catalog grants "large": listed once, where granted, unless asked
    monkeypatch.setattr("pytest_dbsec.graph.access.INHERIT_EXPAND_LIMIT", 1)

    def grants(*flags):
        assert main(["access", "--demo", "--principal", "alice.nguyen@corp.example.com", "--output", "json",
                     *flags]) == 0
        return as_json(capsys.readouterr().out)["uc_grants"]

    capped, full = grants(), grants("--expand-inherited")
    large = [r for r in capped if (r.get("inherited_by") or 0) > 1]
    assert large and all("--expand-inherited" in r["note"] for r in large)
    for r in large:
        source = f"{r['securable_type'].lower()} {r['full_name']}"
        assert not [x for x in capped if x["inherited_from"] == source and x["privilege"] == r["privilege"]]
        assert len([x for x in full if x["inherited_from"] == source and x["privilege"] == r["privilege"]
                    and x["via"] == r["via"]]) == r["inherited_by"]


# -- bad input: one line, exit 4 ----------------------------------------------------------------


@pytest.mark.parametrize("args, says", [
    (["--principal", "nobody@corp.example.com"], "unknown principal"),
    (["--resource", "main.nope"], "unknown resource"),
    (["--group", ALICE], "not a group"),
    (["--principal", ALICE, "--resource", "main"], "exactly one of"),
    (["--principal", ALICE, "--workspace-object-types", "jobs"], "add --scan-workspace-objects"),
    (["--principal", ALICE, "--scan-workspace-objects", "--workspace-object-types", "jobs,bogus"], "bogus"),
])
def test_bad_questions_exit_4_with_one_line(live, args, says):
    rc, out, err = live(*args)
    assert rc == 4 and out == ""
    [line] = [l for l in err.splitlines() if not l.startswith("dbsec: [") and "checking" not in l
              and "collected" not in l]
    assert says in line and line.startswith("dbsec: access:")


@pytest.mark.parametrize("argv, says", [
    (["--principal", "x"], "one data source"),
    (["--principal", "x", "--demo", "--snapshot", "s.json"], "--snapshot and --demo"),
    (["--principal", "x", "--snapshot", "missing.json"], "missing.json"),
    (["--principal", "x", "--databricks-profile", "no-such-profile"], "no-such-profile"),
])
def test_bad_sources_exit_4(argv, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["access", *argv]) == 4
    out, err = capsys.readouterr()
    assert out == "" and says in err.splitlines()[-1]


def test_unreadable_snapshot_exit_4(tmp_path, capsys):
    bad = tmp_path / "snap.json"
    bad.write_text("{not json")
    assert main(["access", "--principal", "x", "--snapshot", str(bad)]) == 4
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "snap.json" in err and "not valid JSON" in err


def test_workspaces_are_named_as_the_account_names_them(tenant_emu, monkeypatch, tmp_path, capsys):
    # a profile called "prod" for workspace ws1: account assignments still join (USER through the group)
    emu = tenant_emu
    cfg = tmp_path / "cfg"
    cfg.write_text(f"[prod]\nhost = {emu.workspace_url('ws1')}\ntoken = {emu.token_for('dbsec-auditor', 'ws1')}\n\n"
                   f"[acc]\nhost = {emu.account_url}\naccount_id = {emu.account_id}\n"
                   f"token = {emu.token_for('dbsec-auditor')}\n")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(cfg))
    assert main(["access", "--principal", ALICE, "--databricks-profile", "prod", "--databricks-account-profile",
                 "acc", "--output", "json"]) == 0
    doc = as_json(capsys.readouterr().out)
    assert doc["complete"] is True and doc["workspaces"] == ["ws1"]
    assert [(r["workspace_name"], r["permission_level"]) for r in doc["workspace_roles"]] == [("ws1", "USER")]


def test_workspace_urls_take_credentials_from_the_environment(tenant_emu, monkeypatch, capsys):
    emu = tenant_emu
    token = emu.token_for("dbsec-auditor", "ws1")
    monkeypatch.setenv("DATABRICKS_TOKEN", token)
    assert main(["access", "--resource", "main.sales.orders", "--workspace-urls", emu.workspace_url("ws1"),
                 "--output", "json"]) == 0
    out, err = capsys.readouterr()
    doc = as_json(out)
    assert token not in out + err
    assert CAROL in {r["principal"] for r in doc["principals"] if r["privilege"] == "MODIFY"}
    # no account profile: membership comes from workspace SCIM, and the answer says it is partial
    assert doc["complete"] is False and "WARNING" in err


def test_hostile_names_stay_inert_in_csv_and_text():
    from pytest_dbsec.report.access import render

    evil = "=HYPERLINK(\"http://x\")\x1b[31m"
    doc = {"format": "pytest-dbsec/access", "version": 1, "mode": "resource",
           "resource": {"securable_type": "CATALOG", "full_name": evil},
           "principals": [{"principal": evil, "principal_kind": "user", "display_name": None, "everyone": False,
                           "securable_type": "CATALOG", "full_name": evil, "privilege": "SELECT", "via": [evil],
                           "inherited_from": None, "ownership": False}],
           "errors": [], "complete": True}
    jsonschema.validate(doc, schema())
    assert all(not r[k].startswith("=") for r in rows(render(doc, "csv")) for k in CSV_COLUMNS if r[k])
    text = render(doc, "text")
    assert "\x1b" not in text and "\\x1b" in text


def test_group_and_compare_render_as_text(live):
    rc, out, _ = live("--group", "data-engineers")
    assert rc == 0 and f"{ALICE} → data-engineers" in out and out.startswith("data-engineers (group)")
    rc, out, _ = live("--compare", ALICE, CAROL)
    assert rc == 0 and f"{ALICE} reaches, and {CAROL} does not:" in out and "OWNER on schema main.sales" in out
