"""CMP-01..CMP-11 end to end: tenant -> emulator -> real SDK -> controls -> findings.json.

Every scenario starts from tests/tenants/cmp_base.yaml (every CMP control passes) and adds the bad
things it is about; one "bad" tenant carries a failure for every control, each asserted by the exact
offending resource ids."""

from __future__ import annotations

import json

import pytest
from dbsec_helpers import ids, outcome, outcome_of

from pytest_dbsec.credentials import ELLIPSIS

CMP = [f"CMP-{i:02d}" for i in range(1, 12)]


@pytest.fixture
def judge(judge_for):
    return judge_for("cmp_base", ["-k", "CMP_0 or CMP_1"])




def cluster_ids(emu) -> dict[str, str]:
    return {c["cluster_name"]: c["cluster_id"] for c in emu.tenant["account"]["workspaces"][0]["clusters"]}


def policy_ids(emu) -> dict[str, str]:
    return {p["name"]: p["policy_id"] for p in emu.tenant["account"]["workspaces"][0]["cluster_policies"]}


def job_ids(emu) -> dict[str, int]:
    return {j["settings"]["name"]: j["job_id"] for j in emu.tenant["account"]["workspaces"][0]["jobs"]}


def test_compliant_tenant_passes_every_cmp_control(judge):
    # the base includes a JOB cluster with no policy, no isolation, no auto-termination, no encryption,
    # running for 30 days: job clusters are judged through their job definitions, not here
    report, _ = judge()
    assert {r["control_id"]: r["outcome"] for r in report["results"]} == {c: "passed" for c in CMP}


def _cluster(name, **kw):
    base = {"cluster_name": name, "creator_user_name": "bob@corp.example.com", "cluster_source": "UI",
            "state": "TERMINATED", "spark_version": "15.4.x-scala2.12", "node_type_id": "m5.xlarge",
            "autotermination_minutes": 60, "data_security_mode": "USER_ISOLATION", "policy_id": "Shared Compute",
            "enable_local_disk_encryption": True, "start_time": "-1d"}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def _bad(t, ws):
    ws["clusters"] += [
        _cluster("no-policy", policy_id=None),
        _cluster("odd-source", cluster_source="SOME_OTHER", policy_id=None),  # unknown to the SDK: judged
        _cluster("none-mode", data_security_mode="NONE"),
        _cluster("legacy-mode", cluster_source="API", data_security_mode="LEGACY_TABLE_ACL"),
        _cluster("unset-mode", data_security_mode=None),
        _cluster("never-stops", autotermination_minutes=0),
        _cluster("slow-stop", autotermination_minutes=480),
        _cluster("no-autoterm-field", autotermination_minutes=None),
        _cluster("unencrypted", enable_local_disk_encryption=False),
        _cluster("old-runtime", spark_version="9.1.x-scala2.12"),
        _cluster("long-running", state="RUNNING", start_time="-30d"),
        _cluster("leaky", spark_env_vars={"AWS_ACCESS_KEY_ID": "AKIA" + "ABCDEFGHIJKLMNOP",
                                          "OK_REF": "{{secrets/etl/key}}"},
                 spark_conf={"spark.hadoop.fs.s3a.secret.key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYTESTKEY000",
                             "spark.sql.shuffle.partitions": "200"}),
        _cluster("dbfs-init", init_scripts=[{"dbfs": {"destination": "dbfs:/init/a.sh"}},
                                            {"workspace": {"destination": "/Shared/ok.sh"}}]),
        _cluster("job-old", cluster_source="JOB", spark_version="9.1.x-scala2.12",
                 init_scripts=[{"dbfs": {"destination": "dbfs:/init/job.sh"}}]),
    ]
    ws["cluster_policies"] += [
        {"name": "Open", "definition": {"spark_version": {"type": "unlimited"}}},
        {"name": "Loose", "definition": {"data_security_mode": {"type": "allowlist", "values": ["NONE", "USER_ISOLATION"]},
                                         "autotermination_minutes": {"type": "range", "maxValue": 60}}},
        {"name": "Not an object", "definition": "[]"},
    ]
    ws["permissions"]["cluster-policies/Open"] = [{"group_name": "users", "permission_level": "CAN_USE"}]
    ws["permissions"]["cluster-policies/Loose"] = [{"group_name": "data-engineers", "permission_level": "CAN_USE"}]
    ws["permissions"]["cluster-policies/Not an object"] = [{"group_name": "users", "permission_level": "CAN_USE"}]
    ws["jobs"].append({
        "creator_user_name": "bob@corp.example.com",
        "settings": {
            "name": "finance",
            "job_clusters": [{"job_cluster_key": "c", "new_cluster": {
                "spark_version": "10.4.x-scala2.12", "node_type_id": "m5.xlarge",
                "spark_env_vars": {"LEDGER_DB_PASSWORD": "Tr0ub4dor-and-3"},
                "init_scripts": [{"dbfs": {"destination": "dbfs:/init/finance.sh"}}]}}],
            "tasks": [{"task_key": "t", "job_cluster_key": "c", "notebook_task": {"notebook_path": "/Shared/f"}},
                      {"task_key": "u", "new_cluster": {"spark_version": "auto:latest-lts", "node_type_id": "m5.xlarge"},
                       "notebook_task": {"notebook_path": "/Shared/g"}}],
        }})
    ws["pipelines"] = [{"name": "dlt", "creator_user_name": "alice@corp.example.com",
                        "run_as": {"service_principal_name": "etl-sp"},
                        "spec": {"clusters": [{"label": "default", "spark_conf": {
                            "fs.azure.account.key.acct.dfs.core.windows.net": "A1b2" * 21 + "Zz=="}}]}}]
    ws["conf"]["enableDeprecatedGlobalInitScripts"] = "true"
    ws["settings"]["automatic_cluster_update"] = {"enabled": False, "can_toggle": True}


def test_bad_tenant_fails_every_cmp_control_for_the_offending_resources(judge):
    report, emu = judge(_bad)
    c, p, j = cluster_ids(emu), policy_ids(emu), job_ids(emu)
    assert all(outcome(report, x) == "failed" for x in CMP)
    assert ids(report, "CMP-01") == {c["no-policy"], c["odd-source"]}
    assert ids(report, "CMP-02") == {c["none-mode"], c["legacy-mode"], c["unset-mode"]}
    assert ids(report, "CMP-03") == {c["never-stops"], c["slow-stop"], c["no-autoterm-field"]}
    assert ids(report, "CMP-04") == {p["Open"], p["Loose"], p["Not an object"]}
    cmp04 = {f["resource_name"]: f["seen"] for f in outcome_of(report, "CMP-04", "ws1")["findings"]}
    assert "not a JSON object" in cmp04["Not an object"]
    assert "minValue" not in cmp04["Open"] and '"NONE"' in cmp04["Loose"]
    pipeline_id = emu.tenant["account"]["workspaces"][0]["pipelines"][0]["pipeline_id"]
    assert ids(report, "CMP-05") == {
        f"{c['leaky']}:spark_env_vars.AWS_ACCESS_KEY_ID", f"{c['leaky']}:spark_conf.spark.hadoop.fs.s3a.secret.key",
        f"{j['finance']}:job_clusters[c].new_cluster.spark_env_vars.LEDGER_DB_PASSWORD",
        f"{pipeline_id}:clusters[default].spark_conf.fs.azure.account.key.acct.dfs.core.windows.net"}
    cmp05 = outcome_of(report, "CMP-05", "ws1")["findings"]
    assert {f["details"]["kinds"][0] for f in cmp05} == {"aws_access_key_id", "aws_secret_key", "password",
                                                         "azure_storage_key"}
    assert all(f["seen"].endswith(f"{ELLIPSIS})") for f in cmp05)
    text = json.dumps(report)
    for secret in ("ABCDEFGHIJKLMNOP", "bPxRfiCYTESTKEY00", "Tr0ub4dor-and-3", "A1b2A1b2A1b2"):
        assert secret not in text  # location and a 4-character preview only
    assert ids(report, "CMP-06") == {c["dbfs-init"], c["job-old"], str(j["finance"]),
                                     "enableDeprecatedGlobalInitScripts"}
    assert ids(report, "CMP-07") == {c["unencrypted"]}
    # the JOB cluster's runtime is judged through its job definition; auto:latest-lts is current
    assert ids(report, "CMP-08") == {c["old-runtime"], str(j["finance"])}
    assert ids(report, "CMP-09") == {c["long-running"]}
    assert ids(report, "CMP-10") == {p["Open"], p["Not an object"]}  # Loose is only for a named group
    assert ids(report, "CMP-11") == {"automatic_cluster_update"}


def test_snapshot_keeps_no_credential_from_cluster_or_job_config(judge, pytester):
    def edit(t, ws):
        ws["clusters"][0]["spark_env_vars"]["LEAK"] = "dapi" + "0a1b" * 8
        ws["jobs"][0]["settings"]["tasks"][0]["notebook_task"]["base_parameters"]["pw"] = "jdbc:x://h;password=Sn0wfl4ke!"

    judge(edit, "-k", "CMP_05", "--dbsec-snapshot-out", "snap.json")
    raw = (pytester.path / "snap.json").read_text()
    assert "0a1b0a1b" not in raw and "Sn0wfl4ke" not in raw
    assert "<redacted by pytest-dbsec: databricks_pat>" in raw


def test_baseline_thresholds_change_the_verdicts(judge):
    report, emu = judge(None, baseline={"compute": {"max_autotermination_minutes": 30, "require_node_allowlist": True,
                                                    "max_uptime_days": 1}})
    c, p = cluster_ids(emu), policy_ids(emu)
    assert ids(report, "CMP-03") == {c["shared"], c["bob-api"]}  # 60 and 120 minutes > 30
    assert ids(report, "CMP-04") == {p["Shared Compute"], p["Personal"]}  # maxValue 120 / fixed 60 > 30
    assert ids(report, "CMP-09") == {c["shared"]}  # restarted 2 days ago

    def unrestricted_nodes(t, ws):
        ws["cluster_policies"].append({"name": "Any node", "definition": {
            "data_security_mode": {"type": "fixed", "value": "USER_ISOLATION"},
            "autotermination_minutes": {"type": "fixed", "value": 30}}})

    report, emu = judge(unrestricted_nodes, "-k", "CMP_04", baseline={"compute": {"require_node_allowlist": True}})
    assert ids(report, "CMP-04") == {policy_ids(emu)["Any node"]}  # Personal fixes a pool: restricted
    report, _ = judge(unrestricted_nodes, "-k", "CMP_04")
    assert outcome(report, "CMP-04") == "passed"  # node allowlist not required by default


def test_cmp_07_is_aws_only(judge):
    def azure(t, ws):
        t["account"]["cloud"] = "azure"
        ws["clusters"][0]["enable_local_disk_encryption"] = False
        del ws["clusters"][0]["aws_attributes"]

    report, _ = judge(azure, "-k", "CMP_07")
    r = outcome_of(report, "CMP-07", "ws1")
    assert r["outcome"] == "skipped" and "azure" in r["reason"]


def test_cmp_11_unset_fails_and_unavailable_skips(judge):
    def unset(t, ws):
        del ws["settings"]["automatic_cluster_update"]

    report, _ = judge(unset, "-k", "CMP_11")
    r = outcome_of(report, "CMP-11", "ws1")
    assert r["outcome"] == "failed" and "never set" in r["findings"][0]["seen"]
    report, _ = judge(None, "-k", "CMP_11", faults=[
        ("GET /api/2.0/settings/types/automatic_cluster_update/names/default",
         {"status": 404, "error_code": "ENDPOINT_NOT_FOUND", "message": "No API found"})])
    assert outcome(report, "CMP-11") == "skipped"


def test_cmp_06_without_the_conf_key_still_judges_clusters(judge):
    def edit(t, ws):
        ws["conf_unsupported"] = ["enableDeprecatedGlobalInitScripts"]
        del ws["conf"]["enableDeprecatedGlobalInitScripts"]
        ws["clusters"][1]["init_scripts"] = [{"dbfs": {"destination": "dbfs:/x.sh"}}]

    report, emu = judge(edit, "-k", "CMP_06")
    assert ids(report, "CMP-06") == {cluster_ids(emu)["bob-api"]}


def test_unreadable_data_makes_cmp_controls_error_with_the_reason(judge):
    report, _ = judge(None, faults=[("GET /api/2.1/clusters/list", {"status": 403})])
    for cid in CMP[:10]:  # CMP-10 reads acls_cluster_policies, which needs compute too
        r = outcome_of(report, cid, "ws1")
        assert r["outcome"] == "error" and "clusters/list" in r["reason"], (cid, r)
    assert outcome(report, "CMP-11") == "passed"
    report, _ = judge(None, faults=[("GET /api/2.2/jobs/list", {"status": 500})])
    assert {cid: outcome(report, cid) for cid in ("CMP-05", "CMP-06", "CMP-08", "CMP-01")} == {
        "CMP-05": "error", "CMP-06": "error", "CMP-08": "error", "CMP-01": "passed"}
    report, _ = judge(None, faults=[("GET /api/2.0/permissions/cluster-policies/*", {"status": 403})])
    r = outcome_of(report, "CMP-10", "ws1")
    assert r["outcome"] == "error" and "PERMISSION_DENIED" in r["reason"]


def test_non_admin_cannot_read_settings_or_conf(judge):
    report, _ = judge(None, "-k", "CMP_11 or CMP_06", principal="alice@corp.example.com")
    for cid in ("CMP-06", "CMP-11"):
        r = outcome_of(report, cid, "ws1")
        assert r["outcome"] == "error" and "403" in r["reason"], r
