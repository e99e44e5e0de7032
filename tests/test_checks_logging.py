"""LOG controls against purpose-built tenants (tests/tenants/log_base.yaml and edits of it).

Both are account controls: ws1 has id 3001, ws2 id 3002.
"""

from __future__ import annotations

import pytest

from dbsec_helpers import outcome_of


def ids(result: dict) -> set[str]:
    return {f["resource_id"] for f in result["findings"]}


def cmk_required(pytester) -> str:
    path = pytester.path / "cmk.yaml"
    path.write_text("extends: default\nworkspace:\n  require_cmk: true\n")
    return str(path)


def ws(t: dict, name: str) -> dict:
    return next(w for w in t["account"]["workspaces"] if w["name"] == name)


def audit_cfg(t: dict) -> dict:
    return next(c for c in t["account"]["log_delivery"] if c["log_type"] == "AUDIT_LOGS")


def test_compliant_tenant_passes_every_log_control(audit, tenant, pytester):
    result, report = audit(tenant("log_base"), "-k", "test_LOG_", "--dbsec-baseline", cmk_required(pytester))
    assert {r["control_id"]: r["outcome"] for r in report["results"]} == {"LOG-01": "passed", "LOG-02": "passed"}, \
        result.stdout.str()


# -- LOG-01 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("change", ["disabled", "billing only", "none"])
def test_log_01_fails_without_an_enabled_audit_delivery(audit, tenant, change):
    t = tenant("log_base")
    if change == "disabled":
        audit_cfg(t)["status"] = "DISABLED"
    elif change == "billing only":
        t["account"]["log_delivery"] = [c for c in t["account"]["log_delivery"] if c["log_type"] != "AUDIT_LOGS"]
    else:
        t["account"]["log_delivery"] = []
    _, report = audit(t, "-k", "test_LOG_01")
    r = outcome_of(report, "LOG-01", "account")
    assert r["outcome"] == "failed" and ids(r) == {"acc-log-test"}
    assert r["findings"][0]["resource_type"] == "account"
    assert ("audit-all" in r["findings"][0]["seen"]) == (change == "disabled")


def test_log_01_lists_workspaces_a_filtered_delivery_leaves_out(audit, tenant):
    t = tenant("log_base")
    audit_cfg(t)["workspace_ids_filter"] = ["ws1"]
    _, report = audit(t, "-k", "test_LOG_01")
    r = outcome_of(report, "LOG-01", "account")
    assert r["outcome"] == "failed"
    # ws2 is not covered; a filtered delivery never includes account-level events
    assert ids(r) == {"3002", "acc-log-test"}
    by_id = {f["resource_id"]: f for f in r["findings"]}
    assert by_id["3002"]["resource_type"] == "workspace" and by_id["3002"]["resource_name"] == "ws2"
    assert "audit-all" in by_id["3002"]["seen"]
    assert "account-level" in by_id["acc-log-test"]["seen"]


def test_log_01_filtered_deliveries_together_cover_every_workspace(audit, tenant):
    t = tenant("log_base")
    audit_cfg(t)["workspace_ids_filter"] = ["ws1"]
    t["account"]["log_delivery"].append({**audit_cfg(t), "config_name": "audit-ws2", "config_id": "cfg-ws2",
                                         "workspace_ids_filter": ["ws2"]})
    _, report = audit(t, "-k", "test_LOG_01")
    r = outcome_of(report, "LOG-01", "account")
    assert r["outcome"] == "failed" and ids(r) == {"acc-log-test"}  # only the account-level events are missing
    # an account-wide configuration beside them covers everything
    t["account"]["log_delivery"].append({**audit_cfg(t), "config_name": "audit-account", "config_id": "cfg-acct",
                                         "workspace_ids_filter": []})
    _, report = audit(t, "-k", "test_LOG_01")
    assert outcome_of(report, "LOG-01", "account")["outcome"] == "passed"


# -- LOG-02 ----------------------------------------------------------------------------------------


def test_log_02_fails_for_a_workspace_without_any_cmk(audit, tenant, pytester):
    t = tenant("log_base")
    del ws(t, "ws2")["storage_customer_managed_key_id"]
    del ws(t, "ws1")["storage_customer_managed_key_id"]  # ws1 keeps its managed-services key: enough
    _, report = audit(t, "-k", "test_LOG_02", "--dbsec-baseline", cmk_required(pytester))
    r = outcome_of(report, "LOG-02", "account")
    assert r["outcome"] == "failed" and ids(r) == {"3002"}
    assert r["findings"][0]["resource_name"] == "ws2"


def test_log_02_is_skipped_unless_the_baseline_requires_cmk(audit, tenant):
    t = tenant("log_base")
    del ws(t, "ws2")["storage_customer_managed_key_id"]
    _, report = audit(t, "-k", "test_LOG_02")
    r = outcome_of(report, "LOG-02", "account")
    assert r["outcome"] == "skipped" and "workspace.require_cmk" in r["reason"]


def test_log_02_skips_on_azure(audit, tenant, pytester):
    t = tenant("log_base")
    t["account"]["cloud"] = "azure"
    del ws(t, "ws2")["storage_customer_managed_key_id"]
    _, report = audit(t, "-k", "test_LOG_02", "--dbsec-baseline", cmk_required(pytester))
    r = outcome_of(report, "LOG-02", "account")
    assert r["outcome"] == "skipped" and "Azure" in r["reason"]


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("route, errored", [
    ("GET /api/2.0/accounts/*/log-delivery", {"LOG-01"}),
    ("GET /api/2.0/accounts/*/workspaces/*/permissionassignments", {"LOG-01", "LOG-02"}),
])
def test_unreadable_data_makes_the_control_error(audit, tenant, pytester, route, errored):
    t = tenant("log_base")
    t["faults"] = [{"route": route, "status": 403}]
    result, report = audit(t, "-k", "test_LOG_", "--dbsec-baseline", cmk_required(pytester))
    assert result.ret == 1
    got = {r["control_id"]: r for r in report["results"]}
    assert {c for c, r in got.items() if r["outcome"] == "error"} == errored
    assert {c for c, r in got.items() if r["outcome"] == "passed"} == {"LOG-01", "LOG-02"} - errored
    for cid in errored:
        assert "403" in got[cid]["reason"] and "account admin" in got[cid]["reason"]


def test_without_account_credentials_log_controls_error(audit, tenant, pytester):
    _, report = audit(tenant("log_base"), "-k", "test_LOG_", "--dbsec-baseline", cmk_required(pytester), account=False)
    for cid in ("LOG-01", "LOG-02"):
        r = outcome_of(report, cid, "account")
        assert r["outcome"] == "error" and "account" in r["reason"]
