"""`dbsec access --sql-warehouse-id`: the principal's recent actions from system.access.audit.

Against tests/tenants/audit_base.yaml through real profiles (ws1 first, so its warehouse wh1 runs the
query). Hand-worked answer for alice over the default 90 days, newest first:

  -1d  ws1      notebook.runCommand            (commandText omitted)
  -2d  ws2      unityCatalog.updatePermissions (same region: ws2 shares the metastore's region)
  -4d  ws1      accounts.generateDbToken
  -5d  account  accountsManager.addPrincipalToGroup  403
  -7d  ws1      secrets.putSecret              (string_value omitted)

left out: getTable (a read), clusters.create in ws-west (another region's table), jobs.delete (100 days ago).
"""

from __future__ import annotations

import csv
import io
import json

import jsonschema
import pytest

from dbsec_helpers import chromium, render_in_chromium
from pytest_dbsec.cli import main
from pytest_dbsec.report.access import CSV_COLUMNS, schema

ALICE = "alice@corp.example.com"
EXPECTED = [
    ("1111", "notebook", "runCommand", 200),
    ("2222", "unityCatalog", "updatePermissions", 200),
    ("1111", "accounts", "generateDbToken", 200),
    ("0", "accountsManager", "addPrincipalToGroup", 403),
    ("1111", "secrets", "putSecret", 200),
]


@pytest.fixture
def live(databricks_emulator, tenant, access_profiles, capsys):
    emu = databricks_emulator(tenant("audit_base"))

    def run(*args, who="auditor@corp.example.com"):
        profiles = access_profiles(emu, who, account_principal="auditor@corp.example.com")
        rc = main(["access", *args, *profiles])
        out, err = capsys.readouterr()
        return rc, out, err

    run.emu = emu
    return run


def as_json(out: str) -> dict:
    doc = json.loads(out)
    jsonschema.validate(doc, schema())
    return doc


def test_principal_actions_hand_worked_and_schema_valid(live):
    rc, out, err = live("--principal", ALICE, "--sql-warehouse-id", "wh1", "--output", "json")
    assert rc == 0, err
    doc = as_json(out)
    assert doc["complete"] is True and doc["errors"] == []
    assert [(a["workspace_id"], a["service_name"], a["action_name"], a["status_code"]) for a in doc["audit_actions"]] \
        == EXPECTED
    names = [a["workspace_name"] for a in doc["audit_actions"]]
    assert names == ["ws1", None, "ws1", "account", "ws1"]  # ws2 is not part of this run
    assert doc["audit_actions"][0]["request_params"] == "clusterId=c1, commandText=<omitted>, notebookId=42"
    assert doc["audit_actions"][-1]["request_params"] == "key=k, scope=s, string_value=<omitted>"
    assert "NotARealSecretValue" not in out and "dbutils.secrets.get" not in out
    assert doc["audit_actions"][3]["error_message"] == "not an account admin"
    log = doc["audit_log"]
    assert (log["queried"], log["warehouse_id"], log["workspace_name"], log["days"], log["truncated"]) == \
        (True, "wh1", "ws1", 90, False)
    assert "querying system.access.audit" in err and "not queried" not in err
    # the only write-shaped call: one POST of a SELECT
    posts = [(r.path, r.statement) for r in live.emu.requests if r.method != "GET"]
    assert len(posts) == 1 and posts[0][0] == "/api/2.0/sql/statements"
    assert posts[0][1].startswith("SELECT ") and ALICE not in posts[0][1]  # the name is a bound parameter


def test_the_window_and_service_principals_by_application_id(live):
    rc, out, _ = live("--principal", ALICE, "--sql-warehouse-id", "wh1", "--audit-days", "120", "--output", "json")
    assert [a["action_name"] for a in as_json(out)["audit_actions"]][-1] == "delete"
    # the SP is asked for by display name; the audit log names it by application id
    rc, out, err = live("--principal", "etl-sp", "--sql-warehouse-id", "wh1", "--output", "json")
    assert rc == 0, err
    assert [(a["service_name"], a["action_name"]) for a in as_json(out)["audit_actions"]] == [("jobs", "create")]


def test_without_the_flag_the_output_says_not_queried(live):
    rc, out, err = live("--principal", ALICE, "--output", "json")
    doc = as_json(out)
    assert doc["audit_log"]["queried"] is False and "--sql-warehouse-id" in doc["audit_log"]["reason"]
    assert doc["audit_actions"] == [] and doc["complete"] is True
    assert "audit log was not queried" in err
    assert not [r for r in live.emu.requests if r.method != "GET"]
    rc, out, _ = live("--principal", ALICE)
    assert "Audit log: not queried" in out


@pytest.mark.parametrize("who,warehouse,says", [
    ("carol@corp.example.com", "wh1", "[INSUFFICIENT_PERMISSIONS]"),
    ("bob@corp.example.com", "wh1", "CAN_USE on the SQL warehouse"),
    ("auditor@corp.example.com", "nope", "SQL warehouse nope does not exist"),
])
def test_a_failed_query_fails_closed_and_loud(live, who, warehouse, says):
    rc, out, err = live("--principal", ALICE, "--sql-warehouse-id", warehouse, "--output", "json", who=who)
    doc = as_json(out)
    assert doc["complete"] is False and doc["audit_actions"] == []
    [e] = [e for e in doc["errors"] if e["section"] == "audit_log"]
    assert e["scope"] == "ws1" and says in e["message"] and says in doc["audit_log"]["error"]
    assert "INCOMPLETE ANSWER" in err and "ws1/audit_log" in err
    rc, out, _ = live("--principal", ALICE, "--sql-warehouse-id", warehouse, who=who)
    assert "QUERY FAILED" in out and "INCOMPLETE" in out


def test_csv_and_text(live):
    rc, out, _ = live("--principal", ALICE, "--sql-warehouse-id", "wh1", "--output", "csv")
    reader = csv.DictReader(io.StringIO(out))
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    audit = [r for r in reader if r["record"] == "audit_action"]
    assert [(r["workspace_name"], r["resource_type"], r["resource"], r["access"]) for r in audit] == [
        ("ws1", "notebook", "runCommand", "200"), ("2222", "unityCatalog", "updatePermissions", "200"),
        ("ws1", "accounts", "generateDbToken", "200"), ("account", "accountsManager", "addPrincipalToGroup", "403"),
        ("ws1", "secrets", "putSecret", "200")]
    assert "from 198.51.100.7" in audit[0]["note"]
    rc, out, _ = live("--principal", ALICE, "--sql-warehouse-id", "wh1")
    lines = out.splitlines()
    i = next(k for k, l in enumerate(lines) if l.startswith("Audit log: actions with lasting side effects"))
    assert [l.split()[2] for l in lines[i + 1:i + 6]] == [
        "notebook.runCommand", "unityCatalog.updatePermissions", "accounts.generateDbToken",
        "accountsManager.addPrincipalToGroup", "secrets.putSecret"]


def test_bad_flags_are_one_line_and_exit_4(live, capsys):
    for args, says in ((["--resource", "main", "--sql-warehouse-id", "wh1"], "use it with --principal"),
                       (["--principal", ALICE, "--sql-warehouse-id", "wh1", "--audit-days", "0"], "--audit-days")):
        rc, out, err = live(*args)
        assert rc == 4 and out == "" and says in err and len(err.strip().splitlines()) == 1


def test_html_escapes_and_renders(live, tmp_path):
    live.emu.tenant["account"]["audit_log"].append(
        {"event_time": "-1h", "workspace": "ws1", "principal": ALICE, "service_name": "jobs", "action_name": "create",
         "request_params": {"name": "<script>alert(1)</script>"}})
    rc, out, _ = live("--principal", ALICE, "--sql-warehouse-id", "wh1", "--output", "html")
    assert rc == 0 and "<script>alert" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "Audit log: actions with lasting side effects" in out and "runCommand" in out
    page = tmp_path / "access.html"
    page.write_text(out)
    dom, log = render_in_chromium(chromium(), page, tmp_path)
    assert "generateDbToken" in dom and "&lt;script&gt;" in dom
    console = [line for line in log.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "Uncaught" in line or "Error" in line], console


def test_the_demo_incident_example(capsys):
    """README: dbsec access --demo --principal henry.wilson@corp.example.com --sql-warehouse-id 3f8a1c2b9d4e5f60"""
    rc = main(["access", "--demo", "--principal", "henry.wilson@corp.example.com",
               "--sql-warehouse-id", "3f8a1c2b9d4e5f60", "--output", "json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    doc = as_json(out)
    assert doc["complete"] is True
    got = [(a["service_name"], a["action_name"], a["status_code"]) for a in doc["audit_actions"]]
    # newest first; the 120-day-old ACL change and the reads (getTable, tokenLogin) are not listed
    assert got[0] == ("clusters", "delete", 200) and got[-1] == ("accounts", "generateDbToken", 200)
    assert sorted(got) == sorted([
        ("clusters", "delete", 200), ("clusters", "create", 200), ("unityCatalog", "updatePermissions", 403),
        ("secrets", "putSecret", 200), ("notebook", "runCommand", 200), ("jobs", "reset", 200),
        ("jobs", "changeJobAcl", 403), ("jobs", "runNow", 200), ("accounts", "generateDbToken", 200)])
    assert all(a["workspace_name"] == "prod" for a in doc["audit_actions"])
    assert "dbutils.secrets.get" not in out
