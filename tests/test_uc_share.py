"""One read per metastore: workspaces of a run on the same metastore share its UC reads, and each
workspace's UC data stays exactly what a read from that workspace alone gives (an ISOLATED catalog is
listed only where it is bound)."""

from __future__ import annotations

import json
from collections import Counter

from dbsec_helpers import assert_read_only
from test_collect import AUDITOR, make_collector

from pytest_dbsec.collect import Collector
from pytest_dbsec.collect.uc_sql import canonical
from pytest_dbsec.connect import Target
from pytest_dbsec.inventory import Inventory, Scope

UC_SECTIONS = ("uc", "uc_column_tags", "uc_recipients", "uc_system_schemas")
ME = "/api/2.0/preview/scim/v2/Me"
# listed by each workspace itself: what it lists can differ (bindings), and they are one call each
PER_WORKSPACE = ("/.well-known/databricks-config", "/api/2.1/unity-catalog/current-metastore-assignment", "/api/2.1/unity-catalog/catalogs",
                 "/api/2.1/unity-catalog/external-locations", "/api/2.1/unity-catalog/storage-credentials")


def shared_tenant(tenant) -> dict:
    """uc_base with a second workspace on the same metastore: ``sales`` is ISOLATED and bound to ws1,
    ``ws2_private`` ISOLATED and bound to ws2, ``analytics`` OPEN (both list it)."""
    t = tenant("uc_base")
    acct = t["account"]
    ws1 = acct["workspaces"][0]
    acct["workspaces"].append({**ws1, "name": "ws2", "default_catalog_name": "analytics"})
    acct["metastores"][0]["catalogs"].append({
        "name": "ws2_private", "owner": "data-engineers", "isolation_mode": "ISOLATED", "bindings": ["ws2"],
        "grants": [{"principal": "data-engineers", "privileges": ["USE_CATALOG", "SELECT"]}],
        "schemas": [{"name": "hr", "owner": "data-engineers",
                     "grants": [{"principal": "analysts", "privileges": ["USE_SCHEMA"]}],
                     "tables": [{"name": "salaries", "owner": "etl-sp",
                                 "columns": [{"name": "employee"}, {"name": "salary", "type_name": "LONG"}],
                                 "column_tags": {"salary": {"pii": "financial"}},
                                 "grants": [{"principal": "analysts", "privileges": ["SELECT"]}]}]}]})
    t["credentials"] += [{"token": "emu-auditor-ws2", "principal": AUDITOR, "workspace": "ws2"},
                         {"token": "emu-carol-ws2", "principal": "carol@corp.example.com", "workspace": "ws2"}]
    return t


def _run(emu, workspaces, principals=None, workers=4):
    """Collect the UC sections of ``workspaces`` in one run; return (sections by workspace, requests)."""
    emu.clear_requests()
    if principals is None:
        col, inv, _ = make_collector(emu, workspaces, account=False, workers=workers)
    else:  # a credential per workspace
        inv, targets = Inventory(), {}
        for ws in emu.workspaces:
            if ws["name"] in workspaces:
                targets[ws["name"]] = Target(ws["name"], host=ws["url"],
                                             token=emu.token_for(principals[ws["name"]], ws["name"]))
                inv.workspaces[ws["name"]] = Scope(ws["name"], "workspace", id=ws["id"], host=ws["url"])
        col = Collector(inv, targets, max_workers=workers)
    col.ensure([(ws, s) for ws in workspaces for s in UC_SECTIONS])
    return ({ws: {s: inv.scope(ws).section(s) for s in UC_SECTIONS} for ws in workspaces}, list(emu.requests))


def _same(data: dict) -> str:
    if "grants" in data or "tags" in data:
        return canonical(data)  # drops read_via and shared_from, orders lists
    return json.dumps({k: v for k, v in data.items() if k != "shared_from"}, sort_keys=True)


def _key(r) -> tuple:
    return (r.method, r.path, tuple(sorted((k, str(v)) for k, v in r.query.items())))


def test_each_workspace_gets_exactly_its_own_read_and_the_metastore_is_read_once(emulator, tenant):
    emu = emulator(shared_tenant(tenant))
    alone = {ws: _run(emu, [ws]) for ws in ("ws1", "ws2")}
    both, requests = _run(emu, ["ws1", "ws2"])
    for ws in ("ws1", "ws2"):
        for s in UC_SECTIONS:
            mine, own = both[ws][s], alone[ws][0][ws][s]
            assert mine.status == own.status == "ok", (ws, s, mine.error, own.error)
            assert _same(mine.data) == _same(own.data), (ws, s)
    # the two workspaces do see different metastores' worth: the bindings are honoured
    names = {ws: {c["name"] for c in both[ws]["uc"].data["catalogs"]} for ws in both}
    assert names == {"ws1": {"sales", "analytics"}, "ws2": {"analytics", "ws2_private"}}
    assert "table/ws2_private.hr.salaries" in both["ws2"]["uc"].data["grants"]
    assert not [k for k in both["ws1"]["uc"].data["grants"] if "ws2_private" in k]
    assert both["ws2"]["uc_column_tags"].data["tags"]["ws2_private.hr.salaries.salary"] == [
        {"tag_key": "pii", "tag_value": "financial"}]
    # the shared part is said, and only the shared part: which workspace reads a part first is a race
    # here; a catalog bound to one workspace is never shared
    for ws, other in (("ws1", "ws2"), ("ws2", "ws1")):
        for s in UC_SECTIONS:
            assert set(both[ws][s].data["shared_from"].values()) <= {other}
    assert (set(both["ws1"]["uc"].data["shared_from"]) | set(both["ws2"]["uc"].data["shared_from"])
            == {"catalog/analytics", "metastore"})
    # calls: each metastore-level read once in the run (what one workspace alone reads of it), each
    # workspace's own listing twice, plus one SCIM Me per workspace to tell that it is the same caller
    one, two = (Counter(_key(r) for r in alone[ws][1]) for ws in ("ws1", "ws2"))
    run = Counter(_key(r) for r in requests)
    assert run[("GET", ME, ())] == 2
    for key in set(one) | set(two) | set(run):
        if key[1] == ME:
            continue
        expected = one[key] + two[key] if key[1] in PER_WORKSPACE else max(one[key], two[key])
        assert run[key] == expected, key
    saved = sum((one + two).values()) - sum(run.values()) + 2
    assert saved >= 10  # analytics' schemas, tables, grants, tags; metastore-level grants and lists
    assert run[("GET", "/api/2.1/unity-catalog/permissions/table/analytics.reports.daily", (("max_results", "0"),))] == 1
    assert_read_only(emu)


def test_the_later_workspace_says_what_it_reused(emulator, tenant):
    # one worker: ws1's sections run first, so ws2 reuses everything both can see
    emu = emulator(shared_tenant(tenant))
    both, _ = _run(emu, ["ws1", "ws2"], workers=1)
    assert all(both["ws1"][s].data["shared_from"] == {} for s in UC_SECTIONS)
    assert both["ws2"]["uc"].data["shared_from"] == {"catalog/analytics": "ws1", "metastore": "ws1"}
    assert both["ws2"]["uc_column_tags"].data["shared_from"] == {"catalog/analytics": "ws1"}
    assert both["ws2"]["uc_recipients"].data["shared_from"] == {"metastore": "ws1"}
    assert both["ws2"]["uc_system_schemas"].data["shared_from"] == {"metastore": "ws1"}
    # and the progress says so
    col, _, messages = make_collector(emu, ["ws1", "ws2"], account=False, workers=1)
    col.ensure([(ws, "uc") for ws in ("ws1", "ws2")])
    assert any(m.startswith("[2/2] ws2/uc: ok, 2 part(s) read via ws1") for m in messages), messages
    assert any(m.startswith("[1/2] ws1/uc: ok (") for m in messages), messages


def test_a_workspace_alone_on_its_metastore_costs_nothing_extra(emulator, tenant):
    emu = emulator(shared_tenant(tenant))
    sections, requests = _run(emu, ["ws1"])
    assert all(s.status == "ok" and s.data["shared_from"] == {} for s in sections["ws1"].values())
    assert not [r for r in requests if r.path == ME]


def test_different_callers_share_nothing(emulator, tenant):
    # ws2 read as carol (not an admin): what she may list is not the auditor's, so no read is reused
    emu = emulator(shared_tenant(tenant))
    principals = {"ws1": AUDITOR, "ws2": "carol@corp.example.com"}
    alone = {ws: _run(emu, [ws], {ws: principals[ws]}) for ws in ("ws1", "ws2")}
    both, requests = _run(emu, ["ws1", "ws2"], principals)
    for ws in ("ws1", "ws2"):
        for s in UC_SECTIONS:
            mine, own = both[ws][s], alone[ws][0][ws][s]
            assert (mine.status, mine.error) == (own.status, own.error), (ws, s)
            if mine.status == "ok":
                assert _same(mine.data) == _same(own.data), (ws, s)
                assert mine.data.get("shared_from", {}) == {}
    run = Counter(_key(r) for r in requests if r.path != ME)
    assert run == Counter(_key(r) for ws in alone for r in alone[ws][1])


# -- the SQL path: the warehouse's information_schema is read once for every workspace on its metastore


def _sql_run(emu, workspaces, warehouse_workspace="ws1"):
    from test_uc_sql_path import WH

    emu.clear_requests()
    opts = {"warehouse_id": WH, "warehouse_workspace": warehouse_workspace, "uc_via": "sql"}
    col, inv, _ = make_collector(emu, workspaces, account=False, options=opts)
    col.ensure([(ws, s) for ws in workspaces for s in ("uc", "uc_column_tags")])
    return ({ws: {s: inv.scope(ws).section(s) for s in ("uc", "uc_column_tags")} for ws in workspaces},
            [r for r in emu.requests if r.path == "/api/2.0/sql/statements"])


def test_sql_path_reads_the_metastore_once_and_each_workspace_keeps_its_catalogs(emulator, tenant):
    from test_uc_sql_path import _with_admin_warehouse

    t = _with_admin_warehouse(shared_tenant(tenant))
    t["account"]["metastores"][0]["catalogs"][-1]["bindings"] = ["ws1", "ws2"]  # the warehouse (ws1) sees it
    emu = emulator(t)
    rest = {ws: _run(emu, [ws])[0][ws] for ws in ("ws1", "ws2")}
    single, single_statements = _sql_run(emu, ["ws1"])
    both, statements = _sql_run(emu, ["ws1", "ws2"])
    for ws in ("ws1", "ws2"):
        for s in ("uc", "uc_column_tags"):
            assert both[ws][s].status == "ok", both[ws][s].error
            assert both[ws][s].data["read_via"] == "sql"
            assert canonical(both[ws][s].data) == canonical(rest[ws][s].data), (ws, s)
    assert canonical(single["ws1"]["uc"].data) == canonical(both["ws1"]["uc"].data)
    # ws2 does not list sales (bound to ws1): none of it in its data, though the warehouse showed it
    assert not [k for k in both["ws2"]["uc"].data["grants"] if "sales" in k]
    assert {t["catalog_name"] for t in both["ws2"]["uc"].data["tables"]} == {"analytics", "ws2_private"}
    # the statements of one workspace's read, not two
    assert len(statements) == len(single_statements) == 14
    # which workspace runs a statement first is a race: each says the other when it reused its rows
    shared = {ws: both[ws]["uc"].data["shared_from"] for ws in both}
    assert shared["ws1"] in ({}, {"metastore": "ws2"}) and shared["ws2"] in ({}, {"metastore": "ws1"})
    assert shared["ws1"] or shared["ws2"]
    assert_read_only(emu)


def test_sql_path_still_fails_closed_for_a_catalog_the_warehouse_cannot_see(emulator, tenant):
    from test_uc_sql_path import _with_admin_warehouse

    emu = emulator(_with_admin_warehouse(shared_tenant(tenant)))  # ws2_private is bound to ws2 only
    both, _ = _sql_run(emu, ["ws1", "ws2"])
    assert both["ws1"]["uc"].status == "ok"
    assert both["ws2"]["uc"].status == "error" and "ws2_private" in both["ws2"]["uc"].error


# -- an account-wide run: workspaces reached with the account's credential share the metastore's reads


def test_an_account_run_reads_a_shared_metastore_once(pytester, emulator, tenant, monkeypatch, tmp_path):
    emu = emulator(shared_tenant(tenant))
    cfg = tmp_path / "account.databrickscfg"
    cfg.write_text(f"[acct]\nhost = {emu.account_url}\naccount_id = {emu.account_id}\n"
                   f"token = {emu.token_for(AUDITOR)}\n")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(cfg))
    emu.clear_requests()
    result = pytester.runpytest("-p", "no:cacheprovider", "--dbsec-report-dir", "out",
                                "--databricks-account-profile", "acct",
                                "--dbsec-workspace-urls", ",".join(w["url"] for w in emu.workspaces),
                                "-k", "UC_04 or UC_09")
    report = json.loads((pytester.path / "out" / "findings.json").read_text())
    assert {r["target"] for r in report["results"] if r["control_id"] == "UC-04"} == {"ws1", "ws2"}, \
        result.stdout.str()
    assert not [r for r in report["results"] if r["outcome"] == "error"], result.stdout.str()
    calls = Counter(r.path for r in emu.requests)
    # analytics (listed by both) and the metastore's own grants: read once in the run
    assert calls["/api/2.1/unity-catalog/permissions/table/analytics.reports.daily"] == 1
    assert calls["/api/2.1/unity-catalog/permissions/catalog/analytics"] == 1
    assert calls["/api/2.1/unity-catalog/entity-tag-assignments/columns/analytics.reports.daily.day/tags"] == 1
    assert calls["/api/2.1/unity-catalog/permissions/external_location/raw-landing"] == 1
    # a catalog bound to one workspace is read from that workspace; each lists its catalogs itself
    assert {r.target for r in emu.requests if "/sales" in r.path or "=sales" in str(r.query)} == {"ws1"}
    assert {r.target for r in emu.requests if "ws2_private" in r.path + str(r.query)} == {"ws2"}
    assert Counter(r.target for r in emu.requests if r.path == "/api/2.1/unity-catalog/catalogs") == {
        "ws1": 1, "ws2": 1}
    assert_read_only(emu)


def test_an_isolated_securable_is_reused_only_where_it_is_bound(emulator, tenant):
    t = shared_tenant(tenant)
    ms = t["account"]["metastores"][0]
    analytics = next(c for c in ms["catalogs"] if c["name"] == "analytics")
    analytics.update(isolation_mode="ISOLATED", bindings=["ws1", "ws2"])  # bound to both: shared
    ms["external_locations"][0].update(isolation_mode="ISOLATION_MODE_ISOLATED", bindings=["ws1"])
    emu = emulator(t)
    alone = {ws: _run(emu, [ws])[0][ws] for ws in ("ws1", "ws2")}
    both, requests = _run(emu, ["ws1", "ws2"], workers=1)  # ws1 first: ws2 is the one that may reuse
    for ws in ("ws1", "ws2"):
        for s in UC_SECTIONS:
            assert both[ws][s].status == "ok", both[ws][s].error
            assert _same(both[ws][s].data) == _same(alone[ws][s].data), (ws, s)
    calls = Counter((r.target, r.path) for r in requests)
    # analytics: ws2 asked its bindings once, found itself, and reused ws1's schemas, tables, grants, tags
    assert calls[("ws2", "/api/2.1/unity-catalog/bindings/catalog/analytics")] == 1
    assert not [p for (ws, p) in calls if ws == "ws2" and "analytics" in p and "/bindings/" not in p]
    assert both["ws2"]["uc"].data["shared_from"]["catalog/analytics"] == "ws1"
    # the location is bound to ws1 only (listed by ws2 all the same): ws2 reads its grants itself
    assert calls[("ws2", "/api/2.1/unity-catalog/bindings/external_location/raw-landing")] == 1
    assert calls[("ws1", "/api/2.1/unity-catalog/permissions/external_location/raw-landing")] >= 1
    assert calls[("ws2", "/api/2.1/unity-catalog/permissions/external_location/raw-landing")] >= 1
    # nothing asks bindings for an OPEN securable or for what it read itself
    assert not [p for (ws, p) in calls if ws == "ws1" and "/bindings/" in p]
    assert_read_only(emu)


def test_a_catalog_s_grants_and_tags_are_read_as_soon_as_its_own_contents_are_listed(emulator, tenant):
    # One worker: the requests come in the order the sections read. A catalog's grants (the
    # rate-limited part) and column tags follow ITS listing, not every catalog's: on a big metastore
    # listing all of them first held the grants back for minutes.
    emu = emulator(tenant("uc_base"))
    sections, requests = _run(emu, ["ws1"], workers=1)
    assert all(s.status == "ok" for s in sections["ws1"].values())
    first, second = [c["name"] for c in sections["ws1"]["uc"].data["catalogs"]][:2]
    seq = [(r.path, r.query.get("catalog_name")) for r in requests]
    second_listed = seq.index(("/api/2.1/unity-catalog/schemas", second))
    assert seq.index((f"/api/2.1/unity-catalog/permissions/catalog/{first}", None)) < second_listed
    assert seq.count(("/api/2.1/unity-catalog/schemas", second)) == 1  # uc_column_tags lists nothing again

    # the column tags alone: the first catalog's before the second is listed
    emu.clear_requests()
    col, inv, _ = make_collector(emu, ["ws1"], account=False, workers=1)
    col.ensure([("ws1", "uc_column_tags")])
    assert inv.scope("ws1").section("uc_column_tags").status == "ok"
    seq = [(r.path, r.query.get("catalog_name")) for r in emu.requests]
    first_tag = next(i for i, (p, _) in enumerate(seq)
                     if p.startswith(f"/api/2.1/unity-catalog/entity-tag-assignments/columns/{first}."))
    assert first_tag < seq.index(("/api/2.1/unity-catalog/schemas", second))
