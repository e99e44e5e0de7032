"""SEC-01..SEC-04 end to end: tenant -> emulator -> real SDK -> controls -> findings.json.

Every scenario starts from tests/tenants/sec_base.yaml (every SEC control passes) and adds the bad
things it is about. Credentials are fake; none of them may reach a report or a snapshot."""

from __future__ import annotations

import json

import pytest
from dbsec_helpers import ids, outcome, outcome_of

SEC = ["SEC-01", "SEC-02", "SEC-03", "SEC-04"]
PAT = "dapi" + "5e7a" * 8
AKIA = "AKIA" + "Z7Y6X5W4V3U2T1S0"
AWS_SECRET = "Qw3rTy/uI0pAsDfGhJkL1zXcVbNm9876PoIuYtRe"
SECRETS = (PAT, AKIA, AWS_SECRET, "Hunter2Hunter2", "Sn0wfl4ke!", "Pa55w0rdForLedger")


@pytest.fixture
def judge(judge_for):
    return judge_for("sec_base", ["-k", "SEC_0"])




def test_compliant_tenant_passes_every_sec_control(judge):
    report, _ = judge()
    assert {r["control_id"]: r["outcome"] for r in report["results"]} == {c: "passed" for c in SEC}


def _notebook(path, content, **kw):
    return {"path": path, "language": "PYTHON", "modified_at": "-2d", "content": content, **kw}


def _bad(t, ws):
    ws["secret_scopes"] += [
        {"name": "open-write", "acls": [{"principal": "users", "permission": "WRITE"}]},
        {"name": "open-manage", "acls": [{"principal": "users", "permission": "MANAGE"}]},
        {"name": "open-read", "acls": [{"principal": "users", "permission": "READ"},
                                       {"principal": "admins", "permission": "MANAGE"}]},
    ]
    ws["notebooks"] += [
        _notebook("/Users/bob@corp.example.com/crm_sync",
                  f'# Databricks notebook source\nimport requests\nTOKEN = "{PAT}"\n'),
        _notebook("/Users/bob@corp.example.com/scratch", "// Databricks notebook source\n"
                  'val url = "jdbc:postgresql://db:5432/x?user=r&password=Hunter2Hunter2"\n', language="SCALA"),
        _notebook("/Repos/alice@corp.example.com/etl/aws_test",
                  f'import boto3\ns3 = boto3.client("s3", aws_access_key_id="{AKIA}",\n'
                  f'    aws_secret_access_key="{AWS_SECRET}")\n'),
        _notebook("/Shared/deploy/.env", "DB_HOST=db.corp.example.com\nDB_PASSWORD=Sn0wfl4ke!\n", object_type="FILE"),
    ]
    ws["repos"] = [{"path": "/Repos/alice@corp.example.com/etl", "url": "https://github.com/corp/etl.git",
                    "provider": "gitHub"}]
    job = ws["jobs"][0]["settings"]
    job["parameters"].append({"name": "api_token", "default": PAT})
    job["tasks"][0]["notebook_task"]["base_parameters"]["db_password"] = "Hunter2Hunter2"
    job["tasks"][1]["spark_python_task"]["parameters"] = ["--user", "etl", "--password", "Hunter2Hunter2"]
    job["job_clusters"][0]["new_cluster"]["spark_env_vars"]["LEDGER_DB_PASSWORD"] = "Pa55w0rdForLedger"
    ws["pipelines"][0]["spec"]["configuration"]["snowflake_url"] = "snowflake://svc:Sn0wfl4ke!@corp.snowflake.com/db"


def test_bad_tenant_fails_every_sec_control_but_scopes_exist(judge):
    report, emu = judge(_bad)
    ws = emu.tenant["account"]["workspaces"][0]
    job_id, pipeline_id = ws["jobs"][0]["job_id"], ws["pipelines"][0]["pipeline_id"]
    assert ids(report, "SEC-01") == {"open-write", "open-manage", "open-read"}
    seen = {f["resource_id"]: f["seen"] for f in outcome_of(report, "SEC-01", "ws1")["findings"]}
    assert seen["open-read"] == "users READ (not a shared scope)" and seen["open-write"] == "users WRITE"
    assert outcome(report, "SEC-02") == "passed"
    assert ids(report, "SEC-03") == {"/Users/bob@corp.example.com/crm_sync", "/Users/bob@corp.example.com/scratch",
                                     "/Repos/alice@corp.example.com/etl/aws_test", "/Shared/deploy/.env"}
    sec03 = {f["resource_id"]: f for f in outcome_of(report, "SEC-03", "ws1")["findings"]}
    assert sec03["/Users/bob@corp.example.com/crm_sync"]["details"]["lines"] == [3]
    assert sec03["/Users/bob@corp.example.com/crm_sync"]["owner"] == "bob@corp.example.com"
    assert sec03["/Repos/alice@corp.example.com/etl/aws_test"]["details"]["kinds"] == ["aws_access_key_id",
                                                                                     "aws_secret_key"]
    assert sec03["/Shared/deploy/.env"]["resource_type"] == "file"
    assert ids(report, "SEC-04") == {
        f"{job_id}:parameters.api_token",
        f"{job_id}:tasks[load].notebook_task.base_parameters.db_password",
        f"{job_id}:tasks[export].spark_python_task.parameters[3]",
        f"{job_id}:job_clusters[main].new_cluster.spark_env_vars.LEDGER_DB_PASSWORD",
        f"{pipeline_id}:configuration.snowflake_url"}
    text = json.dumps(report)
    assert not [s for s in SECRETS if s in text]


def test_no_secret_reaches_the_snapshot(judge, pytester):
    judge(_bad, "-k", "SEC_03 or SEC_04", "--dbsec-snapshot-out", "snap.json")
    raw = (pytester.path / "snap.json").read_text()
    assert not [s for s in SECRETS if s in raw]
    assert "dbutils.secrets.get" not in raw  # notebook source is scanned, never stored


def test_sec_02_fails_without_any_scope(judge):
    def edit(t, ws):
        ws["secret_scopes"] = []

    report, _ = judge(edit, "-k", "SEC_02")
    assert ids(report, "SEC-02") == {"ws1"}


def test_shared_scopes_baseline_allows_read_for_everyone_but_never_write(judge):
    def edit(t, ws):
        ws["secret_scopes"] += [{"name": "public", "acls": [{"principal": "users", "permission": "READ"}]},
                                {"name": "public-rw", "acls": [{"principal": "users", "permission": "WRITE"}]}]

    report, _ = judge(edit, "-k", "SEC_01")
    assert ids(report, "SEC-01") == {"public", "public-rw"}
    report, _ = judge(edit, "-k", "SEC_01", baseline={"secrets": {"shared_scopes": ["public", "public-rw"]}})
    assert ids(report, "SEC-01") == {"public-rw"}


def test_a_truncated_scan_is_stated_never_a_silent_pass(judge):
    def edit(t, ws):
        ws["notebooks"].append(_notebook("/Users/bob@corp.example.com/old", f'TOKEN = "{PAT}"\n', modified_at="-300d"))

    report, _ = judge(edit, "-k", "SEC_03")
    assert ids(report, "SEC-03") == {"/Users/bob@corp.example.com/old"}
    # only the most recently modified notebook is judged: the old credential is beyond the limit,
    # and the result says how much was left out
    report, _ = judge(edit, "-k", "SEC_03", baseline={"secrets": {"scan_max_objects": 1}})
    r = outcome_of(report, "SEC-03", "ws1")
    assert r["outcome"] == "failed" and ids(report, "SEC-03") == {"notebook-scan-coverage"}
    f = r["findings"][0]
    assert f["seen"].startswith("scanned 1 of 4 notebooks and workspace files; 3 beyond the scan limit of 1")
    assert f["details"]["found"] == 4 and f["details"]["scanned"] == 1


def test_objects_that_cannot_be_exported_are_a_coverage_gap(judge):
    report, _ = judge(None, "-k", "SEC_03", faults=[("GET /api/2.0/workspace/export", {"status": 403})])
    r = outcome_of(report, "SEC-03", "ws1")
    assert r["outcome"] == "failed" and ids(report, "SEC-03") == {"notebook-scan-coverage"}
    assert "3 could not be read" in r["findings"][0]["seen"] and "PERMISSION_DENIED" in r["findings"][0]["seen"]


def test_unreadable_data_makes_sec_controls_error_with_the_reason(judge):
    report, _ = judge(None, faults=[("GET /api/2.0/secrets/acls/list", {"status": 403}),
                                    ("GET /api/2.0/workspace/list", {"status": 403}),
                                    ("GET /api/2.2/jobs/list", {"status": 500})])
    assert {c: outcome(report, c) for c in SEC} == {c: "error" for c in SEC}
    assert "secrets/acls/list" in outcome_of(report, "SEC-01", "ws1")["reason"]
    assert "workspace/list" in outcome_of(report, "SEC-03", "ws1")["reason"]
    assert "jobs/list" in outcome_of(report, "SEC-04", "ws1")["reason"]


def test_non_admin_cannot_read_scope_acls(judge):
    report, _ = judge(None, "-k", "SEC_01", principal="alice@corp.example.com")
    r = outcome_of(report, "SEC-01", "ws1")
    assert r["outcome"] == "error" and "MANAGE" in r["reason"]
