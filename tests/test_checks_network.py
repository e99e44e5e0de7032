"""NET controls against purpose-built tenants (tests/tenants/net_base.yaml and edits of it).

Workspace controls (NET-01, NET-02) audit ws1; account controls (NET-03..06) judge the whole account,
where ws1 has id 1001 and ws2 id 1002.
"""

from __future__ import annotations

import pytest

from dbsec_helpers import outcome_of

NET = ["NET-01", "NET-02", "NET-03", "NET-04", "NET-05", "NET-06"]


def ids(result: dict) -> set[str]:
    return {f["resource_id"] for f in result["findings"]}


def baseline_file(pytester, name: str, text: str) -> str:
    path = pytester.path / f"{name}.yaml"
    path.write_text("extends: default\n" + text)
    return str(path)


def ws(t: dict, name: str) -> dict:
    return next(w for w in t["account"]["workspaces"] if w["name"] == name)


def policy(mode: str | None = "RESTRICTED_ACCESS", enforcement: str | None = "ENFORCED", pid: str = "p") -> dict:
    access: dict = {}
    if mode is not None:
        access["restriction_mode"] = mode
    if enforcement is not None:
        access["policy_enforcement"] = {"enforcement_mode": enforcement}
    return {"network_policy_id": pid, "egress": {"network_access": access}}


# -- all pass --------------------------------------------------------------------------------------


def test_compliant_tenant_passes_every_net_control(audit, tenant, pytester):
    bl = baseline_file(pytester, "pl", "network:\n  require_private_link: true\n")
    result, report = audit(tenant("net_base"), "-k", "test_NET_", "--dbsec-baseline", bl)
    assert {r["control_id"]: r["outcome"] for r in report["results"]} == {c: "passed" for c in NET}, \
        result.stdout.str()
    assert {r["target"] for r in report["results"]} == {"ws1", "account"}


def test_default_baseline_does_not_require_private_link(audit, tenant):
    t = tenant("net_base")
    del ws(t, "ws2")["private_access_settings_id"]
    _, report = audit(t, "-k", "test_NET_04")
    r = outcome_of(report, "NET-04", "account")
    assert r["outcome"] == "skipped" and "network.require_private_link" in r["reason"]


# -- NET-01 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, outcome", [
    ("true", "passed"), ("TRUE", "passed"), ("false", "failed"), (None, "failed"), ("yes", "failed")])
def test_net_01_ip_access_lists_must_be_enabled(audit, tenant, value, outcome):
    t = tenant("net_base")
    ws(t, "ws1")["conf"]["enableIpAccessLists"] = value
    _, report = audit(t, "-k", "test_NET_01")
    r = outcome_of(report, "NET-01", "ws1")
    assert r["outcome"] == outcome
    if outcome == "failed":
        assert ids(r) == {"enableIpAccessLists"}
        assert ("unset" in r["findings"][0]["seen"]) == (value is None)


def test_net_01_skips_when_the_key_does_not_exist(audit, tenant):
    t = tenant("net_base")
    ws(t, "ws1")["conf_unsupported"] = ["enableIpAccessLists"]
    _, report = audit(t, "-k", "test_NET_01")
    r = outcome_of(report, "NET-01", "ws1")
    assert r["outcome"] == "skipped" and "enableIpAccessLists" in r["reason"]


# -- NET-02 ----------------------------------------------------------------------------------------


def _wide_lists(t: dict) -> None:
    ws(t, "ws1")["ip_access_lists"] += [
        {"list_id": "l-wide4", "label": "wide-v4", "list_type": "ALLOW", "ip_addresses": ["10.0.0.0/8", "10.1.0.0/16"],
         "created_by": "netops@corp.example.com"},
        {"list_id": "l-all4", "label": "temp-allow-all", "list_type": "ALLOW", "ip_addresses": ["0.0.0.0/0"]},
        {"list_id": "l-all6", "label": "v6-any", "list_type": "ALLOW", "ip_addresses": ["::/0"]},
        {"list_id": "l-wide6", "label": "wide-v6", "list_type": "ALLOW", "ip_addresses": ["2001:db8::/32"]},
        {"list_id": "l-junk", "label": "typo", "list_type": "ALLOW", "ip_addresses": ["203.0.113.0/24", "10.0.0.300/24"]},
        {"list_id": "l-mapped", "label": "mapped", "list_type": "ALLOW", "ip_addresses": ["::ffff:0.0.0.0/96"]},
        {"list_id": "l-off", "label": "disabled", "list_type": "ALLOW", "ip_addresses": ["0.0.0.0/1"], "enabled": False},
    ]


def test_net_02_flags_wide_and_unparsable_entries_of_enabled_allow_lists(audit, tenant):
    t = tenant("net_base")
    _wide_lists(t)
    _, report = audit(t, "-k", "test_NET_02")
    r = outcome_of(report, "NET-02", "ws1")
    assert r["outcome"] == "failed"
    # the BLOCK list and the disabled lists (0.0.0.0/0, 0.0.0.0/1) do not count; /16 and /48 are allowed
    assert ids(r) == {"l-wide4", "l-all4", "l-all6", "l-wide6", "l-junk", "l-mapped"}
    by_id = {f["resource_id"]: f for f in r["findings"]}
    assert "10.0.0.0/8" in by_id["l-wide4"]["seen"] and "10.1.0.0/16" not in by_id["l-wide4"]["seen"]
    assert by_id["l-wide4"]["owner"] and by_id["l-wide4"]["resource_name"] == "wide-v4"
    assert "every IPv4 address" in by_id["l-all4"]["seen"]
    assert "every IPv6 address" in by_id["l-all6"]["seen"]
    assert "unparsable" in by_id["l-junk"]["seen"] and "10.0.0.300/24" in by_id["l-junk"]["seen"]
    assert "every IPv4 address" in by_id["l-mapped"]["seen"]


def test_net_02_widest_prefix_comes_from_the_baseline(audit, tenant, pytester):
    t = tenant("net_base")
    _wide_lists(t)
    bl = baseline_file(pytester, "wide", "network:\n  widest_prefix: 8\n  widest_prefix_v6: 32\n")
    _, report = audit(t, "-k", "test_NET_02", "--dbsec-baseline", bl)
    # /8 and /32 are now allowed; everything-lists and unparsable entries still fail
    assert ids(outcome_of(report, "NET-02", "ws1")) == {"l-all4", "l-all6", "l-junk", "l-mapped"}
    t = tenant("net_base")
    bl = baseline_file(pytester, "narrow", "network:\n  widest_prefix: 24\n  widest_prefix_v6: 56\n")
    _, report = audit(t, "-k", "test_NET_02", "--dbsec-baseline", bl)
    # the compliant tenant's /16 and /48 office ranges are too wide for this baseline
    r = outcome_of(report, "NET-02", "ws1")
    assert r["outcome"] == "failed" and ids(r) == {"ws1-office"}


def test_net_02_fails_without_an_enabled_allow_list(audit, tenant):
    t = tenant("net_base")
    ws(t, "ws1")["ip_access_lists"] = [l for l in ws(t, "ws1")["ip_access_lists"] if l["list_id"] in ("ws1-block", "ws1-old")]
    _, report = audit(t, "-k", "test_NET_02")
    r = outcome_of(report, "NET-02", "ws1")
    assert r["outcome"] == "failed" and ids(r) == {"enabled ALLOW lists"}
    assert "no enabled ALLOW list" in r["findings"][0]["seen"]


# -- NET-03 ----------------------------------------------------------------------------------------


def test_net_03_account_setting_off_and_no_enabled_list(audit, tenant):
    t = tenant("net_base")
    t["account"]["settings"]["acct_ip_acl_enable"] = {"value": False}
    t["account"]["ip_access_lists"][0]["enabled"] = False
    _, report = audit(t, "-k", "test_NET_03")
    r = outcome_of(report, "NET-03", "account")
    assert r["outcome"] == "failed" and ids(r) == {"acct_ip_acl_enable", "enabled ALLOW lists"}


def test_net_03_unset_setting_and_allow_all_list_fail(audit, tenant):
    t = tenant("net_base")
    del t["account"]["settings"]["acct_ip_acl_enable"]
    t["account"]["ip_access_lists"].append(
        {"list_id": "acct-any", "label": "anyone", "list_type": "ALLOW", "ip_addresses": ["0.0.0.0/0"]})
    _, report = audit(t, "-k", "test_NET_03")
    r = outcome_of(report, "NET-03", "account")
    assert r["outcome"] == "failed" and ids(r) == {"acct_ip_acl_enable", "acct-any"}
    seen = {f["resource_id"]: f["seen"] for f in r["findings"]}
    assert seen["acct_ip_acl_enable"].startswith("unset")


# -- NET-04 / NET-05 -------------------------------------------------------------------------------


def test_net_04_and_05_list_each_offending_workspace(audit, tenant, pytester):
    t = tenant("net_base")
    del ws(t, "ws2")["private_access_settings_id"]
    del ws(t, "ws2")["network_id"]
    # a workspace that failed to provision serves nobody and is not judged
    t["account"]["workspaces"].append({"name": "ws3", "id": 1003, "workspace_status": "FAILED", "metastore": None,
                                       "assignments": [{"principal": "dbsec-auditor", "permissions": ["ADMIN"]}]})
    t["credentials"].append({"token": "emu-auditor-ws3", "principal": "dbsec-auditor", "workspace": "ws3"})
    bl = baseline_file(pytester, "pl", "network:\n  require_private_link: true\n")
    _, report = audit(t, "-k", "test_NET_04 or test_NET_05", "--dbsec-baseline", bl)
    for cid in ("NET-04", "NET-05"):
        r = outcome_of(report, cid, "account")
        assert r["outcome"] == "failed" and ids(r) == {"1002"}, cid
        f = r["findings"][0]
        assert f["resource_type"] == "workspace" and f["resource_name"] == "ws2"


def test_net_04_and_05_skip_on_azure(audit, tenant, pytester):
    t = tenant("net_base")
    t["account"]["cloud"] = "azure"
    for w in t["account"]["workspaces"]:
        w.pop("network_id"), w.pop("private_access_settings_id")
    bl = baseline_file(pytester, "pl", "network:\n  require_private_link: true\n")
    _, report = audit(t, "-k", "test_NET_04 or test_NET_05", "--dbsec-baseline", bl)
    for cid in ("NET-04", "NET-05"):
        r = outcome_of(report, cid, "account")
        assert r["outcome"] == "skipped" and "Azure" in r["reason"], cid


# -- NET-06 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("pol, ok, words", [
    (policy("FULL_ACCESS"), False, "FULL_ACCESS"),
    (policy(enforcement="DRY_RUN"), False, "DRY_RUN"),
    (policy("SOMETHING_NEW"), False, "SOMETHING_NEW"),  # an unknown mode never passes
    (policy(mode=None), False, "None"),
    (policy(enforcement=None), True, ""),  # no policy_enforcement: the API's default is ENFORCED
])
def test_net_06_egress_must_be_restricted_and_enforced(audit, tenant, pol, ok, words):
    t = tenant("net_base")
    t["account"]["network_policies"].append(pol)
    ws(t, "ws2")["network_policy_id"] = "p"
    _, report = audit(t, "-k", "test_NET_06")
    r = outcome_of(report, "NET-06", "account")
    if ok:
        assert r["outcome"] == "passed"
    else:
        assert r["outcome"] == "failed" and ids(r) == {"1002"}
        assert words in r["findings"][0]["seen"] and r["findings"][0]["details"]["network_policy_id"] == "p"


def test_net_06_workspace_on_an_unlisted_default_policy_has_no_network_policy(audit, tenant):
    t = tenant("net_base")
    ws(t, "ws1")["network_policy_id"] = "default-policy"  # bound, but the account lists no such policy
    _, report = audit(t, "-k", "test_NET_06")
    r = outcome_of(report, "NET-06", "account")
    assert r["outcome"] == "failed" and ids(r) == {"1001"}
    assert r["findings"][0]["seen"].startswith("no network policy")


# -- errors: data that cannot be read --------------------------------------------------------------


@pytest.mark.parametrize("route, errored", [
    ("GET /api/2.0/workspace-conf", {"NET-01"}),
    ("GET /api/2.0/ip-access-lists", {"NET-02"}),
    ("GET /api/2.0/accounts/*/ip-access-lists", {"NET-03"}),
    ("GET /api/2.0/accounts/*/workspaces/*/permissionassignments", {"NET-04", "NET-05", "NET-06"}),
    ("GET /api/2.0/accounts/*/network-policies", {"NET-06"}),
    ("GET /api/2.0/accounts/*/workspaces/*/network", {"NET-06"}),
])
def test_unreadable_data_makes_the_control_error(audit, tenant, pytester, route, errored):
    t = tenant("net_base")
    t["faults"] = [{"route": route, "status": 403}]
    bl = baseline_file(pytester, "pl", "network:\n  require_private_link: true\n")
    result, report = audit(t, "-k", "test_NET_", "--dbsec-baseline", bl)
    assert result.ret == 1
    outcomes = {r["control_id"]: r for r in report["results"]}
    assert {c for c, r in outcomes.items() if r["outcome"] == "error"} == errored
    assert {c for c, r in outcomes.items() if r["outcome"] == "passed"} == set(NET) - errored
    for cid in errored:
        assert "403" in outcomes[cid]["reason"], outcomes[cid]["reason"]
    assert report["complete"] is False


def test_non_admin_credential_errors_workspace_controls(audit, tenant):
    result, report = audit(tenant("net_base"), "-k", "test_NET_01 or test_NET_02", principal="alice@corp.example.com",
                           account=False)
    for cid in ("NET-01", "NET-02"):
        r = outcome_of(report, cid, "ws1")
        assert r["outcome"] == "error" and "workspace admin" in r["reason"], r
