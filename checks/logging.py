"""LOG: audit log delivery and customer-managed keys (account controls).

Both read account data. LOG-02 is about each workspace, but a workspace's encryption keys are known
only to the account API (`account_workspaces`), so it is an account control that lists each offending
workspace as a resource (type ``workspace``, id = workspace id).
"""

from __future__ import annotations

import pytest

# workspaces in these states serve nobody; any other status (including one we do not know) is judged
DEAD_WORKSPACE = {"CANCELLING", "FAILED", "BANNED", "NOT_PROVISIONED"}


def _live_workspaces(account) -> list[dict]:
    return [ws for ws in account.data("account_workspaces")["workspaces"]
            if ws.get("workspace_status") not in DEAD_WORKSPACE]


def _ws_name(ws: dict) -> str:
    return ws.get("workspace_name") or ws.get("deployment_name") or str(ws.get("workspace_id"))


@pytest.mark.dbsec(
    id="LOG-01", title="Audit log delivery", severity="high", scope="account",
    sections=["account_logging", "account_workspaces"],
    refs={"SAT": ["GOV-3"], "SOC2": ["CC7.2"], "NIST": ["AU-2"]},
    rationale="Audit logs delivered to the organisation's own storage are the record of who did what; "
              "without them an incident cannot be investigated and nothing is kept beyond the system tables' "
              "retention.",
    remediation="Create an account-wide audit log delivery (no workspace filter, so new workspaces and "
                "account-level events are included): `databricks account log-delivery create --json "
                "'{\"log_delivery_configuration\": {\"log_type\": \"AUDIT_LOGS\", \"output_format\": \"JSON\", "
                "\"credentials_id\": ..., \"storage_configuration_id\": ...}}'` (POST "
                "/api/2.0/accounts/{account_id}/log-delivery); re-enable a disabled one with PATCH "
                ".../log-delivery/{config_id} status ENABLED.",
)
def test_LOG_01_audit_log_delivery(account, findings):
    configs = account.data("account_logging")["log_delivery_configurations"]
    # an unknown status or log type arrives as None from the SDK: it never counts as enabled audit delivery
    audit = [c for c in configs if c.get("log_type") == "AUDIT_LOGS" and c.get("status") == "ENABLED"]
    if not audit:
        disabled = [c.get("config_name") or c.get("config_id") for c in configs if c.get("log_type") == "AUDIT_LOGS"]
        findings.fail(resource_type="account", resource_id=account.id or "account",
                      resource_name="audit log delivery",
                      seen="no enabled AUDIT_LOGS log delivery configuration"
                           + (f" (disabled or unknown status: {', '.join(map(str, disabled))})" if disabled else ""),
                      expected="an enabled AUDIT_LOGS log delivery configuration")
        return
    if any(not c.get("workspace_ids_filter") for c in audit):
        return  # an account-wide configuration covers every workspace and the account-level events
    covered = {int(w) for c in audit for w in c["workspace_ids_filter"] if str(w).lstrip("-").isdigit()}
    via = ", ".join(str(c.get("config_name") or c.get("config_id")) for c in audit)
    for ws in _live_workspaces(account):
        if ws.get("workspace_id") not in covered:
            findings.fail(resource_type="workspace", resource_id=ws.get("workspace_id", "?"),
                          resource_name=_ws_name(ws),
                          seen=f"not in the workspace_ids_filter of any enabled AUDIT_LOGS configuration ({via})",
                          expected="audit logs delivered for every workspace", configurations=via)
    # a filtered configuration never delivers account-level events (logins to the account console,
    # account admin changes), whatever workspaces it lists
    findings.fail(resource_type="account", resource_id=account.id or "account",
                  resource_name="account-level audit events",
                  seen=f"every enabled AUDIT_LOGS configuration has a workspace filter ({via}), so account-level "
                       f"events are not delivered",
                  expected="an enabled AUDIT_LOGS configuration without workspace_ids_filter",
                  configurations=via)


@pytest.mark.dbsec(
    id="LOG-02", title="Customer-managed keys", severity="low", scope="account",
    sections=["account_workspaces"], refs={"SAT": ["DP-3"]},
    rationale="Customer-managed keys let the organisation control, rotate and revoke the encryption of "
              "notebooks, results and workspace storage; required where the baseline says so.",
    remediation="Register a key configuration (`databricks account encryption-keys create`, POST "
                "/api/2.0/accounts/{account_id}/customer-managed-keys) and attach it to the workspace as "
                "managed_services_customer_managed_key_id and/or storage_customer_managed_key_id (PATCH "
                "/api/2.0/accounts/{account_id}/workspaces/{workspace_id}).",
)
def test_LOG_02_customer_managed_keys(account, baseline, findings):
    if not baseline.get("workspace.require_cmk"):
        pytest.skip("the baseline does not require customer-managed keys (workspace.require_cmk: false)")
    workspaces = _live_workspaces(account)
    if not workspaces:
        pytest.skip("the account has no live workspace to judge")
    judged = [ws for ws in workspaces if str(ws.get("cloud") or "").lower() != "azure"]
    if not judged:
        pytest.skip("every workspace of this account is on Azure, where customer-managed keys are set on the "
                    "Azure resource and the account API does not show them")
    for ws in judged:
        if not ws.get("managed_services_customer_managed_key_id") and not ws.get("storage_customer_managed_key_id"):
            findings.fail(resource_type="workspace", resource_id=ws.get("workspace_id", "?"),
                          resource_name=_ws_name(ws),
                          seen="no managed-services or storage customer-managed key",
                          expected="managed_services_customer_managed_key_id or storage_customer_managed_key_id",
                          cloud=ws.get("cloud"), pricing_tier=ws.get("pricing_tier"))
