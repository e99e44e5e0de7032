"""Collectors: every data section read through the real SDK over HTTP from the emulator."""

from __future__ import annotations

import pytest

from dbsec_helpers import assert_read_only

from pytest_dbsec.collect import Collector, describe_failure, known_sections
from pytest_dbsec.collect.workspace import WORKSPACE_CONF_KEYS
from pytest_dbsec.connect import Target
from pytest_dbsec.inventory import ACCOUNT, ACL_SECTIONS, Inventory, Scope

AUDITOR = "dbsec-auditor"
DEMO_WAREHOUSE = "3f8a1c2b9d4e5f60"  # prod's "Shared SQL"


def make_collector(emu, workspaces=None, principal=AUDITOR, account=True, workers=4, options=None):
    inv = Inventory()
    targets = {}
    for ws in emu.workspaces:
        if workspaces and ws["name"] not in workspaces:
            continue
        targets[ws["name"]] = Target(ws["name"], host=ws["url"], token=emu.token_for(principal, ws["name"]))
        inv.workspaces[ws["name"]] = Scope(ws["name"], "workspace", id=ws["id"], host=ws["url"])
    if account:
        targets[ACCOUNT] = Target(ACCOUNT, kind="account", host=emu.account_url, account_id=emu.account_id,
                                  token=emu.token_for(principal))
        inv.account = Scope(ACCOUNT, "account")
    messages = []
    return Collector(inv, targets, max_workers=workers, progress=messages.append, options=options), inv, messages


@pytest.fixture
def demo(databricks_emulator):
    return databricks_emulator()


def test_every_section_reads_the_demo_tenant(demo):
    # the audit log through prod's warehouse, for the demo baseline's break-glass account
    options = {"warehouse_id": DEMO_WAREHOUSE, "warehouse_workspace": "prod",
               "audit_principals": ("breakglass-admin@corp.example.com",)}
    collector, inv, messages = make_collector(demo, options=options)
    wanted = [(ws, name) for ws in inv.workspaces for name, spec in known_sections().items()
              if spec.scope == "workspace"]
    wanted += [(ACCOUNT, name) for name, spec in known_sections().items() if spec.scope == "account"]
    collector.ensure(wanted)
    for scope, name in wanted:
        sec = inv.scope(scope).section(name)
        if (scope, name) == ("dev", "audit_activity"):
            # dev's metastore is in another region: prod's warehouse does not hold its events
            assert sec.status == "error" and "us-west-2: its events are not in that table" in sec.error
            continue
        assert sec.status == "ok", f"{scope}/{name}: {sec.error}"
        # every section reads something, unless it holds the ACLs of an object type this workspace has none of
        assert sec.calls or (name in ACL_SECTIONS and sec.data == {"acls": {}, "vanished": []}), f"{scope}/{name}"
        assert all(c["method"] == "GET" or c["path"] == "/api/2.0/sql/statements" for c in sec.calls)
    assert_read_only(demo)
    audit = inv.workspaces["prod"].section("audit_activity").data
    assert audit["principals"] == {"breakglass-admin@corp.example.com": "breakglass-admin@corp.example.com"}
    assert {e["action_name"] for e in audit["principal_events"]} >= {"login", "setAdmin", "getSecret"}
    assert "henry.wilson@corp.example.com" in audit["last_activity"]
    prod = inv.workspaces["prod"]
    assert prod.section("tokens").data["token_infos"], "the demo has tokens"
    assert any(t["expiry_time"] == -1 for t in prod.section("tokens").data["token_infos"])
    assert prod.section("workspace_conf").data["values"]["maxTokenLifetimeDays"] == "365"
    assert prod.section("identities").data["users"] and prod.section("identities").data["groups"]
    assert prod.section("compute").data["clusters"] and prod.section("compute").data["cluster_policies"]
    assert prod.section("jobs").data["jobs"]
    assert prod.section("uc").data["catalogs"] and prod.section("uc").data["tables"]
    assert any(g for g in prod.section("uc").data["grants"].values())
    assert prod.section("acls_clusters").data["acls"] and prod.section("acls_jobs").data["acls"]
    assert all(k.startswith("jobs/") for k in prod.section("acls_jobs").data["acls"])
    assert inv.account.section("account_workspaces").data["workspaces"]
    assert len(inv.account.section("account_identities").data["users"]) >= 30
    assert messages[-1].startswith("collected")
    # every HTTP call is accounted to exactly one section
    assert sum(len(s.calls) for sc in inv.scopes() for s in sc.sections.values()) == len(
        [r for r in demo.requests if not r.path.startswith("/.well-known")])


def test_section_data_matches_the_tenant(demo):
    collector, inv, _ = make_collector(demo, workspaces=["prod"], account=False)
    collector.ensure([("prod", "tokens"), ("prod", "network"), ("prod", "secrets")])
    ws = next(w for w in demo.tenant["account"]["workspaces"] if w["name"] == "prod")
    got = {t["token_id"] for t in inv.workspaces["prod"].section("tokens").data["token_infos"]}
    assert len(got) == len(ws["tokens"])
    assert len(inv.workspaces["prod"].section("network").data["ip_access_lists"]) == len(ws.get("ip_access_lists", []))
    scopes = inv.workspaces["prod"].section("secrets").data["scopes"]
    assert [s["name"] for s in scopes] == [s["name"] for s in ws.get("secret_scopes", [])]
    assert all("acls" in s for s in scopes)


def test_paging_beyond_one_page_through_the_sdk(databricks_emulator, tenant):
    t = tenant("tokens")
    t["paging"] = {"scim_max": 1, "default_page": 1}
    extra = [{"userName": f"user{i}@corp.example.com", "displayName": f"User {i}"} for i in range(5)]
    t["account"]["users"] += extra
    t["account"]["groups"][0]["members"] += [u["userName"] for u in extra]
    emu = databricks_emulator(t)
    collector, inv, _ = make_collector(emu, account=True)
    collector.ensure([("ws1", "identities"), (ACCOUNT, "account_identities")])
    users = inv.workspaces["ws1"].section("identities").data["users"]
    assert len(users) == 7
    starts = [r.query.get("startIndex") for r in emu.requests if r.path.endswith("/scim/v2/Users")]
    assert len(starts) > 7, "one user per page, then an empty page ends the loop"
    assert len(inv.account.section("account_identities").data["users"]) == 2 + 5 + 0


def test_a_denied_section_is_an_error_with_endpoint_status_and_missing_permission(databricks_emulator, tenant):
    emu = databricks_emulator(tenant("tokens"))
    collector, inv, messages = make_collector(emu, principal="alice@corp.example.com", account=False)
    collector.ensure([("ws1", "tokens"), ("ws1", "identities")])
    tokens = inv.workspaces["ws1"].section("tokens")
    assert tokens.status == "error"
    assert tokens.error.startswith("GET /api/2.0/token-management/tokens -> 403: PERMISSION_DENIED")
    assert "workspace admin" in tokens.error
    assert "Config:" not in tokens.error  # the SDK's debug suffix is noise in a report
    assert inv.workspaces["ws1"].section("identities").status == "ok"  # one failure does not sink the rest
    assert any("ERROR" in m for m in messages)


def test_a_failed_dependency_fails_the_dependent_section(databricks_emulator, tenant):
    emu = databricks_emulator(tenant("tokens"))
    emu.add_fault("GET /api/2.1/clusters/list", status=403)
    collector, inv, _ = make_collector(emu, account=False)
    collector.ensure([("ws1", "acls_clusters")])
    assert inv.workspaces["ws1"].section("compute").status == "error"
    acls = inv.workspaces["ws1"].section("acls_clusters")
    assert acls.status == "error" and "needs section 'compute'" in acls.error


def test_unreachable_workspace_errors_its_sections_only(databricks_emulator, tenant):
    emu = databricks_emulator(tenant("tokens"))
    collector, inv, _ = make_collector(emu, account=False)
    inv.workspaces["gone"] = Scope("gone", "workspace")
    collector.targets["gone"] = Target("gone", host="http://127.0.0.1:9", token="x")
    from pytest_dbsec import connect

    collector._client_factory = lambda t: connect.workspace_client(t, retry_s=2, http_timeout_s=2)
    collector.ensure([("ws1", "tokens"), ("gone", "tokens")])
    assert inv.workspaces["ws1"].section("tokens").status == "ok"
    gone = inv.workspaces["gone"].section("tokens")
    assert gone.status == "error" and ("cannot reach" in gone.error or "gave up" in gone.error)


def test_describe_failure_redacts_and_handles_non_sdk_errors():
    pat = "dapi" + "ab" * 16
    text = describe_failure(RuntimeError(f"boom token={pat}"), {"method": "GET", "path": "/x", "status": 500})
    assert pat not in text and text.startswith("GET /x -> 500: RuntimeError")
    err = TimeoutError("Timed out after 0:00:02")
    err.__cause__ = ConnectionError("refused")
    assert describe_failure(err, None).startswith("gave up after retries: cannot reach the host")


def test_workspace_conf_falls_back_key_by_key_when_a_key_is_unknown(databricks_emulator, tenant):
    t = tenant("tokens")
    t["account"]["workspaces"][0]["conf_unsupported"] = ["enableProjectsAllowList", "enableWebTerminal"]
    emu = databricks_emulator(t)
    collector, inv, _ = make_collector(emu, account=False)
    collector.ensure([("ws1", "workspace_conf")])
    sec = inv.workspaces["ws1"].section("workspace_conf")
    assert sec.status == "ok"
    assert sorted(sec.data["unavailable"]) == ["enableProjectsAllowList", "enableWebTerminal"]
    assert sec.data["values"]["maxTokenLifetimeDays"] == "90"
    assert sec.calls[0]["status"] == 400 and len(sec.calls) == 1 + len(WORKSPACE_CONF_KEYS)


def test_a_section_name_belongs_to_one_function():
    from pytest_dbsec.collect import SECTIONS, section

    def probe(w, ctx):
        return {}

    try:
        section("probe_section", "workspace")(probe)
        section("probe_section", "workspace")(probe)  # the same function again: a reloaded conftest
        with pytest.raises(ValueError, match="registered twice"):
            section("probe_section", "workspace")(lambda w, ctx: {})
    finally:
        SECTIONS.pop("probe_section", None)


# -- account sections a workspace section needs (account_needs): one read per run ----------------------

def _account_scim_lists(emu) -> list[tuple[str, str]]:
    """(kind, startIndex) of each account SCIM list request: a page asked twice shows twice."""
    return sorted((r.path.rsplit("/", 1)[-1], str(r.query.get("startIndex"))) for r in emu.requests
                  if r.target == ACCOUNT and r.path.startswith("/api/2.0/accounts/") and
                  r.path.endswith(("/scim/v2/Users", "/scim/v2/Groups", "/scim/v2/ServicePrincipals")))


@pytest.mark.parametrize("with_account_section", [False, True])
def test_workspaces_take_the_account_identities_from_the_account_section(demo, with_account_section):
    """admin_assignments of every workspace carries the account's identities: they are read once, into
    the account's account_identities section (asked for or not), whose call log holds that read."""
    collector, inv, messages = make_collector(demo)
    wanted = [(ws, "admin_assignments") for ws in inv.workspaces]
    assert len(wanted) >= 2
    collector.ensure(wanted + ([(ACCOUNT, "account_identities")] if with_account_section else []))
    lists = _account_scim_lists(demo)
    assert lists == sorted(set(lists)) and {k for k, _ in lists} == {"Users", "Groups", "ServicePrincipals"}
    acct = inv.account.section("account_identities")
    assert acct.status == "ok"
    assert sorted(c["path"].rsplit("/", 1)[-1] for c in acct.calls if "/scim/v2/" in c["path"]) == \
        [k for k, _ in lists]
    for ws in inv.workspaces.values():
        sec = ws.section("admin_assignments")
        assert sec.status == "ok", sec.error
        assert not [c for c in sec.calls if "/scim/v2/" in c["path"]]  # recorded once, in the account section
        assert {u["userName"] for u in sec.data["account_identities"]["users"]} == \
            {u["userName"] for u in acct.data["users"]}
    if not with_account_section:  # read on demand, and said so
        assert any(m.startswith("account/account_identities (for ") for m in messages), messages
    assert_read_only(demo)


def test_a_failed_account_read_fails_every_workspace_section_that_needs_it_with_the_reason(demo):
    demo.add_fault("GET /api/2.0/accounts/*/scim/v2/Users", status=403)
    collector, inv, _ = make_collector(demo)
    collector.ensure([(ws, "admin_assignments") for ws in inv.workspaces])
    assert inv.account.section("account_identities").status == "error"
    for ws in inv.workspaces.values():
        sec = ws.section("admin_assignments")
        assert sec.status == "error" and sec.data is None
        assert sec.error.startswith("needs section 'account/account_identities', which failed: GET ")
        assert "/scim/v2/Users -> 403" in sec.error and "account admin" in sec.error
    # the failure is the run's answer: not asked again by each workspace
    assert [k for k, _ in _account_scim_lists(demo)] == ["Users"]


def test_account_needs_must_be_declared_and_is_for_workspace_sections(demo):
    from pytest_dbsec.collect import SECTIONS, section

    with pytest.raises(ValueError, match="account_needs= is for workspace sections"):
        section("probe_account_needs", "account", account_needs=("account_identities",))(lambda a, ctx: {})
    section("probe_undeclared", "workspace")(lambda w, ctx: ctx.account_data("account_identities"))
    try:
        collector, inv, _ = make_collector(demo)
        ws = next(iter(inv.workspaces))
        collector.ensure([(ws, "probe_undeclared")])
        sec = inv.workspaces[ws].section("probe_undeclared")
        assert sec.status == "error" and "without declaring it" in sec.error
        assert inv.account.section("account_identities").status == "absent"
    finally:
        SECTIONS.pop("probe_undeclared", None)
        SECTIONS.pop("probe_account_needs", None)


def test_a_section_starts_when_its_own_needs_are_in_not_after_unrelated_slow_ones():
    """Scheduling: a section that needs a quick one runs while an unrelated long one is still
    reading (a wave-by-wave order would make the long one wait here until it gives up)."""
    import threading

    from pytest_dbsec.collect import SECTIONS, section

    released = threading.Event()
    names = ("t_sched_slow", "t_sched_quick", "t_sched_after")

    @section("t_sched_slow", "workspace")
    def slow(client, ctx):
        return {"released_in_time": released.wait(10)}

    @section("t_sched_quick", "workspace")
    def quick(client, ctx):
        return {}

    @section("t_sched_after", "workspace", needs=("t_sched_quick", "t_sched_other"))
    def after(client, ctx):
        released.set()
        return {}

    @section("t_sched_other", "workspace", needs=("t_sched_quick",))
    def other(client, ctx):
        return {}

    try:
        inv = Inventory()
        inv.workspaces["ws1"] = Scope("ws1", "workspace")
        collector = Collector(inv, {"ws1": Target("ws1", host="http://127.0.0.1:9", token="x")}, max_workers=4,
                              client_factory=lambda t: object())
        collector.ensure([("ws1", n) for n in names])
        secs = inv.workspaces["ws1"].sections
        assert all(secs[n].status == "ok" for n in (*names, "t_sched_other"))
        assert secs["t_sched_slow"].data == {"released_in_time": True}
    finally:
        for n in (*names, "t_sched_other"):
            SECTIONS.pop(n, None)


def test_fan_outs_nest_without_deadlock_keep_order_and_stop_after_a_failure():
    """Fan-outs share one small helper pool per scope; a fan-out inside a fan-out must still finish
    (the caller works its own items), results come back in item order, and after a failure no new item
    starts and the first failing item's error is the section's."""
    import threading

    from pytest_dbsec.collect import SECTIONS, section

    started: list[int] = []
    lock = threading.Lock()

    @section("t_fan_nested", "workspace")
    def nested(client, ctx):
        return ctx.fan_out(lambda i: ctx.fan_out(lambda j: (i, j), range(5)), range(12))

    @section("t_fan_failing", "workspace")
    def failing(client, ctx):
        def item(i):
            with lock:
                started.append(i)
            if i >= 3:
                raise RuntimeError(f"item {i} broke")
            return i
        return ctx.fan_out(item, range(200))

    try:
        inv = Inventory()
        inv.workspaces["ws1"] = Scope("ws1", "workspace")
        collector = Collector(inv, {"ws1": Target("ws1", host="http://127.0.0.1:9", token="x")}, max_workers=2,
                              client_factory=lambda t: object())
        collector.ensure([("ws1", "t_fan_nested"), ("ws1", "t_fan_failing")])
        sec = inv.workspaces["ws1"].section("t_fan_nested")
        assert sec.status == "ok" and sec.data == [[(i, j) for j in range(5)] for i in range(12)]
        bad = inv.workspaces["ws1"].section("t_fan_failing")
        assert bad.status == "error" and "item 3 broke" in bad.error
        assert len(started) < 10  # stopped early: not all 200 items were tried
    finally:
        SECTIONS.pop("t_fan_nested", None)
        SECTIONS.pop("t_fan_failing", None)


def test_a_failure_in_a_nested_fan_out_names_the_call_that_failed(demo):
    """The reason names the failing call, not the outer thread's last one. An inner fan-out's item may
    run on a helper thread; the helper marks the error with its own call (``dbsec_call``), and the
    outer fan-out must keep that, though its own thread's last call was a listing that succeeded."""
    from pytest_dbsec.collect import SECTIONS, section

    denied = {"method": "GET", "path": "/api/2.1/unity-catalog/entity-tag-assignments/columns/c.s.t.x/tags",
              "status": 403}

    @section("t_fan_inner_call", "workspace")
    def outer(w, ctx):
        def catalog(i):
            w.api_client.do("GET", "/api/2.1/unity-catalog/catalogs")  # this thread's last call: a 200
            err = RuntimeError("denied by the test")
            err.dbsec_call = denied  # as a helper of an inner fan-out marks it
            raise err

        return ctx.fan_out(catalog, range(2))

    try:
        collector, inv, _ = make_collector(demo, ["prod"], account=False, workers=2)
        collector.ensure([("prod", "t_fan_inner_call")])
        sec = inv.workspaces["prod"].section("t_fan_inner_call")
        assert sec.status == "error"
        assert sec.error.startswith(f"GET {denied['path']} -> 403: RuntimeError: denied by the test"), sec.error
    finally:
        SECTIONS.pop("t_fan_inner_call", None)


def test_a_fan_out_started_late_gets_helpers_while_earlier_fan_outs_still_run():
    """The scope's helpers take turns between fan-outs: fan-outs that started first (the 10,000
    column tags) must not keep every helper until they are empty while a later one (the grants, on
    the route that decides how long a run takes) is worked by its caller alone."""
    import threading
    import time

    from pytest_dbsec.collect import Context
    from pytest_dbsec.connect import CallLog

    inv = Inventory()
    inv.workspaces["ws1"] = Scope("ws1", "workspace")
    collector = Collector(inv, {"ws1": Target("ws1", host="http://127.0.0.1:9", token="x")}, max_workers=2,
                          client_factory=lambda t: object())
    lock = threading.Lock()
    early_done: list[int] = []
    late_items: list[tuple[str, int]] = []  # (thread, how many early fan-outs had finished)

    def early(k):
        ctx = Context(collector, "ws1", CallLog(), f"early{k}")
        ctx.fan_out(lambda i: time.sleep(0.01), range(60))
        with lock:
            early_done.append(k)

    def late_item(i):
        with lock:
            late_items.append((threading.current_thread().name, len(early_done)))
        time.sleep(0.01)

    # max_workers 2: each fan-out has its caller and one helper from a pool of 4 threads, so five
    # early fan-outs queue more helpers than the pool has threads
    early_threads = [threading.Thread(target=early, args=(k,), name=f"early{k}") for k in range(5)]
    for t in early_threads:
        t.start()
    time.sleep(0.05)
    Context(collector, "ws1", CallLog(), "late").fan_out(late_item, range(30))
    for t in early_threads:
        t.join(10)
    assert len(early_done) == 5
    caller = threading.current_thread().name
    by_helpers_meanwhile = [n for name, n in late_items if name != caller and n == 0]
    assert by_helpers_meanwhile, late_items  # a helper worked the late fan-out before any early one ended


def test_helpers_take_turns_by_section_not_by_fan_out():
    """A section that reads in many fan-outs at once (the grants or column tags of several catalogs)
    must not take most of the scope's helpers from a section that reads in one (the permissions of
    every job, on a rate-limited route of its own): the helpers go round the sections."""
    import threading
    import time

    from pytest_dbsec.collect import Context
    from pytest_dbsec.connect import CallLog

    inv = Inventory()
    inv.workspaces["ws1"] = Scope("ws1", "workspace")
    # max_workers 4: each fan-out has its caller and up to 3 helpers queued; a pool of 8 helpers (twice
    # the collector's own) so that some are left over when "many"'s nested fan-outs hold their callers:
    # this test is about whose turn it is, not how many threads there are
    from pytest_dbsec.collect import _Helpers

    collector = Collector(inv, {"ws1": Target("ws1", host="http://127.0.0.1:9", token="x")}, max_workers=4,
                          client_factory=lambda t: object())
    collector._fan_out_pools["ws1"] = _Helpers(8, "dbsec-ws1")
    lock = threading.Lock()
    by_helper = {"many": 0, "one": 0}  # items worked by helpers while both sections had work
    both_running = threading.Event()
    finished = threading.Event()

    def item(section):
        def work(_):
            if threading.current_thread().name.startswith("dbsec-ws1") and both_running.is_set() \
                    and not finished.is_set():
                with lock:
                    by_helper[section] += 1
            time.sleep(0.005)
        return work

    def many():  # six nested fan-outs at once
        ctx = Context(collector, "ws1", CallLog(), "many")
        ctx.fan_out(lambda c: ctx.fan_out(item("many"), range(150)), range(6))
        finished.set()

    t = threading.Thread(target=many)
    t.start()
    time.sleep(0.05)
    both_running.set()
    Context(collector, "ws1", CallLog(), "one").fan_out(item("one"), range(200))
    finished.set()
    t.join(30)
    total = by_helper["many"] + by_helper["one"]
    assert total > 50, by_helper
    # turns by fan-out: "one" gets its share of ~20 queued helpers (measured 17%); by section, about
    # half of the pool threads that are not working "many"'s inner fan-outs as their callers (~29%)
    assert by_helper["one"] / total > 0.23, by_helper


def test_helper_threads_end_when_idle_and_start_again_for_new_work():
    """A process that makes many collectors must not keep every one's helper threads: they end after
    their idle timeout, and work submitted later still runs on new ones."""
    import threading
    import time

    from pytest_dbsec.collect import _Helpers

    pool = _Helpers(4, "idle-test", idle_timeout=0.05)
    done = threading.Semaphore(0)

    def live():
        return [t for t in threading.enumerate() if t.name.startswith("idle-test_")]

    for round_ in range(2):
        for _ in range(8):
            pool.submit("s", lambda: (time.sleep(0.01), done.release()))
        for _ in range(8):
            assert done.acquire(timeout=10), f"round {round_}: a submitted helper never ran"
        assert 1 <= len(live()) <= 4
        deadline = time.monotonic() + 10
        while live() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert live() == [], f"round {round_}: idle threads did not end"


def _wait_until(cond, what):
    import time

    deadline = time.monotonic() + 10
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def test_helpers_never_strand_work_when_a_thread_times_out_as_it_arrives():
    """The subtle case: an idle thread's wait times out just as a submit notifies it, so the wait says
    "timed out" although the submit counted on that thread. It must still take the work before it
    ends. Made certain here by a wait that always says it timed out."""
    import threading

    from pytest_dbsec.collect import _Helpers

    pool = _Helpers(4, "race-test", idle_timeout=5)
    real_wait = pool._work.wait
    pool._work.wait = lambda timeout=None: (real_wait(timeout), False)[1]
    ran = threading.Semaphore(0)
    pool.submit("s", ran.release)
    assert ran.acquire(timeout=10)
    _wait_until(lambda: pool._idle == 1, "the thread did not go idle")
    pool.submit("s", ran.release)  # one idle thread: it is woken, no new thread is started
    assert ran.acquire(timeout=10), "work stranded: the woken thread ended without taking it"


def test_helpers_start_a_thread_for_work_an_idle_thread_cannot_take_yet():
    """Two helpers submitted at once with one idle thread: the second needs a new thread, although a
    thread is still counted idle (woken, not yet running) when it is submitted."""
    import threading
    import time

    from pytest_dbsec.collect import _Helpers

    pool = _Helpers(4, "pair-test", idle_timeout=5)
    ran = threading.Semaphore(0)
    pool.submit("s", ran.release)
    assert ran.acquire(timeout=10)
    _wait_until(lambda: pool._idle == 1, "the thread did not go idle")
    real_wait = pool._work.wait

    def slow_to_wake(timeout=None):  # woken, but slow to get going: still counted idle for a while
        notified = real_wait(timeout)
        pool._lock.release()
        time.sleep(0.2)
        pool._lock.acquire()
        return notified

    pool._work.wait = slow_to_wake
    both = threading.Barrier(2, timeout=10)
    met = []
    for _ in range(2):  # each needs the other running at the same time
        pool.submit("s", lambda: met.append(both.wait()))
    _wait_until(lambda: len(met) == 2 or both.broken, "the helpers did not finish")
    assert not both.broken, "the second helper had no thread of its own"
