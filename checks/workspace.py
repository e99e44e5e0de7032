"""WS: workspace hardening -- data exfiltration paths, legacy features, view ACLs, audit verbosity.

Two sources:

* ``workspace_conf``: free-form string values ("true"/"false"), ``null`` when never set. An unset key
  means the Databricks default applies, so the catalog's wording decides: "`key` not false" fails an
  unset key (the default is on), "`key` not true" fails it too (the default is off), and "explicitly
  false" (WS-12) fails only the literal "false". A key this workspace does not know (``unavailable``)
  is a skip with the reason. Any value other than the expected one (a typo, "yes") fails.
* ``settings``: the raw JSON of each setting type. ``unset`` means the default applies; ``unavailable``
  means this workspace or cloud has no such setting (skip). A value of the wrong shape or type fails.
"""

from __future__ import annotations

import json

import pytest

CONF_REMEDIATION = ("`databricks workspace-conf set-status --json '{{\"{key}\": \"{value}\"}}'` "
                    "(PATCH /api/2.0/workspace-conf)")

# settings type -> the response field holding its value object
SETTING_FIELDS = {
    "sql_results_download": "boolean_val",
    "disable_legacy_dbfs": "disable_legacy_dbfs",
    "disable_legacy_access": "disable_legacy_access",
    "shield_csp_enablement_ws_db": "compliance_security_profile_workspace",
    "shield_esm_enablement_ws_db": "enhanced_security_monitoring_workspace",
}


def _fix(key: str, value: str) -> str:
    return CONF_REMEDIATION.format(key=key, value=value)


# -- workspace-conf ------------------------------------------------------------------------------


def _conf(workspace, key: str):
    """(available, raw value) of a workspace-conf key."""
    conf = workspace.data("workspace_conf")
    if key in conf.get("unavailable", []):
        return False, None
    return True, conf["values"].get(key)


def _norm(raw) -> str | None:
    return None if raw is None else str(raw).strip().lower()


def _judge_conf(workspace, findings, key: str, want: str, default_note: str) -> None:
    """Fail unless the key is set to `want` ("true"/"false"); unset counts as the default (`default_note`)."""
    available, raw = _conf(workspace, key)
    if not available:
        pytest.skip(f"workspace-conf key {key} does not exist on this workspace or cloud")
    if _norm(raw) == want:
        return
    findings.fail(resource_type="workspace-conf", resource_id=key, resource_name=f"workspace {workspace.name}",
                  seen=f"{key} unset ({default_note})" if raw is None else f"{key} {raw!r}",
                  expected=f'{key} "{want}"')


# -- settings ------------------------------------------------------------------------------------


def _setting(workspace, name: str) -> tuple[str, object]:
    """("unavailable", reason) | ("unset", None) | ("set", the inner value object or None)."""
    s = workspace.data("settings")
    if name in (s.get("unavailable") or {}):
        return "unavailable", s["unavailable"][name]
    if name in (s.get("unset") or []) or name not in (s.get("values") or {}):
        return "unset", None
    return "set", (s["values"][name] or {}).get(SETTING_FIELDS[name])


def _field(obj, key: str):
    """A field of a setting's value object; None when the object or the field is missing."""
    return obj.get(key) if isinstance(obj, dict) else None


def _shown(obj) -> str:
    return json.dumps(obj, sort_keys=True) if obj is not None else "no value object"


def _fail_setting(findings, workspace, name: str, seen: str, expected: str, **details) -> None:
    findings.fail(resource_type="setting", resource_id=name, resource_name=f"workspace {workspace.name}",
                  seen=seen, expected=expected, **details)


def _judge_bool_setting(workspace, findings, name: str, key: str, want: bool, default: bool,
                        what: str) -> bool:
    """Fail unless setting `name`'s `key` is `want`; unset means `default`. False when unavailable."""
    state, obj = _setting(workspace, name)
    if state == "unavailable":
        return False
    expected = f"{key} {str(want).lower()} ({what})"
    if state == "unset":
        if default != want:
            _fail_setting(findings, workspace, name, seen=f"unset (the default, {str(default).lower()}, applies)",
                          expected=expected)
        return True
    value = _field(obj, key)
    if value is want:
        return True
    if isinstance(value, bool):
        seen = f"{key} {str(value).lower()}"
    else:
        # the wrong shape or a value we cannot read: never a pass
        seen = f"{key} unreadable in {_shown(obj)}"
    _fail_setting(findings, workspace, name, seen=seen, expected=expected)
    return True


def _skip_unavailable(workspace, names) -> None:
    reasons = {n: _setting(workspace, n)[1] for n in names}
    pytest.skip("settings not available on this workspace or cloud: "
                + "; ".join(f"{n} ({r})" for n, r in reasons.items()))


# -- controls ------------------------------------------------------------------------------------


@pytest.mark.dbsec(
    id="WS-01", title="Results download disabled", severity="medium", scope="workspace",
    sections=["workspace_conf"], refs={"SAT": ["DP-5"]},
    rationale="Downloading notebook results moves data out of the governed platform to unmanaged laptops.",
    remediation="Disable it: " + _fix("enableResultsDownloading", "false")
                + " (also the settings API type enable-results-downloading).",
)
def test_WS_01_results_download_disabled(workspace, findings):
    _judge_conf(workspace, findings, "enableResultsDownloading", "false", "download allowed by default")


@pytest.mark.dbsec(
    id="WS-02", title="Notebook export disabled", severity="low", scope="workspace",
    sections=["workspace_conf"], refs={"SAT": ["DP-6"]},
    rationale="Exported notebooks carry code, embedded results and sometimes credentials out of the workspace.",
    remediation="Disable it: " + _fix("enableExportNotebook", "false")
                + " (also the settings API type enable-export-notebook).",
)
def test_WS_02_notebook_export_disabled(workspace, findings):
    _judge_conf(workspace, findings, "enableExportNotebook", "false", "export allowed by default")


@pytest.mark.dbsec(
    id="WS-03", title="Notebook table clipboard disabled", severity="low", scope="workspace",
    sections=["workspace_conf"], refs={"SAT": ["DP-7"]},
    rationale="Copying result tables to the clipboard is an unlogged way to take data out of the workspace.",
    remediation="Disable it: " + _fix("enableNotebookTableClipboard", "false")
                + " (also the settings API type enable-notebook-table-clipboard).",
)
def test_WS_03_notebook_table_clipboard_disabled(workspace, findings):
    _judge_conf(workspace, findings, "enableNotebookTableClipboard", "false", "clipboard allowed by default")


@pytest.mark.dbsec(
    id="WS-04", title="Notebook results stored in customer account", severity="medium", scope="workspace",
    sections=["workspace_conf"], refs={"SAT": ["DP-8"]},
    rationale="Interactive notebook results are kept in the Databricks-managed control plane unless the "
              "workspace stores them in the customer's own storage, under the customer's keys and retention.",
    remediation="Store them in the workspace storage account: "
                + _fix("storeInteractiveNotebookResultsInCustomerAccount", "true") + ".",
)
def test_WS_04_notebook_results_stored_in_customer_account(workspace, findings):
    _judge_conf(workspace, findings, "storeInteractiveNotebookResultsInCustomerAccount", "true",
                "results kept in the control plane by default")


@pytest.mark.dbsec(
    id="WS-05", title="FileStore endpoint disabled", severity="medium", scope="workspace",
    sections=["workspace_conf"], refs={"SAT": ["DP-9"]},
    rationale="The /FileStore endpoint serves DBFS files over HTTP to any workspace user's browser session: "
              "an easy path for data to leave.",
    remediation="Disable it: " + _fix("enableFileStoreEndpoint", "false") + ".",
)
def test_WS_05_filestore_endpoint_disabled(workspace, findings):
    _judge_conf(workspace, findings, "enableFileStoreEndpoint", "false", "endpoint on by default")


@pytest.mark.dbsec(
    id="WS-06", title="DBFS file browser disabled", severity="medium", scope="workspace",
    sections=["workspace_conf"], refs={"SAT": ["DP-13"]},
    rationale="The DBFS browser lets any user browse and download DBFS root files, which carry no "
              "Unity Catalog permissions.",
    remediation="Disable it: " + _fix("enableDbfsFileBrowser", "false") + ".",
)
def test_WS_06_dbfs_file_browser_disabled(workspace, findings):
    _judge_conf(workspace, findings, "enableDbfsFileBrowser", "false", "not explicitly disabled")


@pytest.mark.dbsec(
    id="WS-07", title="SQL results download disabled", severity="medium", scope="workspace",
    sections=["settings"], refs={"SAT": ["DP-11"]},
    rationale="Downloading SQL editor and dashboard results moves data out of the governed platform.",
    remediation="Disable it: `databricks settings sql-results-download update --json "
                "'{\"setting\": {\"boolean_val\": {\"value\": false}}, \"field_mask\": \"boolean_val.value\", "
                "\"allow_missing\": true}'` (PATCH /api/2.0/settings/types/sql_results_download/names/default).",
)
def test_WS_07_sql_results_download_disabled(workspace, findings):
    if not _judge_bool_setting(workspace, findings, "sql_results_download", "value", want=False, default=True,
                               what="SQL results download off"):
        _skip_unavailable(workspace, ["sql_results_download"])


@pytest.mark.dbsec(
    id="WS-08", title="Legacy DBFS and legacy access disabled", severity="medium", scope="workspace",
    sections=["settings"], refs={"SAT": ["DP-10", "GOV-37"]},
    rationale="The DBFS root and mounts, Hive metastore and no-isolation compute bypass Unity Catalog "
              "governance; disabling them closes those paths.",
    remediation="Disable them: PATCH /api/2.0/settings/types/disable_legacy_dbfs/names/default and "
                ".../disable_legacy_access/names/default with value true (`databricks settings disable-legacy-dbfs "
                "update`, `databricks settings disable-legacy-access update`); new workspaces follow the account "
                "setting disable_legacy_features.",
)
def test_WS_08_legacy_dbfs_and_legacy_access_disabled(workspace, findings):
    judged = [_judge_bool_setting(workspace, findings, name, "value", want=True, default=False,
                                  what=f"{name.replace('_', ' ')} on")
              for name in ("disable_legacy_dbfs", "disable_legacy_access")]
    if not any(judged):
        _skip_unavailable(workspace, ["disable_legacy_dbfs", "disable_legacy_access"])


@pytest.mark.dbsec(
    id="WS-09", title="Verbose audit logs", severity="medium", scope="workspace",
    sections=["workspace_conf"], refs={"SAT": ["GOV-15"]},
    rationale="Without verbose audit logs the commands run in notebooks and SQL are not recorded, so an "
              "investigation cannot tell what a compromised identity did.",
    remediation="Enable them: " + _fix("enableVerboseAuditLogs", "true") + ".",
)
def test_WS_09_verbose_audit_logs(workspace, findings):
    _judge_conf(workspace, findings, "enableVerboseAuditLogs", "true", "off by default")


@pytest.mark.dbsec(
    id="WS-10", title="Git repos allowlist", severity="medium", scope="workspace",
    sections=["workspace_conf"], refs={"SAT": ["INFO-42"]},
    rationale="Without an allowlist users can clone from and push code and data to any Git host.",
    remediation="Restrict Git folders to approved remotes: " + _fix("enableProjectsAllowList", "true")
                + " and set projectsAllowList to the approved URL prefixes.",
)
def test_WS_10_git_repos_allowlist(workspace, findings):
    _judge_conf(workspace, findings, "enableProjectsAllowList", "true", "no allowlist by default")


@pytest.mark.dbsec(
    id="WS-11", title="Compliance security profile / enhanced monitoring", severity="low", scope="workspace",
    sections=["settings"], refs={"SAT": ["INFO-39", "INFO-40"]},
    rationale="The compliance security profile hardens compute images and encrypts traffic; enhanced security "
              "monitoring adds host intrusion and malware detection. Required where the baseline says so.",
    remediation="Enable them: PATCH /api/2.0/settings/types/shield_csp_enablement_ws_db/names/default "
                "(compliance_security_profile_workspace.is_enabled true, with the compliance standards) and "
                ".../shield_esm_enablement_ws_db/names/default (enhanced_security_monitoring_workspace.is_enabled "
                "true); `databricks settings compliance-security-profile update`.",
)
def test_WS_11_compliance_security_profile_enhanced_monitoring(workspace, baseline, findings):
    if not baseline.get("workspace.require_csp"):
        pytest.skip("the baseline does not require the compliance security profile (workspace.require_csp: false)")
    judged = [
        _judge_bool_setting(workspace, findings, "shield_csp_enablement_ws_db", "is_enabled", want=True,
                            default=False, what="compliance security profile on"),
        _judge_bool_setting(workspace, findings, "shield_esm_enablement_ws_db", "is_enabled", want=True,
                            default=False, what="enhanced security monitoring on"),
    ]
    if not any(judged):
        _skip_unavailable(workspace, ["shield_csp_enablement_ws_db", "shield_esm_enablement_ws_db"])


VIEW_ACL_KEYS = ("enableJobViewAcls", "enforceClusterViewAcls", "enforceWorkspaceViewAcls")


@pytest.mark.dbsec(
    id="WS-12", title="View ACLs enforced", severity="high", scope="workspace",
    sections=["workspace_conf"], refs={"SAT": ["INFO-8", "INFO-9", "INFO-10"]},
    rationale="With view ACLs off every user can see every job, cluster and workspace object, including "
              "run output, parameters and code.",
    remediation="Turn them back on: `databricks workspace-conf set-status --json '{\"enableJobViewAcls\": \"true\", "
                "\"enforceClusterViewAcls\": \"true\", \"enforceWorkspaceViewAcls\": \"true\"}'` "
                "(PATCH /api/2.0/workspace-conf).",
)
def test_WS_12_view_acls_enforced(workspace, findings):
    judged = 0
    for key in VIEW_ACL_KEYS:
        available, raw = _conf(workspace, key)
        if not available:
            continue
        judged += 1
        # only an explicit "false" turns them off: unset keeps the default (enforced)
        if _norm(raw) == "false":
            findings.fail(resource_type="workspace-conf", resource_id=key, resource_name=f"workspace {workspace.name}",
                          seen=f"{key} {raw!r}", expected=f'{key} "true" or unset (enforced by default)')
    if not judged:
        pytest.skip(f"workspace-conf keys {', '.join(VIEW_ACL_KEYS)} do not exist on this workspace or cloud")


@pytest.mark.dbsec(
    id="WS-13", title="Web terminal disabled", severity="low", scope="workspace",
    sections=["workspace_conf"], refs={"seeds": ["hardening"]},
    rationale="The web terminal gives a shell on the cluster driver, outside notebook auditing; where the "
              "baseline does not allow it, it must be off.",
    remediation="Disable it: " + _fix("enableWebTerminal", "false") + ".",
)
def test_WS_13_web_terminal_disabled(workspace, baseline, findings):
    if baseline.get("workspace.allow_web_terminal"):
        pytest.skip("the baseline allows the web terminal (workspace.allow_web_terminal: true)")
    # unset: the web terminal is on by default [verify], so unset fails
    _judge_conf(workspace, findings, "enableWebTerminal", "false", "on by default [verify]")
