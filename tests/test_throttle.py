"""Collection under rate limits: one window per host, adaptive pacing, Retry-After, fail closed.

All against the emulator through the real SDK; the emulator's request log and in-flight high-water
mark are the evidence (no timing assertions).
"""

from __future__ import annotations

import pytest

from pytest_dbsec import connect, throttle
from pytest_dbsec.connect import Target

from test_collect import make_collector


def _with_clusters(tenant, n: int) -> dict:
    t = tenant("tokens")
    ws = t["account"]["workspaces"][0]
    ws["clusters"] = [{"cluster_name": f"c{i:03}", "creator_user_name": "alice@corp.example.com",
                       "spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge"} for i in range(n)]
    return t


def _perm_calls(emu):
    return [r for r in emu.requests if r.path.startswith("/api/2.0/permissions/clusters/")]


def test_route_of_groups_requests_by_api_not_by_object():
    # one permissions API, whatever the object type
    assert throttle.route_of("/api/2.0/permissions/jobs/123") == "/api/2.0/permissions"
    assert throttle.route_of("/api/2.0/permissions/clusters/0101-abcdef-x1") == "/api/2.0/permissions"
    assert throttle.route_of("/api/2.1/unity-catalog/permissions/table/main.sales.orders") == \
        "/api/2.1/unity-catalog/permissions"
    assert throttle.route_of("/api/2.0/accounts/0d9f6a12-4b7e-4c1a-9e2b-1a2b3c4d5e6f/scim/v2/Users") == \
        "/api/2.0/accounts/*/scim"
    assert throttle.route_of("/api/2.1/clusters/list?x=1") == "/api/2.1/clusters/list"


def test_a_rate_limited_route_is_paced_and_every_call_succeeds(databricks_emulator, tenant):
    emu = databricks_emulator(_with_clusters(tenant, 60))
    emu.add_fault("GET /api/2.0/permissions/clusters/*", rate_limit_per_s=20)
    collector, inv, messages = make_collector(emu, account=False, workers=8)
    collector.ensure([("ws1", "acls_clusters")])
    sec = inv.workspaces["ws1"].section("acls_clusters")
    assert sec.status == "ok", sec.error
    assert len([k for k in sec.data["acls"] if k.startswith("clusters/")]) == 60
    calls = _perm_calls(emu)
    throttled = [r for r in calls if r.status == 429]
    assert throttled, "the limit was reached (otherwise this test proves nothing)"
    assert len(calls) - len(throttled) == 60  # each object read once, successfully
    # the 429s were absorbed by the limiter and are in the section's call log, not lost
    assert sum(1 for c in sec.calls if c["status"] == 429) == len(throttled)
    host = throttle.limiter_for(emu.workspace_url("ws1"))
    assert host.rate("/api/2.0/permissions/clusters/x") is not None  # the route is now paced
    assert host.throttled >= len(throttled)
    assert "answered 429/503" in messages[-1]


def test_retry_after_is_honoured_before_the_next_attempt(databricks_emulator, tenant):
    emu = databricks_emulator(tenant("tokens"))
    emu.add_fault("GET /api/2.0/token-management/tokens", status=429, retry_after=2, times=1)
    collector, inv, _ = make_collector(emu, account=False)
    collector.ensure([("ws1", "tokens")])
    sec = inv.workspaces["ws1"].section("tokens")
    assert sec.status == "ok", sec.error
    tries = [r for r in emu.requests if r.path == "/api/2.0/token-management/tokens"]
    assert [r.status for r in tries] == [429, 200]
    # the retry came after the Retry-After the server asked for (the emulator's clock, not ours)
    assert tries[1].time - tries[0].time >= 2.0
    assert [c["status"] for c in sec.calls] == [429, 200]


def test_a_persistent_429_storm_fails_the_section_closed_within_the_budget(databricks_emulator, tenant):
    emu = databricks_emulator(tenant("tokens"))
    emu.add_fault("GET /api/2.0/token-management/tokens", status=429, retry_after=1)
    collector, inv, messages = make_collector(emu, account=False)
    collector._client_factory = lambda t: connect.workspace_client(t, retry_s=3)
    collector.ensure([("ws1", "tokens"), ("ws1", "workspace_conf")])
    sec = inv.workspaces["ws1"].section("tokens")
    assert sec.status == "error"
    assert "429" in sec.error and "REQUEST_LIMIT_EXCEEDED" in sec.error and "gave up after retries" in sec.error
    tries = [r for r in emu.requests if r.path == "/api/2.0/token-management/tokens"]
    # Retry-After 1 s within a 3 s budget: a handful of attempts, not a storm (the SDK's loop did
    # not start a second round of its own)
    assert 2 <= len(tries) <= 4
    assert inv.workspaces["ws1"].section("workspace_conf").status == "ok"  # other routes unaffected


@pytest.mark.parametrize("workers", [2, 5])
def test_concurrency_per_host_never_exceeds_the_bound(databricks_emulator, tenant, workers):
    t = _with_clusters(tenant, 40)
    ws = t["account"]["workspaces"][0]
    ws["secret_scopes"] = [{"name": f"scope{i}", "backend_type": "DATABRICKS"} for i in range(20)]
    emu = databricks_emulator(t)
    # latency makes requests overlap, so an unbounded client would show its true concurrency
    emu.add_fault("GET /api/2.0/*", latency_ms=30)
    collector, inv, _ = make_collector(emu, account=False, workers=workers)
    # several sections at once, two of them fanning out: nested pools must not multiply the bound
    collector.ensure([("ws1", "acls_clusters"), ("ws1", "secrets"), ("ws1", "tokens"), ("ws1", "settings")])
    assert all(inv.workspaces["ws1"].section(n).status == "ok"
               for n in ("acls_clusters", "secrets", "tokens", "settings"))
    assert emu.peak_in_flight["ws1"] <= workers
    assert emu.peak_in_flight["ws1"] == workers  # and the window is used, not left idle


def test_clients_of_one_host_share_one_limiter(databricks_emulator, tenant):
    emu = databricks_emulator(tenant("tokens"))
    target = Target("ws1", host=emu.workspace_url("ws1"), token=emu.token_for("dbsec-auditor", "ws1"))
    a, b = connect.workspace_client(target), connect.workspace_client(target)
    lim = throttle.limiter_for(emu.workspace_url("ws1"))
    for c in (a, b):
        adapter = connect._session(c).get_adapter(emu.workspace_url("ws1") + "/api/2.0/x")
        assert isinstance(adapter, throttle.ThrottledAdapter) and adapter.limiter is lim


def test_a_paced_route_takes_the_next_free_slot_before_unpaced_requests():
    """A rate-limited route's turn is the scarce resource: when a slot frees, a due request of a paced
    route goes first, even if an unpaced request has waited longer."""
    import threading
    import time

    lim = throttle.HostLimiter(max_in_flight=1)
    paced, unpaced = "/api/2.1/unity-catalog/permissions", "/api/2.1/unity-catalog/entity-tag-assignments"
    # make `paced` a paced route: successes to measure, then a 429 (Retry-After 0: no pause)
    for _ in range(throttle.MIN_SAMPLES + 2):
        lim.done(paced, lim.wait_turn(paced), 200, None)
    lim.done(paced, lim.wait_turn(paced), 429, 0.0)
    assert lim.rate(paced) is not None
    time.sleep(1.0 / lim.rate(paced))  # its next slot is due

    holder = lim.wait_turn(unpaced)  # the only slot is taken
    order: list[str] = []

    def ask(route):
        lim.wait_turn(route)
        order.append(route)
        lim.done(route, time.monotonic(), 200, None)

    first = threading.Thread(target=ask, args=(unpaced,))
    first.start()
    while lim._route(unpaced).waiting == 0:  # the unpaced request is queued first
        time.sleep(0.001)
    second = threading.Thread(target=ask, args=(paced,))
    second.start()
    while lim._paced_waiting == 0:
        time.sleep(0.001)
    lim.done(unpaced, holder, 200, None)  # free the slot
    first.join(5)
    second.join(5)
    assert order == [paced, unpaced]
    assert lim.in_flight == 0


def test_unpaced_routes_take_free_slots_in_turn_not_in_arrival_order():
    """A big fan-out on one route must not fill the window while another route waits: with one slot
    and three requests of route A queued before one of route B, B goes second, not last."""
    import threading
    import time

    lim = throttle.HostLimiter(max_in_flight=1)
    a, b = "/api/2.1/unity-catalog/entity-tag-assignments", "/api/2.1/unity-catalog/permissions"
    holder = lim.wait_turn(a)
    order: list[str] = []
    release = threading.Event()

    def ask(route):
        sent = lim.wait_turn(route)
        order.append(route)
        release.wait(5)
        lim.done(route, sent, 200, None)

    threads = []
    for route, queued in ((a, 1), (a, 2), (a, 3)):
        threads.append(threading.Thread(target=ask, args=(route,)))
        threads[-1].start()
        while lim._route(a).waiting < queued:
            time.sleep(0.001)
    threads.append(threading.Thread(target=ask, args=(b,)))
    threads[-1].start()
    while lim._route(b).waiting == 0:
        time.sleep(0.001)
    release.set()
    lim.done(a, holder, 200, None)
    for t in threads:
        t.join(5)
    assert order == [a, b, a, a]
    assert lim.in_flight == 0 and lim.peak_in_flight == 1


def test_the_proxy_and_ca_environment_is_read_once_with_the_same_answer(monkeypatch):
    """requests would scan the environment on every request; the session gets the same answer once."""
    import requests

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example.com:3128")
    monkeypatch.setenv("NO_PROXY", "direct.example.com")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corp/ca.pem")
    for host, proxied in (("https://dbc-1.cloud.databricks.com", True), ("https://direct.example.com", False)):
        session = requests.Session()
        per_request = session.merge_environment_settings(host + "/api/2.0/x", {}, None, None, None)
        throttle.freeze_environment(session, host)
        assert session.trust_env is False
        assert session.verify == "/etc/corp/ca.pem"
        assert bool(session.proxies) is proxied
        # what a request to the host now gets is what requests computed from the environment
        frozen = session.merge_environment_settings(host + "/api/2.0/x", {}, None, None, None)
        assert frozen == per_request
        # nothing to merge is None (requests skips its costly merge), and a request keeps its own query
        assert session.params is None and (session.proxies is None) is not proxied
        prepared = session.prepare_request(requests.Request("GET", host + "/api/2.0/x", params={"page_token": "t1"}))
        assert prepared.url == host + "/api/2.0/x?page_token=t1"
