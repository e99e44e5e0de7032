"""INC-01..INC-07 (post-incident verification) end to end: tenant -> emulator -> real SDK -> access graph.

tests/tenants/inc_base.yaml gives the compromised service principal ci-deployer access through every
path; the expected findings below are worked out by hand from that file. The containment is then
applied to the emulator's tenant (what an operator would do) and the same run must pass."""

from __future__ import annotations

import pytest
from dbsec_helpers import outcome_of, assert_read_only

INC = [f"INC-0{i}" for i in range(1, 8)]
SP = "7f1c2b9e-0000-4000-8000-00000000c1d0"  # ci-deployer's applicationId: how grants and ACLs name it


def contain(t: dict) -> None:
    """Apply the containment to a (normalised) tenant, as the printed plan says."""
    acct = t["account"]
    sp = next(s for s in acct["service_principals"] if s["displayName"] == "ci-deployer")
    sp["active"] = False
    sp["secrets"] = []
    for g in acct["groups"]:
        g["members"] = [m for m in g["members"] if m != "ci-deployer"]
    ws = acct["workspaces"][0]
    ws["assignments"] = [a for a in ws["assignments"] if a["principal"] != "ci-deployer"]
    ws["admins"] = []
    ws["tokens"] = [tok for tok in ws["tokens"] if tok["comment"] == "old"]  # the expired one may stay
    ws["jobs"][0]["settings"]["run_as"] = {"user_name": "carol@corp.example.com"}
    ws["permissions"]["jobs/Deploy"] = [e for e in ws["permissions"]["jobs/Deploy"]
                                        if e.get("service_principal_name") != "ci-deployer"]
    scope = ws["secret_scopes"][0]
    scope["acls"] = [a for a in scope["acls"] if a["principal"] != "ci-deployer"]
    schema = acct["metastores"][0]["catalogs"][0]["schemas"][0]
    schema["owner"] = "carol@corp.example.com"
    table = schema["tables"][0]
    table["grants"] = [gr for gr in table["grants"] if gr["principal"] != "ci-deployer"]


@pytest.fixture
def incident(audit, tenant, emulator):
    """incident(*args, edit=None, emu=None) -> (result, report, emu) for --dbsec-principal ci-deployer."""

    def run(*args, edit=None, emu=None, principal="ci-deployer"):
        t = tenant("inc_base")
        if edit is not None:
            edit(t)
        emu = emu or emulator(t)
        result, report = audit(emu.tenant, "--dbsec-principal", principal, *args, emu=emu)
        return result, report, emu

    return run


def findings(report, control):
    r = outcome_of(report, control)
    return {f["resource_id"]: f["seen"] for f in r["findings"]}


def test_inc_controls_fail_with_every_remaining_path_then_pass_after_containment(incident):
    result, report, emu = incident("--dbsec-containment-plan")
    assert {r["control_id"]: r["outcome"] for r in report["results"]} == {c: "failed" for c in INC}, \
        result.stdout.str()
    assert all(r["target"] == "account" for r in report["results"])
    assert findings(report, "INC-01") == {
        "ws1:USER:platform": f"USER via {SP} → deployers → platform (permission assignment)",
        f"ws1:USER:{SP}": f"USER via {SP} (permission assignment)",
        "ws1:ADMIN:admins": f"ADMIN via {SP} → admins (member of the workspace admins group)",
    }
    # each grant once, where it is granted; `account users` counts while the identity is active
    assert findings(report, "INC-02") == {
        "main:USE_CATALOG:platform": f"USE_CATALOG via {SP} → deployers → platform; inherited by 2 children",
        "main:SELECT:platform": f"SELECT via {SP} → deployers → platform; inherited by 2 children",
        "main:BROWSE:account users": f"BROWSE via {SP} → account users; inherited by 2 children",
        f"main.sales:OWNER:{SP}": f"owner via {SP}",
        f"main.sales.orders:MODIFY:{SP}": f"MODIFY via {SP}",
    }
    # admins hold CAN_MANAGE on every object (inherited from the root) and on token/password use
    assert sorted((f["resource_type"], f["resource_name"], f["seen"])
                  for f in outcome_of(report, "INC-03")["findings"]) == [
        ("authorization", "passwords", f"CAN_MANAGE via {SP} → admins"),
        ("authorization", "tokens", f"CAN_MANAGE via {SP} → admins"),
        ("clusters", "build", f"CAN_MANAGE (inherited from /clusters/) via {SP} → admins"),
        ("clusters", "build", f"CAN_RESTART via {SP} → deployers"),
        ("jobs", "Deploy", f"CAN_MANAGE (inherited from /jobs/) via {SP} → admins"),
        ("jobs", "Deploy", f"CAN_MANAGE via {SP}"),
    ]
    assert any(k.startswith("ws1/jobs/") and k.endswith(f":CAN_MANAGE:{SP}") for k in findings(report, "INC-03"))
    inc04 = outcome_of(report, "INC-04")["findings"]
    assert sorted((f["resource_type"], f["resource_name"]) for f in inc04 if f["resource_type"] == "token") == [
        ("token", "deploy")]  # the expired "old" token is harmless
    assert [f["seen"].split(",")[0] for f in inc04 if f["resource_type"] == "oauth_secret"] == [
        "OAuth secret"]
    [job_run_as] = outcome_of(report, "INC-05")["findings"]
    assert job_run_as["resource_name"] == "Deploy" and job_run_as["seen"] == f"runs as {SP} (run_as) in ws1"
    assert findings(report, "INC-06") == {
        SP: "active",
        "account/deployers": f"member via {SP} → deployers",
        "account/platform": f"member via {SP} → deployers → platform",
        "ws1/admins": f"member via {SP} → admins (workspace-local group of ws1)",
        "ws1/users": f"member via {SP} → users (workspace-local group of ws1)",
    }
    assert findings(report, "INC-07") == {
        f"ws1/deploy-keys:WRITE:{SP}": f"WRITE via {SP}",
        "ws1/deploy-keys:READ:deployers": f"READ via {SP} → deployers",
    }
    assert result.ret == 1

    # the containment plan: printed, in order, and nothing was ever sent but reads
    out = result.stdout.str()
    plan = out[out.index("dbsec containment plan"):]
    order = ["deactivate 7f1c2b9e", "revoke token", "delete OAuth secret", "remove from group deployers",
             "remove from workspace group admins", "remove the USER assignment to workspace ws1",
             "REVOKE MODIFY ON TABLE `main`.`sales`.`orders` FROM `" + SP + "`",
             "ALTER SCHEMA `main`.`sales` OWNER TO `<new owner>`", "remove CAN_MANAGE on jobs Deploy",
             "delete the WRITE ACL on secret scope deploy-keys", "pause job Deploy and change its run_as"]
    positions = [plan.index(s) for s in order]
    assert positions == sorted(positions), plan
    assert '"Operations": [{"op": "replace", "path": "active", "value": false}]' in plan
    assert "DELETE /api/2.0/token-management/tokens/" in plan
    assert "printed, never executed" in plan
    assert "remove from group platform" not in plan  # transitive: goes with the deployers membership
    assert "access through group deployers goes with the membership" in plan
    # roles on identities are not read by an INC run on purpose: a note, not an INCOMPLETE DATA alarm
    assert "INCOMPLETE DATA" not in plan
    assert "roles on groups and service principals" in plan and "--escalation-check" in plan
    assert_read_only(emu)  # the tool never changes a workspace

    # apply the containment to the emulated tenant; the same verification now passes
    contain(emu.tenant)
    emu.refresh()
    result, report, _ = incident("--dbsec-containment-plan", emu=emu)
    assert {r["control_id"]: r["outcome"] for r in report["results"]} == {c: "passed" for c in INC}, \
        result.stdout.str()
    assert result.ret == 0
    assert "nothing left to remove: the identity is contained" in result.stdout.str()
    assert_read_only(emu)  # the tool never changes a workspace


def test_a_principal_named_by_application_id_is_the_same_identity(incident):
    _, report, _ = incident("-k", "INC_05 or INC_04", principal=SP)
    assert {r["control_id"]: r["outcome"] for r in report["results"]} == {"INC-04": "failed", "INC-05": "failed"}


def test_a_denied_section_makes_the_controls_that_need_it_error(incident, emulator, tenant):
    emu = emulator(tenant("inc_base"))
    emu.add_fault("GET /api/2.0/secrets/scopes/list", status=403)
    result, report, _ = incident(emu=emu)
    got = {r["control_id"]: r["outcome"] for r in report["results"]}
    assert got["INC-07"] == "error", got
    assert "secrets" in outcome_of(report, "INC-07")["reason"] and "403" in outcome_of(report, "INC-07")["reason"]
    # answers that do not rest on secret scopes are still given
    assert got["INC-04"] == "failed" and got["INC-05"] == "failed"
    assert report["complete"] is False and result.ret != 0
    # contained everywhere else, the unreadable secrets still keep INC-07 from passing
    contain(emu.tenant)
    emu.refresh()
    _, report, _ = incident(emu=emu)
    assert outcome_of(report, "INC-07")["outcome"] == "error"
    assert outcome_of(report, "INC-04")["outcome"] == "passed"


def test_a_workspace_of_the_account_not_in_the_run_is_an_error_not_a_pass(incident):
    def add_ws(t):
        t["account"]["workspaces"].append({"name": "ws2", "id": 3333333332, "metastore": "inc-ms",
                                           "assignments": [{"principal": "dbsec-auditor", "permissions": ["ADMIN"]}]})
        t["credentials"].append({"token": "emu-auditor-ws2", "principal": "dbsec-auditor", "workspace": "ws2"})
        contain(t)
    # the audit fixture audits the first workspace only: ws2's tokens, ACLs, admins are unknown
    _, report, _ = incident(edit=add_ws)
    for c in INC:
        r = outcome_of(report, c)
        assert r["outcome"] == "error" and "ws2" in r["reason"] and "not part of this run" in r["reason"], r
    result, _, _ = incident("--dbsec-containment-plan", edit=add_ws)
    assert "INCOMPLETE DATA" in result.stdout.str() and "workspace ws2 (status RUNNING) is not part of this run" in result.stdout.str()


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["one-process", "xdist"])
def test_an_unknown_principal_is_a_usage_error(incident, xdist):
    result, report, emu = incident(*xdist, principal="nobody@corp.example.com")
    assert result.ret == 4, result.stdout.str()
    assert "no user, service principal or group named 'nobody@corp.example.com'" in result.stderr.str()
    assert report is None
    assert_read_only(emu)


def test_under_xdist_the_identities_are_read_once_for_the_principal_check_and_the_workers(incident):
    """The xdist controller reads the identities to check the principal before any worker runs; the
    workers take them from the shared cache instead of reading them again: the same SCIM requests as
    a single process makes."""

    def scim_reads(emu):
        return sorted((r.path, tuple(sorted(r.query.items()))) for r in emu.requests
                      if r.method == "GET" and "/scim/v2/" in r.path and not r.path.endswith("/Me"))

    _, single, emu1 = incident()
    result, report, emu2 = incident("-n", "2")
    assert {r["control_id"] for r in report["results"]} == set(INC), result.stdout.str()
    assert scim_reads(emu2) == scim_reads(emu1) != []


def test_without_a_principal_no_inc_control_runs(audit, tenant, pytester):
    result, report = audit(tenant("inc_base"), "-k", "INC_0 or TOK_01")
    ids = {r["control_id"] for r in report["results"]}
    assert ids == {"TOK-01"}
    result.stdout.fnmatch_lines(["*deselected*"])
    # collect-only lists none either
    listed = pytester.runpytest("--dbsec-demo", "--collect-only", "-q", "-p", "no:cacheprovider").stdout.str()
    assert "test_INC_" not in listed and "test_TOK_01" in listed


def test_with_a_principal_only_inc_controls_run_and_the_plan_needs_one(incident, pytester):
    _, report, _ = incident("-k", "INC_06 or TOK_01")
    assert {r["control_id"] for r in report["results"]} == {"INC-06"}
    result = pytester.runpytest("--dbsec-demo", "--dbsec-containment-plan", "-p", "no:cacheprovider")
    assert result.ret == 4 and "--dbsec-principal" in result.stderr.str()


def test_under_xdist_the_verdicts_and_the_plan_are_the_same(incident):
    """Workers judge; the controller prints the plan from the data the workers sent back."""
    result, report, emu = incident("--dbsec-containment-plan", "-n", "2")
    assert {r["control_id"]: r["outcome"] for r in report["results"]} == {c: "failed" for c in INC}, \
        result.stdout.str()
    out = result.stdout.str()
    assert "REVOKE MODIFY ON TABLE `main`.`sales`.`orders` FROM `" + SP + "`" in out
    assert "pause job Deploy and change its run_as" in out
    assert_read_only(emu)  # the tool never changes a workspace


def test_the_graph_reads_only_what_the_selected_inc_controls_need(incident):
    """-k INC_04 reads the identities, tokens and OAuth secrets its answer rests on -- not the object ACLs,
    secret scopes, jobs, Unity Catalog or the workspace tree that INC-02/03/05/07 need."""

    def paths(emu):
        return {r.path for r in emu.requests if r.method == "GET" and r.path.startswith("/api/")}

    _, narrow, emu_narrow = incident("-k", "INC_04")
    _, full, emu_full = incident()
    assert outcome_of(narrow, "INC-04")["outcome"] == outcome_of(full, "INC-04")["outcome"] == "failed"
    assert set(findings(narrow, "INC-04")) == set(findings(full, "INC-04"))  # resource ids (times differ)
    read_narrow, read_full = paths(emu_narrow), paths(emu_full)
    assert read_narrow < read_full
    assert "/api/2.0/token-management/tokens" in read_narrow
    assert any(p.endswith("/credentials/secrets") for p in read_narrow)  # the SPs' OAuth secrets
    for not_needed in ("/api/2.0/permissions/", "/api/2.0/secrets/", "/jobs/list", "/api/2.1/unity-catalog/",
                       "/api/2.0/workspace/list"):
        assert not [p for p in read_narrow if not_needed in p], not_needed
        assert [p for p in read_full if not_needed in p], not_needed
    count = lambda emu: sum(1 for r in emu.requests if r.path.startswith("/api/"))  # noqa: E731
    assert count(emu_narrow) < count(emu_full) / 2, (count(emu_narrow), count(emu_full))
    assert_read_only(emu_narrow)
    # under pytest-xdist the workers read the same narrow set
    _, spread, emu_spread = incident("-k", "INC_04", "-n", "2")
    assert paths(emu_spread) == read_narrow and set(findings(spread, "INC-04")) == set(findings(narrow, "INC-04"))


def test_a_narrow_plan_says_what_it_did_not_read(incident):
    result, _, _ = incident("-k", "INC_04", "--dbsec-containment-plan")
    plan = result.stdout.str()[result.stdout.str().index("dbsec containment plan"):]
    assert "revoke token" in plan
    assert "INCOMPLETE DATA" not in plan  # nothing the selected control needs is missing
    assert "only the data the selected INC controls need was read; not read: " in plan and "acls_jobs" in plan
