"""NET: network access -- IP access lists, private connectivity, serverless egress.

NET-01 and NET-02 judge one workspace from its own sections. NET-03 and NET-06 are account controls.
NET-04 and NET-05 need facts only the account API knows (a workspace's private access settings and
network configuration), so they are account controls too: they read the `account_workspaces` section
and list each offending workspace as a resource (type ``workspace``, id = workspace id).

Where the baseline does not require a thing (NET-04 with network.require_private_link false), the
control is skipped with that reason rather than passed: nothing was judged. Workspaces whose status is
CANCELLING, FAILED, BANNED or NOT_PROVISIONED are not judged; Azure workspaces are not judged by NET-04/05
(the account API has no such fields there; skipped when every workspace is on Azure).

IP entries are parsed with ``ipaddress``: an entry that does not parse is a finding, never skipped;
an IPv4-mapped IPv6 range (``::ffff:0:0/96``) is judged as the IPv4 range it admits.
"""

from __future__ import annotations

import ipaddress

import pytest

# workspaces in these states serve nobody; any other status (including one we do not know) is judged
DEAD_WORKSPACE = {"CANCELLING", "FAILED", "BANNED", "NOT_PROVISIONED"}
_V4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")


# -- helpers -------------------------------------------------------------------------------------


def _conf_value(workspace, key: str):
    """A workspace-conf value, or skip when the key does not exist on this workspace or cloud."""
    conf = workspace.data("workspace_conf")
    if key in conf.get("unavailable", []):
        pytest.skip(f"workspace-conf key {key} does not exist on this workspace or cloud")
    return conf["values"].get(key)


def _norm(raw) -> str | None:
    return None if raw is None else str(raw).strip().lower()


def entry_problem(entry, widest_v4: int, widest_v6: int, *, allow_all_only: bool = False) -> str | None:
    """Why an ALLOW entry is too wide (or unreadable); None when it is acceptable."""
    text = str(entry).strip() if entry is not None else ""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return f"{entry!r} is not an IP address or CIDR range (unparsable, so not judged safe)"
    version, prefix = net.version, net.prefixlen
    if version == 6 and net.subnet_of(_V4_MAPPED):
        version, prefix = 4, prefix - 96  # ::ffff:a.b.c.d/n admits the IPv4 range a.b.c.d/(n-96)
    if prefix == 0:
        return f"{text} admits every {'IPv4' if version == 4 else 'IPv6'} address"
    if allow_all_only:
        return None
    widest = widest_v4 if version == 4 else widest_v6
    if prefix < widest:
        return f"{text} (/{prefix}) is wider than /{widest}"
    return None


def _enabled_allow_lists(lists: list[dict]) -> list[dict]:
    # only an enabled ALLOW list restricts; a list type the SDK does not know is not an ALLOW list
    return [l for l in lists if l.get("list_type") == "ALLOW" and l.get("enabled") is True]


def _owner(l: dict) -> str | None:
    by = l.get("created_by")
    return f"user id {by}" if by not in (None, "", 0) else None


def _live_workspaces(account) -> list[dict]:
    wss = [ws for ws in account.data("account_workspaces")["workspaces"]
           if ws.get("workspace_status") not in DEAD_WORKSPACE]
    if not wss:
        pytest.skip("the account has no live workspace to judge")
    return wss


def _fail_workspace(findings, ws: dict, seen: str, expected: str, **details) -> None:
    findings.fail(resource_type="workspace", resource_id=ws.get("workspace_id", "?"),
                  resource_name=ws.get("workspace_name") or ws.get("deployment_name") or str(ws.get("workspace_id")),
                  seen=seen, expected=expected, cloud=ws.get("cloud"), pricing_tier=ws.get("pricing_tier"),
                  **details)


def _non_azure(wss: list[dict], what: str) -> list[dict]:
    """Workspaces where the account API can tell `what`; skip when none is left (Azure has no such field)."""
    judged = [ws for ws in wss if str(ws.get("cloud") or "").lower() != "azure"]
    if not judged:
        pytest.skip(f"{what} is an AWS/GCP account API field; every workspace of this account is on Azure "
                    f"(VNet injection and Private Link are configured on the Azure resource)")
    return judged


# -- controls ------------------------------------------------------------------------------------


@pytest.mark.dbsec(
    id="NET-01", title="Workspace IP access lists enforced", severity="high", scope="workspace",
    sections=["workspace_conf"], refs={"SAT": ["NS-11", "NS-5"], "SOC2": ["CC6.6"], "NIST": ["SC-7"]},
    rationale="Without IP access lists anyone with a stolen credential can use the workspace from any network.",
    remediation="Create an ALLOW list for the corporate ranges (`databricks ip-access-lists create`, "
                "POST /api/2.0/ip-access-lists), then turn enforcement on: `databricks workspace-conf set-status "
                "--json '{\"enableIpAccessLists\": \"true\"}'` (PATCH /api/2.0/workspace-conf).",
)
def test_NET_01_workspace_ip_access_lists_enforced(workspace, findings):
    raw = _conf_value(workspace, "enableIpAccessLists")
    if _norm(raw) != "true":
        findings.fail(resource_type="workspace-conf", resource_id="enableIpAccessLists",
                      resource_name=f"workspace {workspace.name}",
                      seen="enableIpAccessLists unset (IP access lists off by default)" if raw is None
                      else f"enableIpAccessLists {raw!r}",
                      expected='enableIpAccessLists "true"')


@pytest.mark.dbsec(
    id="NET-02", title="IP allow lists are tight", severity="high", scope="workspace",
    sections=["network"], refs={"seeds": ["ip allow lists"]},
    rationale="An allow list that admits 0.0.0.0/0 or a huge range restricts nothing; only narrow, known "
              "ranges keep stolen credentials from being used from elsewhere.",
    remediation="Replace wide entries with the organisation's egress ranges: `databricks ip-access-lists "
                "replace <list_id> --json ...` (PUT /api/2.0/ip-access-lists/{list_id}); create an ALLOW list "
                "if there is none (POST /api/2.0/ip-access-lists) and enforce it (NET-01).",
)
def test_NET_02_ip_allow_lists_are_tight(workspace, baseline, findings):
    v4, v6 = baseline.get("network.widest_prefix"), baseline.get("network.widest_prefix_v6")
    allow = _enabled_allow_lists(workspace.data("network")["ip_access_lists"])
    expected = f"enabled ALLOW lists of IPv4 ranges of /{v4} or narrower and IPv6 ranges of /{v6} or narrower"
    if not any(l.get("ip_addresses") for l in allow):
        findings.fail(resource_type="ip-access-lists", resource_id="enabled ALLOW lists",
                      resource_name=f"workspace {workspace.name}",
                      seen="no enabled ALLOW list with addresses (every address may connect)", expected=expected)
    for l in allow:
        problems = [p for p in (entry_problem(e, v4, v6) for e in l.get("ip_addresses") or []) if p]
        if problems:
            findings.fail(resource_type="ip-access-list", resource_id=l.get("list_id", "?"),
                          resource_name=l.get("label") or l.get("list_id", "?"), owner=_owner(l),
                          seen="; ".join(problems), expected=expected, entries=list(l.get("ip_addresses") or []))


@pytest.mark.dbsec(
    id="NET-03", title="Account console IP lists", severity="high", scope="account",
    sections=["account_network"], refs={"SAT": ["NS-8", "NS-13"]},
    rationale="The account console controls every workspace, identity and metastore; it should be reachable "
              "only from known networks.",
    remediation="Create an account ALLOW list (`databricks account ip-access-lists create`, POST "
                "/api/2.0/accounts/{account_id}/ip-access-lists) and enable enforcement: `databricks account "
                "settings enable-ip-access-lists update` (PATCH .../settings/types/acct_ip_acl_enable/names/default "
                "with value true).",
)
def test_NET_03_account_console_ip_lists(account, findings):
    data = account.data("account_network")
    setting = (data.get("settings") or {}).get("acct_ip_acl_enable")
    value = ((setting or {}).get("acct_ip_acl_enable") or {}).get("value")
    if value is not True:
        findings.fail(resource_type="account-setting", resource_id="acct_ip_acl_enable",
                      resource_name="account console IP access list enforcement",
                      seen="unset (enforcement off by default)" if setting is None else f"value {value!r}",
                      expected="value true")
    allow = _enabled_allow_lists(data.get("ip_access_lists") or [])
    if not any(l.get("ip_addresses") for l in allow):
        findings.fail(resource_type="ip-access-lists", resource_id="enabled ALLOW lists",
                      resource_name="account console", seen="no enabled ALLOW list with addresses",
                      expected="an enabled ALLOW list of the organisation's ranges")
    for l in allow:
        # the catalog asks for an enabled list; one that admits everyone (or cannot be read) is not one
        problems = [p for p in (entry_problem(e, 0, 0, allow_all_only=True) for e in l.get("ip_addresses") or []) if p]
        if problems:
            findings.fail(resource_type="account-ip-access-list", resource_id=l.get("list_id", "?"),
                          resource_name=l.get("label") or l.get("list_id", "?"), owner=_owner(l),
                          seen="; ".join(problems), expected="only the organisation's ranges",
                          entries=list(l.get("ip_addresses") or []))


@pytest.mark.dbsec(
    id="NET-04", title="Front-end private connectivity", severity="medium", scope="account",
    sections=["account_workspaces"], refs={"SAT": ["NS-3"]},
    rationale="Front-end Private Link keeps users' and clients' traffic to the workspace off the public "
              "internet, where the baseline requires it.",
    remediation="Create private access settings (`databricks account private-access create`, POST "
                "/api/2.0/accounts/{account_id}/private-access-settings) with a front-end VPC endpoint and attach "
                "them to the workspace (`databricks account workspaces update <workspace_id> "
                "--private-access-settings-id ...`, PATCH /api/2.0/accounts/{account_id}/workspaces/{workspace_id}).",
)
def test_NET_04_front_end_private_connectivity(account, baseline, findings):
    if not baseline.get("network.require_private_link"):
        pytest.skip("the baseline does not require front-end Private Link (network.require_private_link: false)")
    for ws in _non_azure(_live_workspaces(account), "private_access_settings_id"):
        if not ws.get("private_access_settings_id"):
            _fail_workspace(findings, ws, seen="no private_access_settings_id (public front end)",
                            expected="private access settings with a front-end Private Link endpoint")


@pytest.mark.dbsec(
    id="NET-05", title="Customer-managed network", severity="medium", scope="account",
    sections=["account_workspaces"], refs={"SAT": ["NS-4"]},
    rationale="In a customer-managed VPC the organisation controls subnets, security groups, egress and "
              "endpoints of the compute plane; a Databricks-managed network leaves them out of its control.",
    remediation="Register a customer-managed VPC (`databricks account networks create`, POST "
                "/api/2.0/accounts/{account_id}/networks) and move the workspace to it (PATCH "
                "/api/2.0/accounts/{account_id}/workspaces/{workspace_id} with network_id), or redeploy the workspace.",
)
def test_NET_05_customer_managed_network(account, findings):
    for ws in _non_azure(_live_workspaces(account), "network_id"):
        if not ws.get("network_id"):
            _fail_workspace(findings, ws, seen="no network_id (Databricks-managed network)",
                            expected="a customer-managed network (network_id)")


@pytest.mark.dbsec(
    id="NET-06", title="Serverless egress restricted", severity="high", scope="account",
    sections=["account_workspaces", "account_network_policies"], refs={"SAT": ["NS-9"]},
    rationale="Serverless compute with full internet egress can send data anywhere; a restricted, enforced "
              "network policy limits it to approved destinations.",
    remediation="Set the workspace's network policy to restricted, enforced egress: `databricks account "
                "network-policies update-network-policy-rpc <id>` (PUT /api/2.0/accounts/{account_id}/network-policies/"
                "{id}) with egress.network_access.restriction_mode RESTRICTED_ACCESS and "
                "policy_enforcement.enforcement_mode ENFORCED, and bind it to the workspace (PUT "
                "/api/2.0/accounts/{account_id}/workspaces/{workspace_id}/network).",
)
def test_NET_06_serverless_egress_restricted(account, findings):
    data = account.data("account_network_policies")
    policies = {p.get("network_policy_id"): p for p in data["network_policies"]}
    bound = data["workspace_policies"]
    expected = "a network policy with restriction_mode RESTRICTED_ACCESS and enforcement_mode ENFORCED"
    for ws in _live_workspaces(account):
        pid = bound.get(str(ws.get("workspace_id")))
        policy = policies.get(pid)
        if pid is None or policy is None:
            _fail_workspace(findings, ws, seen=f"no network policy (bound to {pid!r}, which the account does not list)",
                            expected=expected, network_policy_id=pid)
            continue
        access = (policy.get("egress") or {}).get("network_access") or {}
        mode = access.get("restriction_mode")
        # a missing policy_enforcement or enforcement_mode means ENFORCED (the API's documented default)
        enforcement = (access.get("policy_enforcement") or {}).get("enforcement_mode") or "ENFORCED"
        problems = []
        if mode != "RESTRICTED_ACCESS":
            problems.append("egress FULL_ACCESS" if mode == "FULL_ACCESS" else f"egress restriction_mode {mode!r}")
        if enforcement != "ENFORCED":
            problems.append(f"enforcement_mode {enforcement!r} (violations logged, not blocked)"
                            if enforcement == "DRY_RUN" else f"enforcement_mode {enforcement!r}")
        if problems:
            _fail_workspace(findings, ws, seen=f"network policy {pid}: " + ", ".join(problems),
                            expected=expected, network_policy_id=pid)
