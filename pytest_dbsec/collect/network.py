"""Account-level network sections: serverless egress (network policies and the workspace bindings).

Network policies are read as raw JSON through the SDK's own API client: the typed
``AccountNetworkPolicy`` would turn a restriction or enforcement mode it does not know into ``None``,
and an unknown mode must never make the egress control pass by vanishing.
"""

from __future__ import annotations

from . import section

# Every workspace is bound to exactly one policy; the API names 'default-policy' when none was assigned.
DEFAULT_POLICY = "default-policy"


@section("account_network_policies", "account", needs=("account_workspaces",),
         title="serverless egress network policies and each workspace's policy")
def account_network_policies(a, ctx):
    base = f"/api/2.0/accounts/{a.config.account_id}"
    policies: list[dict] = []
    query: dict = {}
    while True:
        page = a.api_client.do("GET", f"{base}/network-policies", query=dict(query)) or {}
        policies.extend(page.get("items") or [])
        token = page.get("next_page_token")
        if not token:
            break
        query["page_token"] = token
    workspaces = ctx.data("account_workspaces")["workspaces"]
    options = ctx.fan_out(
        lambda ws: a.api_client.do("GET", f"{base}/workspaces/{ws['workspace_id']}/network") or {}, workspaces)
    # keys are strings: the snapshot is JSON, whose object keys are strings anyway
    return {
        "network_policies": policies,
        "workspace_policies": {str(ws["workspace_id"]): opt.get("network_policy_id") or DEFAULT_POLICY
                               for ws, opt in zip(workspaces, options)},
    }
