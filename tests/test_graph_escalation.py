"""Escalation edges (pytest_dbsec/graph/escalation.py) on a hand-worked tenant.

tests/tenants/escalation_base.yaml draws every edge in its header; the expected findings below are
worked out from it by hand. The inventory is read from the emulator through the real SDK.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_graph_access import collect

from pytest_dbsec.collect import notebooks
from pytest_dbsec.graph.access import AccessGraph
from pytest_dbsec.report import access as report

TENANTS = Path(__file__).parent / "tenants"
HELEN, SAM, MIKE, NORA, CARA, PAUL, VIC, OLGA = (f"{n}@corp.example.com" for n in
                                                 ("helen", "sam", "mike", "nora", "cara", "paul", "vic", "olga"))
ADMIN_SP = "7f1c2b9e-0000-4000-8000-0000000ad001"
PLAIN_SP = "7f1c2b9e-0000-4000-8000-00000000b002"
PROFILE = "arn:aws:iam::123456789012:instance-profile/data-admin"


def base_tenant() -> dict:
    return yaml.safe_load((TENANTS / "escalation_base.yaml").read_text())


@pytest.fixture(scope="module")
def inventory():
    return collect(base_tenant())


@pytest.fixture(scope="module")
def graph(inventory):
    return AccessGraph.from_inventory(inventory)


def escalations(graph, who, kinds=None):
    return [f for f in graph.blast_radius(who)["escalation_findings"] if kinds is None or f["kind"] in kinds]


NEW_KINDS = {"group_manager", "sp_user", "sp_manager", "code_edit_run_as", "cluster_cloud_identity",
             "policy_cloud_identity"}


def test_the_tenant_is_read_completely_and_only_with_gets(inventory, graph):
    assert graph.gaps == []
    assert inventory.account.section("identity_roles").status == "ok"
    assert inventory.workspaces["ws1"].section("workspace_acls").status == "ok"
    calls = [c for sc in inventory.scopes() for s in sc.sections.values() for c in s.calls]
    assert calls and {c["method"] for c in calls} == {"GET"}  # read-only


def test_group_manager_of_an_admin_group_can_add_itself(graph):
    [f] = escalations(graph, HELEN, NEW_KINDS)
    assert f == {"kind": "group_manager", "severity": "critical", "target": "group platform-admins",
                 "reason": "group manager of platform-admins: can add itself to the group, which gives: ADMIN of ws1",
                 "path": [HELEN, "helpdesk", "roles/group.manager on platform-admins", "platform-admins",
                          "ADMIN of ws1"]}
    # a manager that is already a member gains nothing from the role (its admin rights are reported as such)
    assert escalations(graph, OLGA, {"group_manager"}) == []
    assert escalations(graph, OLGA, {"workspace_admin"})


def test_service_principal_user_can_run_as_it_severity_by_what_it_reaches(graph):
    found = {f["target"]: f for f in escalations(graph, SAM, NEW_KINDS)}
    assert set(found) == {f"service principal admin-sp ({ADMIN_SP})", f"service principal plain-sp ({PLAIN_SP})"}
    admin = found[f"service principal admin-sp ({ADMIN_SP})"]
    assert (admin["kind"], admin["severity"]) == ("sp_user", "critical")  # admin-sp is ADMIN of ws1
    assert admin["path"] == [SAM, f"roles/servicePrincipal.user on {ADMIN_SP}", ADMIN_SP, "ADMIN of ws1"]
    plain = found[f"service principal plain-sp ({PLAIN_SP})"]
    assert (plain["kind"], plain["severity"]) == ("sp_user", "medium")  # plain-sp holds nothing


def test_service_principal_manager_can_grant_itself_the_user_role(graph):
    [f] = escalations(graph, MIKE, NEW_KINDS)
    assert (f["kind"], f["severity"], f["target"]) == ("sp_manager", "critical", f"service principal admin-sp ({ADMIN_SP})")
    assert f["path"] == [MIKE, f"roles/servicePrincipal.manager on {ADMIN_SP}",
                         "roles/servicePrincipal.user (self-granted)", ADMIN_SP, "ADMIN of ws1"]


def test_edit_on_a_folder_holding_the_notebook_a_privileged_job_runs(graph):
    br = graph.blast_radius(NORA)
    # the folder entry is direct; everything below it inherits it, naming the folder
    perms = {(r["object_type"], r["object_name"]): r for r in br["workspace_object_permissions"]}
    folder = perms[("directories", "/Shared/etl")]
    assert (folder["permission_level"], folder["inherited"]) == ("CAN_EDIT", False)
    nb = perms[("notebooks", "/Shared/etl/ingest")]
    assert nb["permission_level"] == "CAN_EDIT" and nb["inherited"] is True
    assert nb["inherited_from_object"] == [f"/directories/{folder['object_id']}"]
    assert set(perms) == {("directories", "/Shared/etl"), ("notebooks", "/Shared/etl/ingest"),
                          ("directories", "/Shared/etl/lib"), ("files", "/Shared/etl/lib/util.py")}
    [f] = escalations(graph, NORA, NEW_KINDS)
    assert (f["kind"], f["severity"], f["target"]) == ("code_edit_run_as", "critical", "job Privileged ETL (ws1)")
    assert f["path"] == [NORA, "CAN_EDIT on folder /Shared/etl", "job Privileged ETL", ADMIN_SP]
    assert "/Shared/etl/ingest" in f["reason"] and f["object_type"] == "directories"


def test_cluster_and_policy_with_an_instance_profile(graph):
    [f] = escalations(graph, CARA, NEW_KINDS)
    assert (f["kind"], f["severity"]) == ("cluster_cloud_identity", "high")
    assert f["path"] == [CARA, "CAN_ATTACH_TO on cluster gpu-profile", f"instance profile {PROFILE}"]
    [f] = escalations(graph, PAUL, NEW_KINDS)
    assert (f["kind"], f["severity"]) == ("policy_cloud_identity", "high")
    assert f["path"] == [PAUL, "CAN_USE on cluster policy profile-policy", f"instance profile {PROFILE}"]
    assert "fixed by the policy" in f["reason"]


def test_a_principal_without_edges_has_no_escalation(graph):
    assert escalations(graph, VIC, NEW_KINDS) == []  # CAN_MANAGE on its own scratch notebook no job runs


def test_object_type_filter_drops_findings_derived_from_left_out_types(graph):
    br = graph.blast_radius(NORA)
    kept = report.filter_object_types(br, {"jobs"})
    assert kept["workspace_object_permissions"] == [] and kept["escalation_findings"] == []
    kept = report.filter_object_types(br, {"directories", "notebooks"})
    assert [f["kind"] for f in kept["escalation_findings"]] == ["code_edit_run_as"]
    assert {r["object_type"] for r in kept["workspace_object_permissions"]} == {"directories", "notebooks"}


def test_denied_rule_sets_make_the_answer_incomplete_with_the_reason():
    inv = collect(base_tenant(), faults=[{"route": "GET /api/2.0/preview/accounts/*", "status": 403,
                                          "error_code": "PERMISSION_DENIED", "message": "not allowed"}])
    sec = inv.account.section("identity_roles")
    assert sec.status == "error"
    assert "/access-control/rule-sets -> 403: PERMISSION_DENIED" in sec.error and "account admin" in sec.error
    br = AccessGraph.from_inventory(inv).blast_radius(HELEN)
    assert br["complete"] is False
    assert [e for e in br["errors"] if e.startswith("account/identity_roles: ")]
    assert [f for f in br["escalation_findings"] if f["kind"] == "group_manager"] == []


def test_denied_tree_acls_and_the_cap_are_gaps():
    inv = collect(base_tenant(), faults=[{"route": "GET /api/2.0/permissions/notebooks/*", "status": 403,
                                          "error_code": "PERMISSION_DENIED", "message": "no"}])
    sec = inv.workspaces["ws1"].section("workspace_acls")
    assert sec.status == "error" and "403" in sec.error and "CAN_MANAGE on the object" in sec.error
    assert "ws1/workspace_acls: " + sec.error in AccessGraph.from_inventory(inv).gaps


def test_the_object_cap_makes_the_tree_incomplete(monkeypatch):
    monkeypatch.setattr(notebooks, "TREE_ACL_LIMIT", 2)
    inv = collect(base_tenant())
    data = inv.workspaces["ws1"].section("workspace_acls").data
    # /Shared, /Users, /Shared/etl, /Shared/etl/lib, /Users/vic@..., and the three notebooks/files
    assert data["truncated"] is True and len(data["objects"]) == 2 and data["found"] == 8
    gaps = AccessGraph.from_inventory(inv).gaps
    assert gaps == ["ws1/workspace_acls: incomplete: 8 folders/notebooks/files/repos, ACLs read for the first 2 "
                    "only (the collector's cap)"]


def test_emulator_rule_set_wire_format():
    from databricks.sdk import AccountClient
    from databricks.sdk.errors import NotFound

    from pytest_dbsec.emulator import Emulator

    emu = Emulator(base_tenant()).start()
    try:
        a = AccountClient(host=emu.account_url, account_id=emu.account_id, token=emu.token_for("dbsec-auditor"))
        rs = a.access_control.get_rule_set(
            name=f"accounts/{emu.account_id}/servicePrincipals/{ADMIN_SP}/ruleSets/default", etag="")
        assert rs.etag and {(r.role, tuple(r.principals)) for r in rs.grant_rules} == {
            ("roles/servicePrincipal.user", (f"users/{SAM}",)),
            ("roles/servicePrincipal.manager", (f"users/{MIKE}",))}
        with pytest.raises(NotFound):
            a.access_control.get_rule_set(
                name=f"accounts/{emu.account_id}/servicePrincipals/no-such-app/ruleSets/default", etag="")
        assert emu.requests and all(r.method == "GET" for r in emu.requests)
    finally:
        emu.stop()


def test_json_output_validates_against_the_shipped_schema(graph):
    jsonschema = pytest.importorskip("jsonschema")
    doc = {"format": report.ACCESS_FORMAT, "version": report.ACCESS_VERSION, "mode": "principal",
           **graph.blast_radius(NORA), "scanned_workspace_objects": True, "escalation_check": True,
           "workspace_object_types": None, "workspaces": ["ws1"],
           "audit_log": {"queried": False, "reason": "not queried"}, "audit_actions": []}
    doc = json.loads(json.dumps(doc))
    jsonschema.validate(doc, report.schema())
    kinds = report.schema()["$defs"]["escalation"]["properties"]["kind"]["description"]
    assert all(k in kinds for k in NEW_KINDS)


# -- INC-03 sees the workspace tree ------------------------------------------------------------------


def _inc03(audit, tenant, emulator, *faults):
    emu = emulator(tenant("escalation_base"))
    for route, kw in faults:
        emu.add_fault(route, **kw)
    result, rep = audit(emu.tenant, "--dbsec-principal", VIC, "-k", "INC_03", emu=emu)
    assert rep is not None, result.stdout.str()
    return next(r for r in rep["results"] if r["control_id"] == "INC-03"), emu


def test_inc03_fails_on_a_notebook_acl(audit, tenant, emulator):
    r, emu = _inc03(audit, tenant, emulator)
    assert r["outcome"] == "failed"
    assert [(f["resource_type"], f["resource_name"], f["seen"]) for f in r["findings"]] == [
        ("notebooks", f"/Users/{VIC}/scratch", f"CAN_MANAGE via {VIC}")]
    assert emu.requests and {q.method for q in emu.requests} == {"GET"}  # read-only


def test_inc03_errors_when_the_tree_acls_were_denied(audit, tenant, emulator):
    r, _ = _inc03(audit, tenant, emulator, ("GET /api/2.0/permissions/directories/*",
                                            {"status": 403, "error_code": "PERMISSION_DENIED", "message": "no"}))
    assert r["outcome"] == "error"
    assert "workspace_acls" in r["reason"] and "/api/2.0/permissions/directories/" in r["reason"] \
        and "403" in r["reason"], r["reason"]


# -- dbsec access ---------------------------------------------------------------------------------------


def test_cli_reports_the_edges_and_reads_roles_only_for_escalation_checks(databricks_emulator, access_profiles,
                                                                          capsys):
    from pytest_dbsec.cli import main

    emu = databricks_emulator(base_tenant())
    profiles = access_profiles(emu)

    rc = main(["access", "--principal", NORA, "--scan-workspace-objects", "--workspace-object-types",
               "notebooks,directories", "--escalation-check", "--output", "json", *profiles])
    out, err = capsys.readouterr()
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["complete"] is True and doc["errors"] == []
    assert {r["object_type"] for r in doc["workspace_object_permissions"]} == {"notebooks", "directories"}
    assert [(f["kind"], f["target"]) for f in doc["escalation_findings"]] == [
        ("code_edit_run_as", "job Privileged ETL (ws1)")]
    assert any("/access-control/rule-sets" in q.path for q in emu.requests)
    assert {q.method for q in emu.requests} == {"GET"}

    emu.clear_requests()
    rc = main(["access", "--principal", HELEN, "--scan-workspace-objects", "--output", "json", *profiles])
    out, err = capsys.readouterr()
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["complete"] is True and doc["escalation_findings"] == []  # not asked: no gap either
    assert not any("/access-control/rule-sets" in q.path for q in emu.requests)
