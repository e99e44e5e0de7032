"""benchmarks/graph_scale.py at a tiny size: its generated tenant reads as a complete inventory and
the graph's answers on it are the ones the generator built in, so the benchmark cannot rot into
timing a wrong (or an empty) answer. No timing is asserted here; the numbers are in
docs/benchmark-graph.md."""

from __future__ import annotations

import pytest

from benchmarks.graph_scale import LAYERS, TINY, generate, run
from pytest_dbsec.graph import Membership
from pytest_dbsec.graph.access import AccessGraph


@pytest.fixture(scope="module")
def tenant():
    return generate(TINY)


@pytest.fixture(scope="module")
def graph(tenant):
    return AccessGraph.from_inventory(tenant.inventory)


def account_chains(answer) -> dict[str, list[str]]:
    return {m["group"]: m["chain"] for m in answer["group_memberships"]
            if m["workspace_name"] is None and m["group"] != "account users"}


def scim(tenant) -> dict:
    return tenant.inventory.account.section("account_identities").data


def test_the_generated_inventory_is_complete_and_at_the_asked_size(tenant, graph):
    assert graph.gaps == []
    s = tenant.stats
    assert s["users"] + s["service_principals"] == TINY.users + TINY.sps
    assert s["groups"] == TINY.groups and s["wide_parents"] == TINY.wide_parents
    assert s["tables"] == TINY.catalogs * TINY.schemas_per_catalog * TINY.tables_per_schema
    assert len(graph.workspaces) == TINY.workspaces and len(graph.metastores) == 1  # one shared metastore


def test_the_deeply_nested_user_reaches_the_top_layer_hop_by_hop(tenant, graph):
    chains = account_chains(graph.blast_radius(tenant.deep_user))
    assert len(tenant.deep_path) == LAYERS
    assert chains[tenant.deep_path[-1]] == [tenant.deep_user, *tenant.deep_path]
    assert set(tenant.deep_path) <= set(chains)


def test_the_wide_user_is_directly_in_every_group_it_was_put_in(tenant, graph):
    chains = account_chains(graph.blast_radius(tenant.wide_user))
    direct = {g for g, chain in chains.items() if len(chain) == 2}
    assert direct == tenant.wide_groups and len(direct) == TINY.wide_parents


def test_the_cycle_is_found_and_the_controls_see_the_same_membership(tenant, graph):
    assert graph.cycles() == [tenant.cycle] and len(tenant.cycle) == LAYERS
    controls = Membership.from_scim(scim(tenant))
    for who in (tenant.deep_user, tenant.wide_user, tenant.sp, tenant.group):
        assert set(account_chains(graph.blast_radius(who))) == controls.groups_of(who)


def test_a_service_principal_by_display_name(tenant, graph):
    br = graph.blast_radius(tenant.sp_display)
    assert br["principal"]["name"] == tenant.sp and br["principal"]["kind"] == "service_principal"
    assert [c["type"] for c in br["credentials"] if c["workspace_name"] is None] == ["oauth_secret"]


def test_who_can_reach_a_table_names_its_grantees_and_their_members(tenant, graph):
    reach = graph.who_can_reach(tenant.table)
    direct = {r["principal"] for r in reach if r["inherited_from"] is None and len(r["via"]) == 1
              and not r["ownership"]}
    assert direct == set(tenant.table_grantees)
    by_name = {g["displayName"]: g for g in scim(tenant)["groups"]}
    ids = {e["id"]: e.get("userName") or e.get("applicationId") or e["displayName"]
           for key in ("users", "service_principals", "groups") for e in scim(tenant)[key]}
    for grantee in tenant.table_grantees:
        for m in (by_name[grantee]["members"] if grantee in by_name else []):
            assert any(r["principal"] == ids[m["value"]] and r["via"] == [ids[m["value"]], grantee]
                       for r in reach), (grantee, m)


def test_a_catalog_grant_flows_to_every_schema_and_table_of_the_catalog(tenant, graph):
    grants = graph.blast_radius(tenant.catalog_select_group)["uc_grants"]
    [at_catalog] = [r for r in grants if r["full_name"] == tenant.catalog and r["privilege"] == "SELECT"]
    covered = TINY.schemas_per_catalog * (1 + TINY.tables_per_schema)
    assert at_catalog["inherited_by"] == covered
    inherited = {r["full_name"] for r in grants
                 if r["privilege"] == "SELECT" and r["inherited_from"] == f"catalog {tenant.catalog}"}
    assert len(inherited) == covered and all(n.startswith(tenant.catalog + ".") for n in inherited)


def test_the_benchmark_runs_end_to_end(tenant):
    report = run(TINY, repeat=1)
    assert report["scale"] == tenant.stats  # same seed, same tenant
    assert [q["query"] for q in report["queries"]].count("blast_radius") == 5
    assert all(q["records"] > 0 for q in report["queries"])
    assert report["peak_rss_mb"] > 0 and report["machine"]["python"]
