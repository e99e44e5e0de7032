"""The SQL-warehouse path of the UC sections (--dbsec-uc-via sql): system.information_schema through the
Statement Execution API gives the same inventory as the REST path, or fails closed."""

from __future__ import annotations

import copy

import pytest
import yaml

from dbsec_helpers import assert_read_only
from test_collect import AUDITOR, make_collector

from pytest_dbsec.collect.uc_sql import canonical
from pytest_dbsec.emulator import sql as emu_sql
from pytest_dbsec.emulator.tenant import DEMO_TENANT

UC_SECTIONS = ("uc", "uc_column_tags")
WH = "wh-uc"
HOSTILE = "o'brien \"q\"; DROP TABLE x --"


def _with_admin_warehouse(t: dict) -> dict:
    """Every workspace gets a warehouse, and the auditor becomes a metastore admin of every metastore
    (the owner becomes a group it belongs to): the precondition of the SQL path."""
    acct = t["account"]
    acct.setdefault("groups", []).append({"displayName": "ms-admins-test", "members": [AUDITOR]})
    for m in acct["metastores"]:
        m["owner"] = "ms-admins-test"
    for ws in acct["workspaces"]:
        ws.setdefault("warehouses", []).append({"id": WH, "name": "uc reader", "creator_name": AUDITOR,
                                                "state": "RUNNING", "warehouse_type": "PRO"})
    return t


def _collect(emu, workspace: str, via: str, principal=AUDITOR):
    opts = {"warehouse_id": WH, "warehouse_workspace": workspace, "uc_via": via} if via == "sql" else {}
    col, inv, _ = make_collector(emu, [workspace], principal=principal, account=False, options=opts)
    col.ensure([(workspace, s) for s in UC_SECTIONS])
    return {s: inv.scope(workspace).section(s) for s in UC_SECTIONS}


def _assert_same(emu, workspace: str) -> dict:
    rest, sql = _collect(emu, workspace, "rest"), _collect(emu, workspace, "sql")
    for s in UC_SECTIONS:
        assert rest[s].status == "ok" and sql[s].status == "ok", (rest[s].error, sql[s].error)
        assert rest[s].data["read_via"] == "rest" and sql[s].data["read_via"] == "sql"
        assert canonical(sql[s].data) == canonical(rest[s].data), s
    return {"rest": rest, "sql": sql}


def _uc_tenant(tenant) -> dict:
    t = _with_admin_warehouse(tenant("uc_base"))
    # a hostile name on every level the queries touch, with a grant and a tag
    sales = t["account"]["metastores"][0]["catalogs"][0]
    sales["schemas"].append({"name": HOSTILE, "owner": "data-engineers", "grants": [
        {"principal": "analysts", "privileges": ["USE_SCHEMA"]}], "tables": [
        {"name": HOSTILE, "owner": "etl-sp", "columns": [{"name": HOSTILE}],
         "column_tags": {HOSTILE: {"pii": "x'y"}}, "grants": [{"principal": "analysts", "privileges": ["SELECT"]}]}]})
    return t


def test_both_paths_give_the_same_inventory(emulator, tenant):
    emu = emulator(_uc_tenant(tenant))
    runs = _assert_same(emu, "ws1")
    sql = runs["sql"]["uc"]
    # the data is not trivially equal: grants on every level, masks, a row filter, tags, the hostile table
    assert any(a["privileges"] for a in sql.data["grants"][f"table/sales.{HOSTILE}.{HOSTILE}"])
    assert any(c.get("mask") for t in sql.data["tables"] for c in t["columns"])
    assert any(t.get("row_filter") for t in sql.data["tables"])
    assert runs["sql"]["uc_column_tags"].data["tags"][f"sales.{HOSTILE}.{HOSTILE}.{HOSTILE}"] == [
        {"tag_key": "pii", "tag_value": "x'y"}]
    # a fixed number of calls, not one per securable
    statements = [c for s in UC_SECTIONS for c in runs["sql"][s].calls if c["path"] == "/api/2.0/sql/statements"]
    per_securable = [c for s in UC_SECTIONS for c in runs["sql"][s].calls if "/permissions/" in c["path"]
                     or "/entity-tag-assignments/" in c["path"]]
    assert len(statements) == 14 and not per_securable
    # hostile names travel as data: no statement text carries them
    assert not [r for r in emu.requests if r.method == "POST" and HOSTILE in (r.statement or "")]
    assert_read_only(emu)


def test_both_paths_agree_on_the_demo(emulator):
    t = _with_admin_warehouse(yaml.safe_load(DEMO_TENANT.read_text()))
    emu = emulator(t)
    for ws in [w["name"] for w in t["account"]["workspaces"] if w.get("metastore")]:
        _assert_same(emu, ws)
    assert_read_only(emu)


def test_polling_and_many_chunks(emulator, tenant):
    t = _uc_tenant(tenant)
    t["sql"] = {"pending_polls": 1, "running_polls": 2, "chunk_rows": 2}
    emu = emulator(t)
    _assert_same(emu, "ws1")
    assert [r for r in emu.requests if "/result/chunks/" in r.path]
    polls = [r for r in emu.requests if r.method == "GET" and r.path.startswith("/api/2.0/sql/statements/")
             and "/result/" not in r.path]
    assert len(polls) >= 3 * 14  # every statement was PENDING once and RUNNING twice


def test_a_failed_statement_errors_the_section_with_its_reason(emulator, tenant, monkeypatch):
    emu = emulator(_uc_tenant(tenant))
    # an engine without the column_masks view (as on a runtime that predates it)
    monkeypatch.delitem(emu_sql.TABLES, "system.information_schema.column_masks")
    got = _collect(emu, "ws1", "sql")
    for s in UC_SECTIONS:
        assert got[s].status == "error" and got[s].data is None
        assert got[s].error.startswith(f"SQL warehouse {WH}: statement FAILED: BAD_REQUEST: [TABLE_OR_VIEW_NOT_FOUND]")
        assert "column_masks" in got[s].error


def test_a_caller_who_is_not_a_metastore_admin_errors_the_section(emulator, tenant):
    t = _uc_tenant(tenant)
    t["account"]["users"].append({"userName": "eve@corp.example.com", "displayName": "Eve"})
    ws = t["account"]["workspaces"][0]
    ws["assignments"].append({"principal": "eve@corp.example.com", "permissions": ["USER"]})
    ws.setdefault("permissions", {})["warehouses/uc reader"] = [
        {"user_name": "eve@corp.example.com", "permission_level": "CAN_USE"}]
    t["credentials"].append({"token": "emu-eve-ws1", "principal": "eve@corp.example.com", "workspace": "ws1"})
    emu = emulator(t)
    got = _collect(emu, "ws1", "sql", principal="eve@corp.example.com")
    for s in UC_SECTIONS:
        assert got[s].status == "error"
        # eve sees `sales` through the BROWSE grant to account users, not `analytics`
        assert "eve@corp.example.com is not a metastore admin (the metastore owner is ms-admins-test" in got[s].error
        assert "1 catalog(s) the REST API lists are not in information_schema.catalogs: analytics" in got[s].error
    # the same caller through REST sees every catalog here (the emulator's REST lists are not filtered)
    assert _collect(emu, "ws1", "rest", principal="eve@corp.example.com")["uc"].status == "ok"
    assert_read_only(emu)


def test_nested_group_membership_counts_as_metastore_admin(emulator, tenant):
    t = _uc_tenant(tenant)
    t["account"]["groups"].append({"displayName": "outer-admins", "members": ["ms-admins-test"]})
    for m in t["account"]["metastores"]:
        m["owner"] = "outer-admins"  # the auditor is in it only through ms-admins-test
    emu = emulator(t)
    _assert_same(emu, "ws1")


def test_a_warehouse_on_another_metastore_leaves_the_rest_path(emulator, tenant):
    t = _uc_tenant(tenant)
    acct = t["account"]
    other = copy.deepcopy(acct["metastores"][0])
    other.update(name="other-ms", metastore_id="0c0c0c0c-0000-4000-8000-0000000000ff", catalogs=[])
    acct["metastores"].append(other)
    ws2 = copy.deepcopy(acct["workspaces"][0])
    ws2.update(name="ws2", id=4242, metastore="other-ms")
    acct["workspaces"].append(ws2)
    t["credentials"].append({"token": "emu-auditor-ws2", "principal": "dbsec-auditor", "workspace": "ws2"})
    emu = emulator(t)
    col, inv, _ = make_collector(emu, ["ws1", "ws2"], account=False,
                                 options={"warehouse_id": WH, "warehouse_workspace": "ws2", "uc_via": "sql"})
    col.ensure([("ws1", "uc")])
    sec = inv.scope("ws1").section("uc")
    assert sec.status == "ok" and sec.data["read_via"] == "rest"


def test_sql_path_needs_a_warehouse(pytester):
    result = pytester.runpytest("--dbsec-demo", "--dbsec-uc-via", "sql")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--dbsec-uc-via sql needs --dbsec-warehouse-id*"])


def _uc_results(report: dict) -> dict:
    return {(r["control_id"], r["target"]): (r["outcome"], r.get("reason"),
                                             sorted(f["resource_id"] for f in r.get("findings") or []))
            for r in report["results"] if r["control_id"].startswith("UC-")}


def test_the_uc_controls_judge_the_same_through_either_path(audit, tenant):
    t = _uc_tenant(tenant)
    # something for the controls to find, so agreement is not just "everything passed"
    t["account"]["metastores"][0]["catalogs"][1]["grants"].append(
        {"principal": "alice@corp.example.com", "privileges": ["ALL_PRIVILEGES", "MANAGE"]})
    _, rest = audit(t, "-k", "UC")
    emu = audit.emu
    _, sql = audit(t, "-k", "UC", "--dbsec-warehouse-id", WH, "--dbsec-uc-via", "sql", emu=emu)
    assert _uc_results(sql) == _uc_results(rest)
    assert any(o == "failed" for o, _, _ in _uc_results(sql).values())
    assert_read_only(emu)


def test_a_partial_view_makes_the_uc_controls_error(audit, tenant):
    t = tenant("uc_base")
    t["account"]["workspaces"][0]["warehouses"] = [{"id": WH, "name": "uc reader", "creator_name": AUDITOR,
                                                    "state": "RUNNING", "warehouse_type": "PRO"}]
    _, report = audit(t, "-k", "UC", "--dbsec-warehouse-id", WH, "--dbsec-uc-via", "sql")
    results = _uc_results(report)
    # every control that reads the uc section errors, naming why; UC-13 reads only uc_system_schemas
    judged = {k: v for k, v in results.items() if k[0] != "UC-13"}
    assert len(judged) == 12 and all(o == "error" and "is not a metastore admin" in reason
                                     for o, reason, _ in judged.values())
    assert results[("UC-13", "ws1")][0] == "passed"


def test_large_views_are_read_in_pages(emulator, tenant, monkeypatch):
    from pytest_dbsec.collect import uc_sql

    monkeypatch.setattr(uc_sql, "PAGE_ROWS", 3)
    emu = emulator(_uc_tenant(tenant))
    _assert_same(emu, "ws1")
    paged = [r.statement for r in emu.requests if r.method == "POST" and "OFFSET" in (r.statement or "")]
    assert any("FROM system.information_schema.columns" in s for s in paged)
    assert any("FROM system.information_schema.table_privileges" in s for s in paged)


@pytest.mark.parametrize("direct, spelling", [
    ("NONE", "underscores"),  # what published queries against these views expect (the emulator's default)
    (None, "spaces"),         # the other readings of the reference: direct rows NULL, "USE CATALOG"
    ("", "lower case"),
])
def test_direct_grants_and_privilege_spellings_in_every_reading(emulator, tenant, monkeypatch, direct, spelling):
    from pytest_dbsec.emulator import information_schema as emu_is

    monkeypatch.setattr(emu_is, "DIRECT_INHERITED_FROM", direct)
    spell = {"underscores": lambda p: p, "spaces": lambda p: p.replace("_", " "),
             "lower case": lambda p: p.replace("_", " ").lower()}[spelling]
    monkeypatch.setattr(emu_is, "_sql_privilege", spell)
    emu = emulator(_uc_tenant(tenant))
    runs = _assert_same(emu, "ws1")
    # the same grants as REST (so: inherited rows left out, every privilege in API spelling), not none
    grants = runs["sql"]["uc"].data["grants"]
    assert {"principal": "analysts", "privileges": ["USE_CATALOG"]} in grants["catalog/sales"]
    assert not any(" " in p for v in grants.values() for a in v for p in a["privileges"])


def _inline_tenant(tenant, limit: int) -> dict:
    t = _uc_tenant(tenant)
    t["sql"] = {"inline_limit_bytes": limit}  # the JSON bytes of a result; this tenant's columns view is larger
    return t


def test_a_page_over_the_inline_cap_is_read_again_in_halves(emulator, tenant, monkeypatch):
    from pytest_dbsec.collect import uc_sql

    monkeypatch.setattr(uc_sql, "PAGE_ROWS", 64)
    monkeypatch.setattr(uc_sql, "PAGE_FLOOR", 2)
    emu = emulator(_inline_tenant(tenant, 600))
    _assert_same(emu, "ws1")  # the same inventory as REST, whole
    posts = [r for r in emu.requests if r.method == "POST" and "information_schema.columns" in (r.statement or "")]
    limits = [int(r.statement.split(" LIMIT ")[1].split()[0]) for r in posts]
    # the first page (64 rows) was over the cap: halved until a page fits, then the rest at that size
    assert limits[0] == 64 and limits[1] == 32 and len(set(limits)) > 2, limits
    assert limits == sorted(limits, reverse=True)


def test_a_result_over_the_inline_limit_even_at_the_floor_fails_closed(emulator, tenant, monkeypatch):
    from pytest_dbsec.collect import uc_sql

    monkeypatch.setattr(uc_sql, "PAGE_ROWS", 8)
    monkeypatch.setattr(uc_sql, "PAGE_FLOOR", 2)
    emu = emulator(_inline_tenant(tenant, 150))
    got = _collect(emu, "ws1", "sql")
    assert got["uc"].status == "error"
    assert "even 2 rows" in got["uc"].error and "Inline byte limit exceeded" in got["uc"].error
    assert "--dbsec-uc-via rest" in got["uc"].error
    assert got["uc_column_tags"].status == "error"
