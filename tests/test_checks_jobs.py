"""JOB-01..JOB-04 end to end: tenant -> emulator -> real SDK -> controls -> findings.json.

Every scenario starts from tests/tenants/job_base.yaml (every JOB control passes) and adds the bad
things it is about."""

from __future__ import annotations

import pytest
from dbsec_helpers import ids, outcome, outcome_of

JOB = ["JOB-01", "JOB-02", "JOB-03", "JOB-04"]
ETL_SP = "7f1c2b9e-0000-4000-8000-00000000e001"
ADMIN_SP = "7f1c2b9e-0000-4000-8000-00000000e002"
BOB, CAROL, HENRY, ALICE = ("bob@corp.example.com", "carol@corp.example.com", "henry@corp.example.com",
                            "alice@corp.example.com")


@pytest.fixture
def judge(judge_for):
    """Like judge_for's runner, but returns (report, job and pipeline ids by name)."""
    run = judge_for("job_base", ["-k", "JOB_0"])

    def judged(*args, **kwargs):
        report, emu = run(*args, **kwargs)
        ws = emu.tenant["account"]["workspaces"][0]
        names = {j["settings"]["name"]: j["job_id"] for j in ws["jobs"]}
        names.update({p["name"]: p["pipeline_id"] for p in ws["pipelines"]})
        return report, names

    return judged




def _job(name, creator, run_as=None, notebook="/Shared/etl/load"):
    settings = {"name": name, "tasks": [{"task_key": "t", "notebook_task": {"notebook_path": notebook}}]}
    if run_as:
        settings["run_as"] = run_as
    return {"creator_user_name": creator, "settings": settings}


def test_compliant_tenant_passes_every_job_control(judge):
    report, _ = judge()
    assert {r["control_id"]: r["outcome"] for r in report["results"]} == {c: "passed" for c in JOB}


def test_jobs_and_pipelines_running_as_people_fail_01_and_02(judge):
    def edit(t, ws):
        ws["jobs"] += [_job("bob-job", BOB, {"user_name": BOB}),
                       _job("carol-default", CAROL),  # no run_as: runs as its creator
                       _job("group-job", BOB, {"group_name": "data-engineers"}),
                       {"settings": {"name": "orphan", "tasks": []}}]  # no run_as, creator gone: unknown
        ws["pipelines"] += [{"name": "bob-dlt", "creator_user_name": BOB, "run_as": {"user_name": BOB}},
                            {"name": "carol-dlt", "creator_user_name": CAROL}]

    report, n = judge(edit, "-k", "JOB_01 or JOB_02")
    assert ids(report, "JOB-01") == {str(n["bob-job"]), str(n["carol-default"]), str(n["group-job"]),
                                     str(n["orphan"])}
    seen = {f["resource_name"]: f["seen"] for f in outcome_of(report, "JOB-01", "ws1")["findings"]}
    assert seen == {"bob-job": f"runs as user {BOB}", "carol-default": f"runs as user {CAROL}",
                    "group-job": "runs as group data-engineers", "orphan": "run_as unknown"}
    assert ids(report, "JOB-02") == {n["bob-dlt"], n["carol-dlt"]}
    # a user the baseline allows as run_as passes JOB-01 (JOB-02 has no such allowlist)
    report, n = judge(edit, "-k", "JOB_01", baseline={"jobs": {"user_run_as_allowed": [BOB]}})
    assert ids(report, "JOB-01") == {str(n["carol-default"]), str(n["group-job"]), str(n["orphan"])}


def test_job_03_flags_managers_outside_creator_admins_and_the_allowlist(judge):
    def edit(t, ws):
        ws["permissions"]["jobs/nightly"] += [
            {"user_name": HENRY, "permission_level": "CAN_MANAGE"},
            {"group_name": "contractors", "permission_level": "CAN_MANAGE"},
            {"user_name": ALICE, "permission_level": "CAN_MANAGE"},  # a workspace admin
            {"service_principal_name": "admin-sp", "permission_level": "CAN_MANAGE"},  # an admin SP
        ]
        ws["permissions"]["jobs/maintenance"].append({"user_name": CAROL, "permission_level": "CAN_MANAGE"})

    report, n = judge(edit, "-k", "JOB_03")
    nightly, maint = n["nightly"], n["maintenance"]
    # bob created nightly and owns it; etl-sp is its run-as identity; alice and admin-sp are admins
    assert ids(report, "JOB-03") == {f"{nightly}:{HENRY}", f"{nightly}:contractors", f"{maint}:{CAROL}"}
    # managers may be named directly or through a group, transitively (henry is in team-leads)
    report, _ = judge(edit, "-k", "JOB_03", baseline={"jobs": {"managers": ["contractors", "team-leads"]}})
    assert ids(report, "JOB-03") == {f"{maint}:{CAROL}"}
    report, _ = judge(edit, "-k", "JOB_03", baseline={"jobs": {"managers": ["data-engineers"]}})
    assert ids(report, "JOB-03") == {f"{nightly}:contractors"}


def test_job_04_anyone_who_controls_an_admin_run_as_is_reported(judge):
    def edit(t, ws):
        ws["permissions"]["jobs/maintenance"] += [{"user_name": HENRY, "permission_level": "CAN_MANAGE"},
                                                  {"user_name": ALICE, "permission_level": "CAN_MANAGE"}]
        ws["permissions"]["notebooks//Shared/ops/maintenance"] = [
            {"group_name": "contractors", "permission_level": "CAN_EDIT"},
            {"group_name": "data-engineers", "permission_level": "CAN_RUN"}]
        ws["jobs"].append(_job("bob-admin-job", BOB, {"service_principal_name": "admin-sp"},
                               notebook="/Shared/ops/maintenance"))

    report, n = judge(edit, "-k", "JOB_04")
    maint, bob_job = n["maintenance"], n["bob-admin-job"]
    # henry manages it, contractors edit its notebook; bob created a job running as an admin SP: even
    # its creator is effectively an admin. alice is an admin herself.
    assert ids(report, "JOB-04") == {f"{maint}:{HENRY}", f"{maint}:contractors", f"{bob_job}:contractors",
                                     f"{bob_job}:{BOB}"}
    f = next(f for f in outcome_of(report, "JOB-04", "ws1")["findings"] if f["resource_id"] == f"{maint}:contractors")
    assert f["details"]["escalation"] == "admin" and "CAN_EDIT on notebook /Shared/ops/maintenance" in f["seen"]
    assert f"admin-sp ({ADMIN_SP})" in f["seen"]


def test_job_04_editors_of_code_run_as_a_more_privileged_sp(judge):
    def edit(t, ws):
        ws["permissions"]["notebooks//Shared/etl/load"] += [
            {"group_name": "contractors", "permission_level": "CAN_EDIT"},
            {"user_name": CAROL, "permission_level": "CAN_MANAGE"}]
        ws["permissions"]["jobs/nightly"].append({"user_name": HENRY, "permission_level": "CAN_MANAGE"})
        # carol holds MANAGE on the scope herself: running code as etl-sp gives her nothing more
        ws["secret_scopes"][0]["acls"].append({"principal": CAROL, "permission": "MANAGE"})

    report, n = judge(edit, "-k", "JOB_04")
    nightly, dlt = n["nightly"], n["dlt"]
    assert ids(report, "JOB-04") == {f"{nightly}:contractors", f"{nightly}:{HENRY}", f"{dlt}:contractors"}
    f = next(f for f in outcome_of(report, "JOB-04", "ws1")["findings"] if f["resource_id"] == f"{nightly}:{HENRY}")
    assert f["details"]["escalation"] == "privileges" and "MANAGE on secret scope etl" in f["seen"]


def test_job_04_compares_unity_catalog_grants_with_inheritance(judge):
    def edit(t, ws, engineers_privs):
        t["account"]["metastores"] = [{
            "name": "ms1", "owner": "platform-admins", "region": "us-east-1",
            "catalogs": [{"name": "sales", "owner": "platform-admins",
                          "grants": [{"principal": "etl-sp", "privileges": ["USE_CATALOG", "USE_SCHEMA", "SELECT"]},
                                     {"principal": "data-engineers", "privileges": engineers_privs}],
                          "schemas": [{"name": "crm", "tables": [{
                              "name": "orders", "columns": [{"name": "id", "type_name": "LONG"}],
                              "grants": [{"principal": "etl-sp", "privileges": ["MODIFY"]}]}]}]}]}]
        ws["metastore"] = "ms1"
        ws["secret_scopes"][0]["acls"] = []  # only UC privileges differ
        ws["permissions"]["notebooks//Shared/etl/load"].append({"group_name": "data-engineers",
                                                                 "permission_level": "CAN_EDIT"})

    report, n = judge(lambda t, ws: edit(t, ws, ["USE_CATALOG", "USE_SCHEMA", "SELECT"]), "-k", "JOB_04")
    assert ids(report, "JOB-04") == {f"{n['nightly']}:data-engineers", f"{n['dlt']}:data-engineers"}
    assert "MODIFY on table sales.crm.orders" in outcome_of(report, "JOB-04", "ws1")["findings"][0]["seen"]
    # ALL_PRIVILEGES on the catalog covers MODIFY on its tables: no escalation left
    report, _ = judge(lambda t, ws: edit(t, ws, ["ALL_PRIVILEGES"]), "-k", "JOB_04")
    assert outcome(report, "JOB-04") == "passed"


def test_job_04_repo_editors_of_job_code(judge):
    def edit(t, ws):
        ws["repos"] = [{"path": "/Repos/team/etl", "url": "https://github.com/corp/etl.git", "provider": "gitHub"}]
        ws["notebooks"].append({"path": "/Repos/team/etl/transform", "content": "# Databricks notebook source\n"})
        ws["jobs"].append(_job("repo-job", BOB, {"service_principal_name": "admin-sp"},
                               notebook="/Repos/team/etl/transform"))
        ws["permissions"]["repos//Repos/team/etl"] = [{"user_name": CAROL, "permission_level": "CAN_EDIT"}]

    report, n = judge(edit, "-k", "JOB_04")
    assert ids(report, "JOB-04") == {f"{n['repo-job']}:{CAROL}", f"{n['repo-job']}:{BOB}"}


def test_unreadable_data_makes_job_controls_error_with_the_reason(judge):
    report, _ = judge(None, faults=[("GET /api/2.0/preview/scim/v2/Groups", {"status": 403})])
    assert {c: outcome(report, c) for c in JOB} == {c: "error" for c in JOB}
    assert "scim/v2/Groups" in outcome_of(report, "JOB-01", "ws1")["reason"]
    report, _ = judge(None, faults=[("GET /api/2.0/permissions/notebooks/*", {"status": 403})])
    assert {c: outcome(report, c) for c in JOB} == {"JOB-01": "passed", "JOB-02": "passed", "JOB-03": "passed",
                                                    "JOB-04": "error"}
    assert "permissions/notebooks" in outcome_of(report, "JOB-04", "ws1")["reason"]
    report, _ = judge(None, "-k", "JOB_03 or JOB_04", faults=[("GET /api/2.0/permissions/jobs/*", {"status": 403})])
    assert outcome(report, "JOB-03") == "error" and outcome(report, "JOB-04") == "error"
    report, _ = judge(None, "-k", "JOB_01", faults=[("GET /api/2.2/jobs/list", {"status": 500})])
    assert outcome(report, "JOB-01") == "error"


def test_a_job_deleted_during_the_audit_is_not_judged(judge):
    def edit(t, ws):
        ws["jobs"][0]["job_id"] = 4242
        ws["permissions"]["jobs/nightly"].append({"user_name": HENRY, "permission_level": "CAN_MANAGE"})

    report, _ = judge(edit, "-k", "JOB_03 or JOB_04")
    assert ids(report, "JOB-03") == {f"4242:{HENRY}"}
    # the job is gone by the time its permissions are read: nothing left to judge, not an error
    report, _ = judge(edit, "-k", "JOB_03 or JOB_04", faults=[
        ("GET /api/2.0/permissions/jobs/4242", {"status": 404, "error_code": "RESOURCE_DOES_NOT_EXIST"})])
    assert outcome(report, "JOB-03") == "passed" and outcome(report, "JOB-04") == "passed"
