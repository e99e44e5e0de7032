"""WS controls against purpose-built tenants (tests/tenants/ws_base.yaml and edits of it)."""

from __future__ import annotations

import pytest

from dbsec_helpers import outcome_of

WS = [f"WS-{i:02d}" for i in range(1, 14)]
STRICT = "workspace:\n  require_csp: true\n  allow_web_terminal: false\n"

# workspace-conf controls: control -> key, the compliant value
CONF = {
    "WS-01": ("enableResultsDownloading", "false"),
    "WS-02": ("enableExportNotebook", "false"),
    "WS-03": ("enableNotebookTableClipboard", "false"),
    "WS-04": ("storeInteractiveNotebookResultsInCustomerAccount", "true"),
    "WS-05": ("enableFileStoreEndpoint", "false"),
    "WS-06": ("enableDbfsFileBrowser", "false"),
    "WS-09": ("enableVerboseAuditLogs", "true"),
    "WS-10": ("enableProjectsAllowList", "true"),
    "WS-13": ("enableWebTerminal", "false"),
}
VIEW_ACLS = ("enableJobViewAcls", "enforceClusterViewAcls", "enforceWorkspaceViewAcls")
SETTINGS = ("sql_results_download", "disable_legacy_dbfs", "disable_legacy_access",
            "shield_csp_enablement_ws_db", "shield_esm_enablement_ws_db")


def ids(result: dict) -> set[str]:
    return {f["resource_id"] for f in result["findings"]}


def outcomes(report: dict) -> dict[str, str]:
    return {r["control_id"]: r["outcome"] for r in report["results"]}


def strict(pytester) -> str:
    path = pytester.path / "ws_strict.yaml"
    path.write_text("extends: default\n" + STRICT)
    return str(path)


def ws1(t: dict) -> dict:
    return t["account"]["workspaces"][0]


# -- all pass --------------------------------------------------------------------------------------


def test_compliant_tenant_passes_every_ws_control(audit, tenant, pytester):
    result, report = audit(tenant("ws_base"), "-k", "test_WS_", "--dbsec-baseline", strict(pytester))
    assert outcomes(report) == {c: "passed" for c in WS}, result.stdout.str()


def test_default_baseline_skips_csp_and_web_terminal_with_the_reason(audit, tenant):
    t = tenant("ws_base")
    ws1(t)["conf"]["enableWebTerminal"] = "true"
    ws1(t)["settings"]["shield_csp_enablement_ws_db"] = {"is_enabled": False}
    _, report = audit(t, "-k", "test_WS_11 or test_WS_13")
    assert "workspace.require_csp" in outcome_of(report, "WS-11", "ws1")["reason"]
    assert "workspace.allow_web_terminal" in outcome_of(report, "WS-13", "ws1")["reason"]
    assert outcomes(report) == {"WS-11": "skipped", "WS-13": "skipped"}


# -- workspace-conf controls -----------------------------------------------------------------------


def test_conf_controls_fail_on_the_wrong_value(audit, tenant, pytester):
    t = tenant("ws_base")
    conf = ws1(t)["conf"]
    for key, good in CONF.values():
        conf[key] = "true" if good == "false" else "false"
    for key in VIEW_ACLS:
        conf[key] = "false"
    _, report = audit(t, "-k", "test_WS_", "--dbsec-baseline", strict(pytester))
    for cid, (key, good) in CONF.items():
        r = outcome_of(report, cid, "ws1")
        assert r["outcome"] == "failed" and ids(r) == {key}, cid
        assert r["findings"][0]["resource_type"] == "workspace-conf" and good in r["findings"][0]["expected"]
    r = outcome_of(report, "WS-12", "ws1")
    assert r["outcome"] == "failed" and ids(r) == set(VIEW_ACLS)


def test_unset_conf_keys_are_judged_by_their_default(audit, tenant, pytester):
    t = tenant("ws_base")
    ws1(t)["conf"] = {k: None for k in ws1(t)["conf"]}
    _, report = audit(t, "-k", "test_WS_", "--dbsec-baseline", strict(pytester))
    for cid, (key, _) in CONF.items():
        r = outcome_of(report, cid, "ws1")
        assert r["outcome"] == "failed" and ids(r) == {key}, cid
        assert "unset" in r["findings"][0]["seen"]
    # view ACLs fail only when explicitly false: unset keeps them enforced
    assert outcome_of(report, "WS-12", "ws1")["outcome"] == "passed"


def test_unexpected_conf_values_never_pass(audit, tenant, pytester):
    t = tenant("ws_base")
    conf = ws1(t)["conf"]
    for key, _ in CONF.values():
        conf[key] = "yes"
    conf["enableJobViewAcls"] = "FALSE"   # still explicitly false
    conf["enforceWorkspaceViewAcls"] = "yes"
    _, report = audit(t, "-k", "test_WS_", "--dbsec-baseline", strict(pytester))
    for cid, (key, _) in CONF.items():
        assert ids(outcome_of(report, cid, "ws1")) == {key}, cid
    assert ids(outcome_of(report, "WS-12", "ws1")) == {"enableJobViewAcls"}


def test_conf_keys_unknown_to_the_workspace_skip(audit, tenant, pytester):
    t = tenant("ws_base")
    ws1(t)["conf_unsupported"] = [k for k, _ in CONF.values()] + list(VIEW_ACLS)
    _, report = audit(t, "-k", "test_WS_", "--dbsec-baseline", strict(pytester))
    for cid, (key, _) in list(CONF.items()) + [("WS-12", ("enforceWorkspaceViewAcls", None))]:
        r = outcome_of(report, cid, "ws1")
        assert r["outcome"] == "skipped" and key in r["reason"], (cid, r["reason"])
    # the settings controls are not affected
    assert {c: o for c, o in outcomes(report).items() if c in ("WS-07", "WS-08", "WS-11")} == \
        {"WS-07": "passed", "WS-08": "passed", "WS-11": "passed"}


def test_ws_12_judges_the_view_acl_keys_that_exist(audit, tenant):
    t = tenant("ws_base")
    ws1(t)["conf_unsupported"] = ["enableJobViewAcls", "enforceWorkspaceViewAcls"]
    ws1(t)["conf"]["enforceClusterViewAcls"] = "false"
    _, report = audit(t, "-k", "test_WS_12")
    r = outcome_of(report, "WS-12", "ws1")
    assert r["outcome"] == "failed" and ids(r) == {"enforceClusterViewAcls"}


# -- settings controls -----------------------------------------------------------------------------


def test_settings_controls_fail_on_the_wrong_value(audit, tenant, pytester):
    t = tenant("ws_base")
    ws1(t)["settings"] = {
        "sql_results_download": {"value": True},
        "disable_legacy_dbfs": {"value": False},
        "disable_legacy_access": {"value": False},
        "shield_csp_enablement_ws_db": {"is_enabled": False, "compliance_standards": []},
        "shield_esm_enablement_ws_db": {"is_enabled": False},
    }
    _, report = audit(t, "-k", "test_WS_07 or test_WS_08 or test_WS_11", "--dbsec-baseline", strict(pytester))
    assert ids(outcome_of(report, "WS-07", "ws1")) == {"sql_results_download"}
    assert ids(outcome_of(report, "WS-08", "ws1")) == {"disable_legacy_dbfs", "disable_legacy_access"}
    assert ids(outcome_of(report, "WS-11", "ws1")) == {"shield_csp_enablement_ws_db", "shield_esm_enablement_ws_db"}
    assert set(outcomes(report).values()) == {"failed"}
    assert outcome_of(report, "WS-07", "ws1")["findings"][0]["seen"] == "value true"


def test_unset_settings_are_judged_by_their_default(audit, tenant, pytester):
    t = tenant("ws_base")
    ws1(t)["settings"] = {}
    _, report = audit(t, "-k", "test_WS_07 or test_WS_08 or test_WS_11", "--dbsec-baseline", strict(pytester))
    assert ids(outcome_of(report, "WS-07", "ws1")) == {"sql_results_download"}  # download is on by default
    assert ids(outcome_of(report, "WS-08", "ws1")) == {"disable_legacy_dbfs", "disable_legacy_access"}
    assert ids(outcome_of(report, "WS-11", "ws1")) == {"shield_csp_enablement_ws_db", "shield_esm_enablement_ws_db"}
    for cid in ("WS-07", "WS-08", "WS-11"):
        assert all(f["seen"].startswith("unset") for f in outcome_of(report, cid, "ws1")["findings"])


def test_unreadable_setting_values_never_pass(audit, tenant, pytester):
    t = tenant("ws_base")
    s = ws1(t)["settings"]
    s["sql_results_download"] = {}                      # boolean_val without a value
    s["disable_legacy_dbfs"] = {"value": "true"}        # a string, not a boolean
    s["shield_esm_enablement_ws_db"] = {"is_enabled": None}
    _, report = audit(t, "-k", "test_WS_07 or test_WS_08 or test_WS_11", "--dbsec-baseline", strict(pytester))
    assert ids(outcome_of(report, "WS-07", "ws1")) == {"sql_results_download"}
    assert ids(outcome_of(report, "WS-08", "ws1")) == {"disable_legacy_dbfs"}
    assert ids(outcome_of(report, "WS-11", "ws1")) == {"shield_esm_enablement_ws_db"}
    assert "unreadable" in outcome_of(report, "WS-07", "ws1")["findings"][0]["seen"]


def _unavailable(t: dict, *names: str) -> None:
    t["faults"] = [{"route": f"GET /api/2.0/settings/types/{n}/names/default", "status": 404,
                    "error_code": "ENDPOINT_NOT_FOUND", "message": "No API found"} for n in names]


def test_settings_not_on_this_cloud_skip(audit, tenant, pytester):
    t = tenant("ws_base")
    _unavailable(t, *SETTINGS)
    _, report = audit(t, "-k", "test_WS_07 or test_WS_08 or test_WS_11", "--dbsec-baseline", strict(pytester))
    assert outcomes(report) == {"WS-07": "skipped", "WS-08": "skipped", "WS-11": "skipped"}
    assert "ENDPOINT_NOT_FOUND" in outcome_of(report, "WS-07", "ws1")["reason"]
    assert "disable_legacy_access" in outcome_of(report, "WS-08", "ws1")["reason"]


def test_an_available_setting_is_still_judged_when_its_partner_is_not(audit, tenant, pytester):
    t = tenant("ws_base")
    _unavailable(t, "disable_legacy_dbfs", "shield_esm_enablement_ws_db")
    ws1(t)["settings"]["disable_legacy_access"] = {"value": False}
    ws1(t)["settings"]["shield_csp_enablement_ws_db"] = {"is_enabled": False}
    _, report = audit(t, "-k", "test_WS_08 or test_WS_11", "--dbsec-baseline", strict(pytester))
    assert ids(outcome_of(report, "WS-08", "ws1")) == {"disable_legacy_access"}
    assert ids(outcome_of(report, "WS-11", "ws1")) == {"shield_csp_enablement_ws_db"}


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("route, errored", [
    ("GET /api/2.0/workspace-conf", set(CONF) | {"WS-12"}),
    ("GET /api/2.0/settings/types/*", {"WS-07", "WS-08", "WS-11"}),
])
def test_unreadable_data_makes_the_control_error(audit, tenant, pytester, route, errored):
    t = tenant("ws_base")
    t["faults"] = [{"route": route, "status": 403}]
    result, report = audit(t, "-k", "test_WS_", "--dbsec-baseline", strict(pytester))
    assert result.ret == 1
    got = outcomes(report)
    assert {c for c, o in got.items() if o == "error"} == errored
    assert {c for c, o in got.items() if o == "passed"} == set(WS) - errored
    for cid in errored:
        assert "403" in outcome_of(report, cid, "ws1")["reason"]


def test_non_admin_credential_errors_every_ws_control(audit, tenant, pytester):
    _, report = audit(tenant("ws_base"), "-k", "test_WS_", "--dbsec-baseline", strict(pytester),
                      principal="alice@corp.example.com", account=False)
    assert outcomes(report) == {c: "error" for c in WS}
    assert all("workspace admin" in r["reason"] for r in report["results"])
