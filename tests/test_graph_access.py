"""The access graph (pytest_dbsec/graph/access.py) on hand-worked tenants.

The inventories are read from the emulator through the real SDK (Collector), so the shapes are the
ones a live run sees. Expected answers are worked out by hand from tests/tenants/graph_base.yaml
(its header comment draws the membership graph).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pytest_dbsec.collect import Collector
from pytest_dbsec.connect import Target
from pytest_dbsec.emulator import Emulator
from pytest_dbsec.graph.access import AccessGraph, UnknownPrincipal, UnknownResource
from pytest_dbsec.inventory import ACCOUNT, ACL_SECTIONS, Inventory, Scope

TENANTS = Path(__file__).parent / "tenants"
AUDITOR = "dbsec-auditor"
ALICE, BOB, CAROL, DAVE, EVE, FRANK = (f"{n}@corp.example.com" for n in
                                       ("alice", "bob", "carol", "dave", "eve", "frank"))
ETL_APP_ID = "7f1c2b9e-0000-4000-8000-00000000e71b"
AUDITOR_APP_ID = "7f1c2b9e-0000-4000-8000-00000000a001"
WS_SECTIONS = ("identities", "uc", *ACL_SECTIONS, "secrets", "jobs", "tokens", "admin_assignments", "compute",
               "workspace_acls")
ACC_SECTIONS = ("account_identities", "account_workspaces", "sp_secrets", "identity_roles")


def collect(tenant: dict, account: bool = True, faults=()) -> Inventory:
    """Every section the graph reads, collected from an emulator of the tenant."""
    emu = Emulator(tenant).start()
    try:
        for f in faults:
            emu.add_fault(**f)
        inv, targets = Inventory(), {}
        for ws in emu.workspaces:
            targets[ws["name"]] = Target(ws["name"], host=ws["url"], token=emu.token_for(AUDITOR, ws["name"]))
            inv.workspaces[ws["name"]] = Scope(ws["name"], "workspace", id=ws["id"], host=ws["url"])
        wanted = [(ws, s) for ws in inv.workspaces for s in WS_SECTIONS]
        if account:
            targets[ACCOUNT] = Target(ACCOUNT, kind="account", host=emu.account_url,
                                      account_id=emu.account_id, token=emu.token_for(AUDITOR))
            inv.account = Scope(ACCOUNT, "account")
            wanted += [(ACCOUNT, s) for s in ACC_SECTIONS]
        Collector(inv, targets, max_workers=4, progress=lambda m: None).ensure(wanted)
        return inv
    finally:
        emu.stop()


def base_tenant() -> dict:
    return yaml.safe_load((TENANTS / "graph_base.yaml").read_text())


@pytest.fixture(scope="module")
def inventory():
    return collect(base_tenant())


@pytest.fixture(scope="module")
def graph(inventory):
    return AccessGraph.from_inventory(inventory)


def uc(records, full_name=None, privilege=None):
    return [r for r in records if (full_name is None or r["full_name"] == full_name)
            and (privilege is None or r["privilege"] == privilege)]


def vias(records):
    return sorted(tuple(r["via"]) for r in records)


def test_the_graph_is_complete_on_the_full_tenant(graph):
    assert graph.gaps == []
    br = graph.blast_radius(ALICE)
    assert br["complete"] is True and br["errors"] == []
    json.dumps(br)  # plain JSON, as the CLI will print it
    assert set(br) >= {"principal", "group_memberships", "workspace_roles", "uc_grants",
                       "workspace_object_permissions", "run_as", "credentials", "secret_scopes",
                       "errors", "complete"}


def test_transitive_membership_through_nested_groups_and_a_cycle(graph):
    chains = {m["group"]: m["chain"] for m in graph.blast_radius(ALICE)["group_memberships"]
              if m["workspace_name"] is None}
    assert chains == {"data-engineers": [ALICE, "data-engineers"],
                      "all-data-team": [ALICE, "data-engineers", "all-data-team"],
                      "account users": [ALICE, "account users"]}
    # bob -> cycle-a -> cycle-b -> cycle-a: the walk ends, each group once, shortest chain
    bob = {m["group"]: m["chain"] for m in graph.blast_radius(BOB)["group_memberships"]
           if m["workspace_name"] is None}
    assert bob == {"cycle-a": [BOB, "cycle-a"], "cycle-b": [BOB, "cycle-a", "cycle-b"],
                   "account users": [BOB, "account users"]}
    assert graph.cycles() == [["cycle-a", "cycle-b"]]
    # a grant to the far end of the cycle reaches bob, explained hop by hop
    [rec] = uc(graph.blast_radius(BOB)["uc_grants"], "main.sales", "USE_SCHEMA")
    assert " → ".join(rec["via"]) == f"{BOB} → cycle-a → cycle-b" and rec["inherited_from"] is None


def test_a_grant_to_account_users_reaches_everyone(graph):
    for who in (ALICE, BOB, DAVE, EVE, FRANK, "etl-sp"):
        br = graph.blast_radius(who)
        [rec] = uc(br["uc_grants"], "main", "BROWSE")
        assert rec["via"] == [br["principal"]["name"], "account users"]
    reach = [r for r in graph.who_can_reach("main") if r["privilege"] == "BROWSE"]
    assert all(r["everyone"] for r in reach)
    assert {r["principal"] for r in reach} == {"account users", ALICE, BOB, CAROL, DAVE, EVE, FRANK,
                                               ETL_APP_ID, AUDITOR_APP_ID}
    assert graph.blast_radius(FRANK)["principal"]["active"] is False  # deactivated, still listed


def test_catalog_to_schema_to_table_inheritance(graph):
    grants = graph.blast_radius(ALICE)["uc_grants"]
    [direct] = uc(grants, "main", "SELECT")
    assert direct["securable_type"] == "CATALOG" and direct["inherited_from"] is None
    for full, typ in (("main.sales", "SCHEMA"), ("main.sales.orders", "TABLE")):
        [rec] = uc(grants, full, "SELECT")
        assert rec["securable_type"] == typ and rec["inherited_from"] == "catalog main"
        assert rec["via"] == [ALICE, "data-engineers", "all-data-team"]
    # the schema grant (to cycle-b) flows to the table, marked as from the schema
    [rec] = uc(graph.blast_radius(BOB)["uc_grants"], "main.sales.orders", "USE_SCHEMA")
    assert rec["inherited_from"] == "schema main.sales"
    # reverse: who can SELECT the table, and through which chain
    select = {r["principal"]: r for r in graph.who_can_reach("main.sales.orders") if r["privilege"] == "SELECT"}
    assert select[CAROL]["via"] == [CAROL, "all-data-team"] and select[CAROL]["inherited_from"] == "catalog main"
    assert select[ALICE]["via"] == [ALICE, "data-engineers", "all-data-team"]
    assert {r["inherited_from"] for r in graph.who_can_reach("main.sales.orders")
            if r["principal"] == ETL_APP_ID and r["privilege"] == "SELECT"} == {None, "catalog main"}
    assert BOB not in select and EVE not in select


def test_ownership_is_ownership_and_does_not_flow_to_children(graph):
    # data-engineers own schema main.sales: alice is an owner through the group, on the schema only
    owned = [r for r in graph.blast_radius(ALICE)["uc_grants"] if r["ownership"]]
    assert [(r["securable_type"], r["full_name"], r["privilege"], r["via"]) for r in owned] == [
        ("SCHEMA", "main.sales", "OWNER", [ALICE, "data-engineers"])]
    # dave owns catalog main but holds no privilege on its schema or table
    dave = graph.blast_radius(DAVE)["uc_grants"]
    assert {(r["securable_type"], r["full_name"]) for r in dave if r["ownership"]} == {
        ("CATALOG", "finance"), ("SCHEMA", "finance.ledger"), ("TABLE", "finance.ledger.entries"),  # defaults
        ("CATALOG", "main"), ("METASTORE", "0c0c0c0c-0000-4000-8000-0000000000aa")}
    assert {r["privilege"] for r in dave if r["ownership"]} == {"OWNER"}
    assert not [r for r in dave if r["full_name"].startswith("main.") and r["privilege"] != "BROWSE"]
    assert not [r for r in graph.who_can_reach("main.sales.orders") if r["principal"] == DAVE
                and r["privilege"] != "BROWSE"]
    # the owner of the table, an SP, is named by applicationId on the wire
    [owner] = [r for r in graph.who_can_reach("main.sales.orders") if r["ownership"]]
    assert owner["principal"] == ETL_APP_ID and owner["privilege"] == "OWNER" and owner["inherited_from"] is None
    # metastore admin = metastore owner (a group), reported as ownership
    [ms] = [r for r in dave if r["securable_type"] == "METASTORE"]
    assert ms["ownership"] and ms["via"] == [DAVE, "data-governance"]


def test_all_privileges_does_not_include_manage(graph):
    carol = graph.blast_radius(CAROL)["uc_grants"]
    assert {r["privilege"] for r in carol if r["full_name"].startswith("finance")} == {"ALL_PRIVILEGES"}
    [tbl] = uc(carol, "finance.ledger.entries", "ALL_PRIVILEGES")
    assert tbl["inherited_from"] == "catalog finance"
    assert "ISOLATED" in tbl["note"]  # finance is bound to workspaces; bindings are not read
    assert not [r for r in carol if r["full_name"].startswith("main") and "note" in r]
    manage = [r for r in graph.who_can_reach("finance") if r["privilege"] == "MANAGE"]
    assert [(r["principal"], r["via"]) for r in manage] == [(BOB, [BOB])]
    # MANAGE flowing to children is unconfirmed: reported (the safe side) and flagged
    [child] = uc(graph.blast_radius(BOB)["uc_grants"], "finance.ledger", "MANAGE")
    assert child["inherited_from"] == "catalog finance" and "[verify]" in child["note"]


def test_metastore_grants_are_not_inherited(graph):
    grants = graph.blast_radius(ALICE)["uc_grants"]
    [ms] = uc(grants, privilege="CREATE_CATALOG")
    assert ms["securable_type"] == "METASTORE" and ms["inherited_from"] is None
    assert not [r for r in grants if (r["inherited_from"] or "").startswith("metastore")]
    assert not [r for r in graph.who_can_reach("main") if r["privilege"] == "CREATE_CATALOG"]


def test_a_service_principal_by_application_id_and_by_display_name_is_one_principal(graph):
    assert graph.resolve("etl-sp") is graph.resolve(ETL_APP_ID)
    by_name, by_id = graph.blast_radius("etl-sp"), graph.blast_radius(ETL_APP_ID)
    assert by_name == by_id
    assert by_name["principal"] == {"kind": "service_principal", "name": ETL_APP_ID, "id": by_name["principal"]["id"],
                                    "display_name": "etl-sp", "active": True}
    # SCIM (display name) membership and grant (applicationId) meet on the same principal
    assert [r["via"] for r in uc(by_name["uc_grants"], "main.sales.orders", "SELECT")] == [
        [ETL_APP_ID], [ETL_APP_ID, "data-engineers", "all-data-team"]]
    assert {(r["kind"], r["name"]) for r in by_name["run_as"]} == {("job", "Nightly ETL"),
                                                                  ("pipeline", "orders_pipeline")}
    creds = by_name["credentials"]
    assert {c["type"] for c in creds} == {"pat", "oauth_secret"}
    [pat] = [c for c in creds if c["type"] == "pat"]
    assert pat["never_expires"] and pat["expiry"] is None and pat["created_by"] == ALICE
    [secret] = [c for c in creds if c["type"] == "oauth_secret"]
    assert secret["status"] == "ACTIVE" and secret["expire_time"]
    assert "secret_hash" not in secret and not any("value" in c for c in creds)  # never a credential value


def test_workspace_admin_through_an_assigned_group_and_through_the_admins_group(graph):
    [eve] = [r for r in graph.blast_radius(EVE)["workspace_roles"] if r["source"] == "permission assignment"]
    assert (eve["workspace_name"], eve["workspace_id"], eve["permission_level"], eve["via"]) == (
        "ws1", 1111111111, "ADMIN", [EVE, "platform-admins"])
    roles = {(r["permission_level"], tuple(r["via"])) for r in graph.blast_radius(BOB)["workspace_roles"]}
    assert roles == {("ADMIN", (BOB, "admins")), ("USER", (BOB, "cycle-a"))}
    # an admin holds CAN_MANAGE on every object through `admins`
    managed = {r["object_name"] for r in graph.blast_radius(BOB)["workspace_object_permissions"]
               if r["permission_level"] == "CAN_MANAGE" and r["via"] == [BOB, "admins"]}
    assert managed == {"Nightly ETL", "orders_pipeline", "shared-etl"}
    # alice's access is USER through two levels of nesting (flagged: unconfirmed for assignments)
    [alice] = graph.blast_radius(ALICE)["workspace_roles"]
    assert alice["permission_level"] == "USER" and alice["via"] == [ALICE, "data-engineers", "all-data-team"]
    assert "[verify]" in alice["note"]


def test_workspace_object_acls_and_secret_scopes_with_chains(graph):
    perms = {(r["object_type"], r["object_name"], r["permission_level"], tuple(r["via"]))
             for r in graph.blast_radius(ALICE)["workspace_object_permissions"]}
    assert perms == {("jobs", "Nightly ETL", "IS_OWNER", (ALICE,)),
                     ("jobs", "Nightly ETL", "CAN_MANAGE_RUN", (ALICE, "data-engineers", "all-data-team")),
                     ("pipelines", "orders_pipeline", "IS_OWNER", (ALICE,)),
                     ("clusters", "shared-etl", "CAN_ATTACH_TO", (ALICE, "data-engineers"))}
    scopes = {(r["scope"], r["permission"], tuple(r["via"])) for r in graph.blast_radius(ALICE)["secret_scopes"]}
    assert scopes == {("etl-prod", "READ", (ALICE, "data-engineers")), ("etl-prod", "READ", (ALICE, "users"))}
    # a non-admin (carol) can edit a job that runs as etl-sp: both halves of that path are visible
    [edit] = [r for r in graph.blast_radius(CAROL)["workspace_object_permissions"]
              if r["permission_level"] == "CAN_MANAGE"]
    assert edit["object_name"] == "Nightly ETL" and edit["via"] == [CAROL]
    assert not [r for r in graph.blast_radius(CAROL)["workspace_roles"] if r["permission_level"] == "ADMIN"]


def test_unknown_principal_and_resource(graph):
    with pytest.raises(UnknownPrincipal):
        graph.blast_radius("nobody@corp.example.com")
    with pytest.raises(UnknownResource):
        graph.who_can_reach("main.nope")
    assert graph.blast_radius("data-engineers")["principal"]["kind"] == "group"


def test_a_missing_data_section_makes_the_answer_incomplete(inventory):
    # the same inventory with the UC section of ws1 unreadable
    inv = Inventory.from_json(json.loads(json.dumps(inventory.to_json(), default=str)))
    sec = inv.workspaces["ws1"].sections["uc"]
    sec.status, sec.data, sec.error = "error", None, "GET /api/2.1/unity-catalog/catalogs -> 403: PERMISSION_DENIED"
    br = AccessGraph.from_inventory(inv).blast_radius(ALICE)
    assert br["complete"] is False and br["uc_grants"] == []
    assert br["errors"] == ["ws1/uc: GET /api/2.1/unity-catalog/catalogs -> 403: PERMISSION_DENIED"]
    assert br["workspace_roles"]  # the rest still answers


def test_a_denied_read_and_no_account_scope_are_gaps():
    inv = collect(base_tenant(), account=False,
                  faults=[{"route": "GET /api/2.0/secrets/scopes/list", "status": 403}])
    g = AccessGraph.from_inventory(inv)
    br = g.blast_radius(ALICE)
    assert br["complete"] is False
    assert any(e.startswith("account:") for e in br["errors"])
    assert any(e.startswith("ws1/secrets: GET /api/2.0/secrets/scopes/list -> 403") for e in br["errors"])
    assert br["secret_scopes"] == []
    # membership still comes from workspace SCIM: the nested chain survives without the account
    assert [ALICE, "data-engineers", "all-data-team"] in [m["chain"] for m in br["group_memberships"]]
    [rec] = uc(br["uc_grants"], "main.sales.orders", "SELECT")
    assert rec["via"] == [ALICE, "data-engineers", "all-data-team"]


def test_can_read_needs_the_whole_use_catalog_use_schema_select_chain(graph):
    ok = graph.can_read(ALICE, "main.sales.orders")
    assert ok["allowed"] and [r["held_by"]["inherited_from"] for r in ok["requires"]] == [None, "catalog main",
                                                                                          "catalog main"]
    # bob: USE_SCHEMA through the cycle, but no USE_CATALOG and no SELECT
    bob = graph.can_read(BOB, "main.sales.orders")
    assert not bob["allowed"]
    assert [(r["privilege"], bool(r["held_by"])) for r in bob["requires"]] == [
        ("USE_CATALOG", False), ("USE_SCHEMA", True), ("SELECT", False)]
    # dave owns catalog main (USE_CATALOG on it) but ownership gives nothing below it
    dave = graph.can_read(DAVE, "main.sales.orders")
    assert [bool(r["held_by"]) for r in dave["requires"]] == [True, False, False]
    # ALL_PRIVILEGES on finance covers the chain; it never stands for MANAGE
    assert graph.can_read(CAROL, "finance.ledger.entries")["allowed"]
    assert graph.holds(CAROL, "finance", "MANAGE") is None
    assert graph.holds(BOB, "finance", "MANAGE")["via"] == [BOB]
    assert graph.holds(BOB, "finance", "SELECT") is None  # MANAGE confers no data access


def test_deep_nesting_ten_levels():
    t = base_tenant()
    levels = [f"level-{i}" for i in range(1, 11)]
    t["account"]["groups"] += [{"displayName": g, "members": [levels[i - 1] if i else "eve@corp.example.com"]}
                               for i, g in enumerate(levels)]
    main = t["account"]["metastores"][0]["catalogs"][0]
    main["grants"].append({"principal": "level-10", "privileges": ["SELECT"]})
    g = AccessGraph.from_inventory(collect(t))
    [rec] = uc(g.blast_radius(EVE)["uc_grants"], "main.sales.orders", "SELECT")
    assert rec["via"] == [EVE, *levels] and rec["inherited_from"] == "catalog main"
    assert [r["via"] for r in g.who_can_reach("main") if r["principal"] == EVE and r["privilege"] == "SELECT"] == [
        [EVE, *levels]]


def test_workspace_scoped_answers_can_use_only_workspace_membership(inventory):
    # with "workspace", only the workspace's own SCIM edges count; the emulator's SCIM shows the
    # account groups of workspace members, so the answers agree here (the switch is what is tested)
    narrow = AccessGraph.from_inventory(inventory, acl_groups="workspace")
    assert narrow.blast_radius(ALICE)["secret_scopes"] == AccessGraph.from_inventory(inventory).blast_radius(
        ALICE)["secret_scopes"]
    with pytest.raises(ValueError):
        AccessGraph.from_inventory(inventory, acl_groups="some")


def test_escalation_findings(graph):
    def kinds(who):
        return {(f["kind"], f["target"]): f for f in graph.blast_radius(who)["escalation_findings"]}

    bob = kinds(BOB)
    assert bob[("workspace_admin", "ws1")]["path"] == [BOB, "admins"]
    assert bob[("manage", "catalog finance")]["severity"] == "high"
    alice = kinds(ALICE)
    assert alice[("owner", "schema main.sales")]["path"] == [ALICE, "data-engineers"]
    assert alice[("all_privileges", "catalog finance")]["path"] == [ALICE, "data-engineers", "all-data-team"]
    assert alice[("run_as_takeover", "job Nightly ETL (ws1)")]["severity"] == "high"  # etl-sp is no admin
    assert ("manage", "catalog finance") not in alice  # ALL_PRIVILEGES is not MANAGE
    assert kinds(DAVE)[("metastore_admin", "metastore 0c0c0c0c-0000-4000-8000-0000000000aa")]["path"] == [
        DAVE, "data-governance"]
    assert kinds("dbsec-auditor")[("account_admin", "account")]["path"] == [AUDITOR_APP_ID]
    assert not [f for f in graph.blast_radius(FRANK)["escalation_findings"]]


def test_a_job_running_as_an_admin_sp_editable_by_a_non_admin_is_critical():
    t = base_tenant()
    t["account"]["workspaces"][0]["assignments"].append({"principal": "etl-sp", "permissions": ["ADMIN"]})
    g = AccessGraph.from_inventory(collect(t))
    [f] = [f for f in g.blast_radius(CAROL)["escalation_findings"] if f["kind"] == "run_as_takeover"]
    assert f["severity"] == "critical" and f["target"] == "job Nightly ETL (ws1)" and f["path"] == [CAROL]
    assert "workspace admin" in f["reason"] and ETL_APP_ID in f["reason"]
    # the SP is named as people know it (display name) and as grants name it (application id)
    assert f"runs as etl-sp ({ETL_APP_ID})" in f["reason"]
    assert not [r for r in g.blast_radius(CAROL)["workspace_roles"] if r["permission_level"] == "ADMIN"]


def test_controls_and_the_access_graph_agree_on_membership(inventory, graph):
    """One membership walk: the view controls build from SCIM (checks/*.py call Membership on a
    section) and the graph's answers name the same groups, chains and cycles, for every principal,
    on a tenant with two levels of nesting and a cycle."""
    from checks.iam import _membership  # exactly how the controls read a SCIM section

    account = _membership(inventory.account.section("account_identities").data)
    assert account.groups_of(ALICE) == {"data-engineers", "all-data-team"}  # the tenant nests ...
    assert account.cycles() == graph.cycles() == [["cycle-a", "cycle-b"]]  # ... and has a cycle
    for name, p in account.principals.items():
        br = graph.blast_radius(name)
        chains = {m["group"]: m["chain"] for m in br["group_memberships"]
                  if m["workspace_name"] is None and m["group"] != "account users"}
        expected = account.chains(name)
        assert chains == {g: expected[g] for g in account.groups_of(name)}, name
        if p.kind == "group":
            assert account.members_of(name) == {m for m in graph.account_closure.members(name)
                                                 if graph.principals[m].kind != "group"}, name
    narrow = AccessGraph.from_inventory(inventory, acl_groups="workspace")
    for ws_name, scope in inventory.workspaces.items():
        local = _membership(scope.section("identities").data)
        assert local.get("admins") is not None  # workspace-local groups are walked too
        for name in local.principals:
            assert narrow.workspaces[ws_name].closure.groups_of(name) == local.groups_of(name), (ws_name, name)
            # the default (all account groups) view only ever adds to the workspace's own
            assert graph.workspaces[ws_name].closure.groups_of(name) >= local.groups_of(name), (ws_name, name)


def test_a_catalog_grant_counts_what_inherits_it_and_is_expanded_up_to_a_limit(graph):
    full = graph.blast_radius(ALICE)["uc_grants"]
    [at_catalog] = uc(full, "main", "SELECT")
    assert at_catalog["inherited_by"] == 2  # schema main.sales and its table main.sales.orders
    assert {r["full_name"] for r in uc(full, privilege="SELECT")
            if r["inherited_from"] == "catalog main"} == {"main.sales", "main.sales.orders"}
    # a limit below what the grant covers: only the record where it was granted, which says so
    capped = graph.blast_radius(ALICE, expand_inherited=1)["uc_grants"]
    [at_catalog] = uc(capped, "main", "SELECT")
    assert at_catalog["inherited_by"] == 2 and "not listed one by one" in at_catalog["note"]
    assert [r for r in capped if r["inherited_from"] is not None] == []
    assert [(r["full_name"], r["privilege"], r["via"]) for r in capped] == [
        (r["full_name"], r["privilege"], r["via"]) for r in full if r["inherited_from"] is None]
    # bob's USE_SCHEMA on main.sales covers one table: within a limit of 1 it is still listed there
    [rec] = uc(graph.blast_radius(BOB, expand_inherited=1)["uc_grants"], "main.sales.orders", "USE_SCHEMA")
    assert rec["inherited_from"] == "schema main.sales"
    assert len(uc(graph.blast_radius(ALICE, expand_inherited=None)["uc_grants"])) == len(full)
    # a grant on a table covers nothing below it: no count
    [direct] = [r for r in uc(graph.blast_radius("etl-sp")["uc_grants"], "main.sales.orders", "SELECT")
                if r["inherited_from"] is None]
    assert "inherited_by" not in direct
