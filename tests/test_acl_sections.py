"""Object permissions are read per Permissions API type (``acls_jobs``, ``acls_clusters`` ...): a run
reads the ACLs of only the object types its selected controls judge, `dbsec access
--workspace-object-types` only those of the asked types, and a snapshot saved before the split (one
``object_acls`` section) still loads and replays to the same verdicts."""

from __future__ import annotations

import gzip
import json

import pytest
import yaml
from dbsec_helpers import outcome_of

from pytest_dbsec.cli import main
from pytest_dbsec.emulator import DEMO_TENANT
from pytest_dbsec.inventory import ACL_OBJECT_TYPES, ACL_SECTIONS, Inventory, acl_section

PERMISSIONS = "/api/2.0/permissions/"


def _permission_types(emu) -> set[str]:
    return {r.path[len(PERMISSIONS):].split("/", 1)[0] for r in emu.requests if r.path.startswith(PERMISSIONS)}


@pytest.fixture
def demo_tenant() -> dict:
    return yaml.safe_load(DEMO_TENANT.read_text())


def test_a_job_permission_control_reads_only_job_permissions(audit, demo_tenant):
    # the demo has clusters, policies, pools, pipelines and warehouses, whose ACLs JOB-03 does not judge
    result, report = audit(demo_tenant, "-k", "JOB_03", account=False)
    assert outcome_of(report, "JOB-03")["outcome"] in ("passed", "failed"), result.stdout.str()
    assert _permission_types(audit.emu) == {"jobs"}
    paths = {r.path for r in audit.emu.requests}
    assert not [p for p in paths if p.startswith(("/api/2.0/sql/warehouses", "/api/2.1/clusters"))]
    ws = audit.emu.tenant["account"]["workspaces"][0]
    job_reads = [r for r in audit.emu.requests if r.path.startswith(PERMISSIONS + "jobs/")]
    assert len(job_reads) == len(ws["jobs"])  # each job's ACL once


def test_a_policy_control_reads_policy_permissions_only(audit, demo_tenant):
    _, report = audit(demo_tenant, "-k", "CMP_10", account=False)
    assert outcome_of(report, "CMP-10")["outcome"] in ("passed", "failed")
    assert _permission_types(audit.emu) == {"cluster-policies"}


def test_inc03_reads_every_object_type_and_errors_on_the_one_it_cannot_read(audit, tenant, emulator):
    """INC-03 answers "which object permissions are left" across every type: it reads them all, and a
    type it could not read makes it ERROR naming that section, while the other INC answers stand."""
    emu = emulator(tenant("inc_base"))
    emu.add_fault("GET /api/2.0/permissions/clusters/*", status=403)
    _, report = audit(emu.tenant, "--dbsec-principal", "ci-deployer", emu=emu)
    assert _permission_types(emu) >= {"clusters", "jobs", "authorization"}
    r = outcome_of(report, "INC-03")
    assert r["outcome"] == "error" and "acls_clusters" in r["reason"] and "403" in r["reason"], r
    assert outcome_of(report, "INC-04")["outcome"] == "failed"  # tokens are still judged


def test_access_with_object_types_reads_only_those_types(emulator, tenant, access_profiles, capsys):
    emu = emulator(tenant("graph_base"))
    profiles = access_profiles(emu)

    rc = main(["access", "--principal", "etl-sp", "--scan-workspace-objects", "--workspace-object-types", "jobs",
               "--output", "json", *profiles])
    out, err = capsys.readouterr()
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["complete"] is True, doc["errors"]  # the types left out are not gaps
    assert {r["object_type"] for r in doc["workspace_object_permissions"]} == {"jobs"}
    assert _permission_types(emu) == {"jobs"}
    assert not [r for r in emu.requests if r.path.startswith(("/api/2.1/clusters", "/api/2.0/secrets"))]

    # all types: every type the tenant has is read
    emu.clear_requests()
    rc = main(["access", "--principal", "etl-sp", "--scan-workspace-objects", "--output", "json", *profiles])
    capsys.readouterr()
    assert rc == 0
    assert _permission_types(emu) >= {"jobs", "clusters", "pipelines", "authorization"}


def _as_legacy(snapshot: dict) -> dict:
    """A snapshot as written before the split: the per-type sections merged into ``object_acls``."""
    for ws in snapshot["workspaces"]:
        parts = [ws["sections"].pop(name) for name in ACL_SECTIONS if name in ws["sections"]]
        if not parts:
            continue
        merged = {"status": "ok", "error": None, "collected_at": parts[0]["collected_at"], "elapsed_s": 0.0,
                  "data": {"acls": {}, "vanished": []}, "calls": []}
        for p in parts:
            merged["data"]["acls"].update(p["data"]["acls"])
            merged["data"]["vanished"] += p["data"]["vanished"]
            merged["calls"] += p["calls"]
        ws["sections"]["object_acls"] = merged
    return snapshot


def _verdicts(report):
    return sorted((r["control_id"], r["target"], r["outcome"], json.dumps(r["findings"], sort_keys=True), r["reason"])
                  for r in report["results"])


def test_a_snapshot_with_the_old_object_acls_section_replays_to_the_same_verdicts(pytester):
    def run(*args):
        result = pytester.runpytest("-p", "no:cacheprovider", "--dbsec-report-dir", "out", *args)
        return result, json.loads((pytester.path / "out" / "findings.json").read_text())

    live_result, live = run("--dbsec-demo", "--dbsec-snapshot-out", "new.json.gz")
    snap = json.loads(gzip.decompress((pytester.path / "new.json.gz").read_bytes()))
    legacy = _as_legacy(snap)
    assert any("object_acls" in ws["sections"] for ws in legacy["workspaces"])
    (pytester.path / "old.json").write_text(json.dumps(legacy))

    inv = Inventory.load(pytester.path / "old.json")
    prod = inv.workspaces["prod"]
    assert "object_acls" not in prod.sections
    assert {n for n in prod.sections if n.startswith("acls_")} == set(ACL_SECTIONS)
    jobs = prod.section(acl_section("jobs"))
    assert jobs.data["acls"] and all(k.startswith("jobs/") for k in jobs.data["acls"])
    assert jobs.calls and all(c["path"].startswith(PERMISSIONS + "jobs/") for c in jobs.calls)

    replay_result, replay = run("--dbsec-replay", "old.json", "--dbsec-baseline", "demo")  # the demo's waivers
    assert replay_result.ret == live_result.ret
    assert _verdicts(replay) == _verdicts(live)
    # every object ACL control was judged on data, not errored for a missing section
    for control in ("JOB-03", "JOB-04", "CMP-10", "IAM-10"):
        assert all(r["outcome"] != "error" for r in replay["results"] if r["control_id"] == control), control


def test_an_old_object_acls_section_in_error_errors_every_type():
    snap = {"format": "pytest-dbsec/snapshot", "version": 1, "account": None, "workspaces": [
        {"name": "ws1", "kind": "workspace", "sections": {"object_acls": {
            "status": "error", "error": "GET /api/2.0/permissions/jobs/1 -> 403: PERMISSION_DENIED", "calls": []}}}]}
    ws = Inventory.from_json(snap).workspaces["ws1"]
    assert [ws.section(acl_section(t)).status for t in ACL_OBJECT_TYPES] == ["error"] * len(ACL_OBJECT_TYPES)
    assert "PERMISSION_DENIED" in ws.section("acls_clusters").error


LEGACY_CONTROL = """
import json
import pytest

@pytest.mark.dbsec(id="ORG-07", title="Old-style ACL control", severity="low", scope="workspace",
                   sections=["object_acls"], refs={"seeds": ["x"]}, rationale="r", remediation="m")
def test_ORG_07_old_style(workspace, findings):
    data = workspace.data("object_acls")
    assert sorted(data) == ["acls", "vanished"]
    for key, acl in data["acls"].items():
        findings.fail(resource_type=key.split("/")[0], resource_id=key, seen=str(len(acl["access_control_list"])),
                      expected="-")
    for key in data["vanished"]:
        findings.fail(resource_type="vanished", resource_id=key, seen="gone", expected="-")
    with pytest.raises(Exception, match="does not declare"):
        workspace.data("tokens")
"""


def test_a_control_declaring_the_old_object_acls_section_reads_the_merged_view(pytester):
    """``object_acls`` is a deprecated alias: it declares every acls_<type> section, and
    ``workspace.data("object_acls")`` returns them merged in the old shape; the run warns what to declare."""
    pytester.makepyfile(test_org=LEGACY_CONTROL)
    args = ("-p", "no:cacheprovider", "--dbsec-report-dir", "out", "-k", "ORG_07")
    result = pytester.runpytest("--dbsec-demo", "--dbsec-snapshot-out", "snap.json", *args)
    report = json.loads((pytester.path / "out" / "findings.json").read_text())
    out = result.stdout.str()
    assert "DeprecatedSectionWarning" in out and "data section 'object_acls' is deprecated" in out, out
    assert "declare only the acls_<type> sections the control judges" in out
    prod = outcome_of(report, "ORG-07", "prod")
    assert prod["outcome"] == "failed", prod["reason"]
    assert prod["control"]["sections"] == list(ACL_SECTIONS)
    # exactly what the per-type sections hold, merged: every type's ACLs under "<type>/<id>"
    inv = Inventory.load(pytester.path / "snap.json")
    expected = {k for name in ACL_SECTIONS for k in inv.workspaces["prod"].section(name).data["acls"]}
    got = {f["resource_id"] for f in prod["findings"] if f["resource_type"] != "vanished"}
    assert got == expected and len({k.split("/")[0] for k in got}) >= 3, got
    # a replay (of a new snapshot, or one saved before the split) gives the old-style control the same data
    legacy = _as_legacy(json.loads((pytester.path / "snap.json").read_text()))
    (pytester.path / "old.json").write_text(json.dumps(legacy))
    for snap in ("snap.json", "old.json"):
        pytester.runpytest("--dbsec-replay", snap, *args)
        replayed = json.loads((pytester.path / "out" / "findings.json").read_text())
        assert _verdicts(replayed) == _verdicts(report), snap


def test_the_old_object_acls_section_errors_when_one_type_cannot_be_read(pytester, audit, demo_tenant, emulator):
    pytester.makepyfile(test_org=LEGACY_CONTROL)
    emu = emulator(demo_tenant)
    emu.add_fault("GET /api/2.0/permissions/clusters/*", status=403)
    _, report = audit(emu.tenant, "-k", "ORG_07", account=False, emu=emu)
    r = outcome_of(report, "ORG-07")
    assert r["outcome"] == "error" and "acls_clusters" in r["reason"] and "403" in r["reason"], r["reason"]
