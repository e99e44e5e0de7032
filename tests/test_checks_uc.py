"""UC-01..UC-13 (Unity Catalog governance) end to end: tenant -> emulator -> real SDK -> controls.

The base tenant (tests/tenants/uc_base.yaml) passes every UC control; each test adds one bad thing and
asserts the exact offending resources. Values the SDK would drop or turn into None (an unknown privilege,
isolation mode, sharing scope) are injected into a saved snapshot and replayed: they must never pass.
"""

from __future__ import annotations

import json

import pytest

from dbsec_helpers import outcome_of

UC = [f"UC-{i:02d}" for i in range(1, 14)]
SELECT_UC = ("-k", "test_UC_")
MS_ID = "0c0c0c0c-0000-4000-8000-000000000001"
UC_READERS = [c for c in UC if c != "UC-13"]  # every control that reads the `uc` section


# -- helpers ------------------------------------------------------------------------------------


def _ms(t: dict) -> dict:
    return t["account"]["metastores"][0]


def _catalog(t: dict, name: str) -> dict:
    return next(c for c in _ms(t)["catalogs"] if c["name"] == name)


def _schema(t: dict, full: str) -> dict:
    cat, sch = full.split(".")
    return next(s for s in _catalog(t, cat)["schemas"] if s["name"] == sch)


def _table(t: dict, full: str) -> dict:
    cat, sch, tab = full.split(".")
    return next(x for x in _schema(t, f"{cat}.{sch}")["tables"] if x["name"] == tab)


def _named(t: dict, key: str, name: str) -> dict:
    return next(o for o in _ms(t)[key] if o["name"] == name)


def _grant(obj: dict, principal: str, *privileges: str) -> None:
    obj.setdefault("grants", []).append({"principal": principal, "privileges": list(privileges)})


def _ids(result: dict) -> set[str]:
    return {f["resource_id"] for f in result["findings"]}


def _baseline(tmp_path, text: str) -> tuple[str, str]:
    path = tmp_path / "uc-baseline.yaml"
    path.write_text("extends: default\n" + text)
    return "--dbsec-baseline", str(path)


def _run(audit, t: dict, *args) -> dict:
    """Run the UC controls on the tenant; {control id: result} for ws1."""
    _, report = audit(t, *SELECT_UC, *args)
    assert report is not None
    return {r["control_id"]: r for r in report["results"] if r["target"] == "ws1"}


# -- pass, no metastore -------------------------------------------------------------------------


def test_compliant_tenant_passes_every_uc_control(audit, tenant):
    results = _run(audit, tenant("uc_base"))
    assert set(results) == set(UC)
    assert {c: r["outcome"] for c, r in results.items()} == {
        **{c: "passed" for c in UC}, "UC-10": "skipped", "UC-11": "skipped"}
    assert "classification.row_filter_required is empty" in results["UC-10"]["reason"]
    assert "grants.isolated_catalogs is empty" in results["UC-11"]["reason"]


def test_uc_10_and_uc_11_pass_when_the_baseline_names_compliant_objects(audit, tenant, tmp_path):
    results = _run(audit, tenant("uc_base"), *_baseline(tmp_path, """
classification: {row_filter_required: ["sales.crm.*"]}   # customers has a filter; the view is not judged
grants: {isolated_catalogs: [sales]}
"""))
    assert results["UC-10"]["outcome"] == "passed" and results["UC-11"]["outcome"] == "passed"


def test_no_metastore_fails_uc_01_and_skips_the_rest(audit, tenant):
    t = tenant("uc_base")
    t["account"]["workspaces"][0]["metastore"] = None
    results = _run(audit, t)
    uc01 = results["UC-01"]
    assert uc01["outcome"] == "failed"
    assert [f["resource_type"] for f in uc01["findings"]] == ["workspace"]
    assert uc01["findings"][0]["seen"] == "no Unity Catalog metastore assigned"
    for cid in UC[1:]:
        assert results[cid]["outcome"] == "skipped", cid
        assert results[cid]["reason"] == "no metastore assigned", cid


# -- failures, one control at a time ------------------------------------------------------------


def _owner_user(t):
    _ms(t)["owner"] = "alice@corp.example.com"


def _all_privileges_to_everyone(t):
    _grant(_catalog(t, "analytics"), "account users", "ALL_PRIVILEGES")
    _grant(_schema(t, "sales.crm"), "account users", "ALL_PRIVILEGES")
    _grant(_table(t, "analytics.reports.daily"), "account users", "ALL_PRIVILEGES")  # a table: UC-04's, not UC-03's
    _grant(_schema(t, "analytics.reports"), "data-engineers", "ALL_PRIVILEGES")       # not broad


def _public_grants(t):
    _grant(_catalog(t, "analytics"), "account users", "USE_CATALOG", "BROWSE")
    _grant(_table(t, "analytics.reports.daily"), "account users", "SELECT")
    _grant(_ms(t), "account users", "CREATE_CATALOG")
    _grant(_table(t, "sales.crm.customers"), "account users", "BROWSE")  # BROWSE alone is fine


def _user_grants(t):
    _grant(_table(t, "sales.crm.customers"), "carol@corp.example.com", "SELECT")
    _grant(_named(t, "external_locations", "raw-landing"), "bob@corp.example.com", "READ_FILES")


def _manage(t):
    _grant(_catalog(t, "sales"), "analysts", "MANAGE")
    _grant(_table(t, "analytics.reports.daily"), "etl-sp", "MANAGE")
    _grant(_catalog(t, "analytics"), "data-engineers", "ALL_PRIVILEGES")  # ALL_PRIVILEGES excludes MANAGE


def _user_owners(t):
    _catalog(t, "analytics")["owner"] = "bob@corp.example.com"
    _schema(t, "sales.crm")["owner"] = "dave@corp.example.com"
    _named(t, "storage_credentials", "landing-role")["owner"] = "carol@corp.example.com"
    _table(t, "sales.crm.customers")["owner"] = "bob@corp.example.com"  # tables are not judged


def _broad_storage(t):
    _grant(_named(t, "external_locations", "raw-landing"), "account users", "READ_FILES", "BROWSE")
    _grant(_named(t, "storage_credentials", "landing-role"), "account users", "BROWSE")  # any privilege
    _grant(_named(t, "external_locations", "raw-landing"), "analysts", "READ_FILES")     # not broad


def _unmasked_pii(t):
    customers = _table(t, "sales.crm.customers")
    phone = next(c for c in customers["columns"] if c["name"] == "phone")
    del phone["mask"]                                              # PII by name
    customers["column_tags"]["notes"] = {"sensitive": "high"}      # PII by tag
    _table(t, "analytics.reports.daily")["columns"].append({"name": "contact_email"})


def _sharing(t):
    _ms(t)["delta_sharing_recipient_token_lifetime_in_seconds"] = 0
    _ms(t)["recipients"].append({
        "name": "partner-open", "owner": "data-governance", "authentication_type": "TOKEN",
        "tokens": [{"id": "tok-open-forever", "created_at": "-5d"},
                   {"id": "tok-open-long", "created_at": "-5d", "expiration_time": "+200d"}]})


def _audit_schema_off(t):
    _ms(t)["system_schemas"][0]["state"] = "AVAILABLE"


FAILURES = [
    ("UC-02", _owner_user, {MS_ID}),
    ("UC-03", _all_privileges_to_everyone, {"catalog/analytics:account users", "schema/sales.crm:account users"}),
    ("UC-04", _public_grants, {"catalog/analytics:account users", "table/analytics.reports.daily:account users",
                               f"metastore/{MS_ID}:account users"}),
    ("UC-05", _user_grants, {"table/sales.crm.customers:carol@corp.example.com",
                             "external_location/raw-landing:bob@corp.example.com"}),
    ("UC-06", _manage, {"catalog/sales:analysts", "table/analytics.reports.daily:7f1c2b9e-0000-4000-8000-00000000a002"}),
    ("UC-07", _user_owners, {"analytics", "sales.crm", "landing-role"}),
    ("UC-08", _broad_storage, {"external_location/raw-landing:account users",
                               "storage_credential/landing-role:account users"}),
    ("UC-09", _unmasked_pii, {"sales.crm.customers.phone", "sales.crm.customers.notes",
                              "analytics.reports.daily.contact_email"}),
    ("UC-12", _sharing, {MS_ID, "partner-open", "tok-open-forever", "tok-open-long"}),
    ("UC-13", _audit_schema_off, {f"{MS_ID}/access"}),
]


@pytest.mark.parametrize("control, edit, expected", FAILURES, ids=[f[0] for f in FAILURES])
def test_uc_control_fails_on_the_offending_resources(audit, tenant, control, edit, expected):
    t = tenant("uc_base")
    edit(t)
    results = _run(audit, t)
    r = results[control]
    assert r["outcome"] == "failed", r
    assert _ids(r) == expected
    for f in r["findings"]:
        assert f["seen"] and f["expected"]


def test_uc_02_and_uc_07_report_the_owner(audit, tenant):
    t = tenant("uc_base")
    _owner_user(t)
    _user_owners(t)
    results = _run(audit, t)
    f = results["UC-02"]["findings"][0]
    assert f["owner"] == "alice@corp.example.com" and "a user" in f["seen"]
    owners = {f["resource_id"]: (f["resource_type"], f["owner"]) for f in results["UC-07"]["findings"]}
    assert owners["analytics"] == ("catalog", "bob@corp.example.com")
    assert owners["sales.crm"] == ("schema", "dave@corp.example.com")
    assert owners["landing-role"] == ("storage_credential", "carol@corp.example.com")


def test_uc_04_public_securables_cover_their_children(audit, tenant, tmp_path):
    t = tenant("uc_base")
    _public_grants(t)
    results = _run(audit, t, *_baseline(tmp_path, "grants: {public_securables: [analytics]}\n"))
    assert _ids(results["UC-04"]) == {f"metastore/{MS_ID}:account users"}


@pytest.mark.parametrize("baseline_text, expected", [
    ("", set()),                                                               # 4 members: not broad
    ("grants: {broad_group_size: 3}\n", {"schema/analytics.reports:everyone-data"}),
    ("grants: {broad_groups: [everyone-data]}\n", {"schema/analytics.reports:everyone-data"}),
])
def test_uc_03_broad_group_by_size_or_by_name(audit, tenant, tmp_path, baseline_text, expected):
    t = tenant("uc_base")
    _grant(_schema(t, "analytics.reports"), "everyone-data", "ALL_PRIVILEGES")
    args = _baseline(tmp_path, baseline_text) if baseline_text else ()
    r = _run(audit, t, *args)["UC-03"]
    assert _ids(r) == expected
    if expected:
        assert "everyone-data" in r["findings"][0]["seen"]


@pytest.mark.parametrize("baseline_text, expected", [
    ("", set()),
    ("grants: {broad_group_size: 3}\n", {"storage_credential/landing-role:everyone-data"}),
    ("grants: {broad_groups: [analysts]}\n", {"external_location/raw-landing:analysts"}),
])
def test_uc_08_broad_group_by_size_or_by_name(audit, tenant, tmp_path, baseline_text, expected):
    t = tenant("uc_base")
    _grant(_named(t, "storage_credentials", "landing-role"), "everyone-data", "BROWSE")
    _grant(_named(t, "external_locations", "raw-landing"), "analysts", "READ_FILES", "BROWSE")
    _grant(_named(t, "external_locations", "raw-landing"), "everyone-data", "BROWSE")  # not storage access
    args = _baseline(tmp_path, baseline_text) if baseline_text else ()
    assert _ids(_run(audit, t, *args)["UC-08"]) == expected


@pytest.mark.parametrize("expires, outcome", [("2099-12-31", "passed"), ("2020-01-31", "failed")])
def test_uc_05_a_current_elevation_covers_a_user_grant(audit, tenant, tmp_path, expires, outcome):
    t = tenant("uc_base")
    _grant(_table(t, "sales.crm.customers"), "carol@corp.example.com", "SELECT")
    r = _run(audit, t, *_baseline(tmp_path, f"""
elevations:
  - {{principal: carol@corp.example.com, privilege: SELECT, securable: sales.crm.customers, expires: {expires},
     justification: incident 4711 data pull, approver: ciso@corp.example.com}}
"""))["UC-05"]
    assert r["outcome"] == outcome
    if outcome == "failed":
        assert _ids(r) == {"table/sales.crm.customers:carol@corp.example.com"}
        assert "elevation expired" in r["findings"][0]["seen"]


def test_uc_06_managers_by_name_or_service_principal_display_name(audit, tenant, tmp_path):
    t = tenant("uc_base")
    _manage(t)
    r = _run(audit, t, *_baseline(tmp_path, "grants: {managers: [analysts, etl-sp]}\n"))["UC-06"]
    assert r["outcome"] == "passed"


@pytest.mark.parametrize("baseline_text, expected", [
    ("classification: {unmasked_allowed: ['sales.crm.customers.no*']}\n",
     {"sales.crm.customers.phone", "analytics.reports.daily.contact_email"}),
    ("classification: {pii_tags: [pii], pii_name_patterns: ['(?i)phone']}\n", {"sales.crm.customers.phone"}),
])
def test_uc_09_baseline_decides_what_is_pii_and_what_may_stay_clear(audit, tenant, tmp_path, baseline_text, expected):
    t = tenant("uc_base")
    _unmasked_pii(t)
    assert _ids(_run(audit, t, *_baseline(tmp_path, baseline_text))["UC-09"]) == expected


def test_uc_10_and_uc_11_fail_on_the_named_objects(audit, tenant, tmp_path):
    results = _run(audit, tenant("uc_base"), *_baseline(tmp_path, """
classification: {row_filter_required: ["sales.crm.customers", "analytics.*"]}
grants: {isolated_catalogs: ["sales", "analytics"]}
"""))
    assert results["UC-10"]["outcome"] == "failed" and _ids(results["UC-10"]) == {"analytics.reports.daily"}
    assert results["UC-11"]["outcome"] == "failed" and _ids(results["UC-11"]) == {"analytics"}
    assert results["UC-11"]["findings"][0]["seen"] == "isolation_mode OPEN"


def test_uc_12_token_lifetime_judged_against_the_baseline(audit, tenant, tmp_path):
    t = tenant("uc_base")
    results = _run(audit, t, *_baseline(tmp_path, "sharing: {max_token_days: 10}\n"))
    # the metastore allows 30-day tokens and partner-acme's current token lives 30 days
    assert _ids(results["UC-12"]) == {MS_ID, "tok-acme-current"}


def test_uc_12_internal_sharing_does_not_judge_the_metastore_lifetime(audit, tenant):
    t = tenant("uc_base")
    _ms(t)["delta_sharing_scope"] = "INTERNAL"
    _ms(t)["delta_sharing_recipient_token_lifetime_in_seconds"] = 0
    del _ms(t)["recipients"][0]["ip_access_list"]
    # recipients are still judged: an existing TOKEN recipient keeps its credential
    assert _ids(_run(audit, t)["UC-12"]) == {"partner-acme"}


@pytest.mark.parametrize("schemas, outcome", [
    ([{"schema": "access", "state": "MANAGED"}], "passed"),
    ([{"schema": "access", "state": "ENABLE_INITIALIZED"}], "failed"),
    ([{"schema": "billing", "state": "ENABLE_COMPLETED"}], "failed"),
])
def test_uc_13_access_schema_state(audit, tenant, schemas, outcome):
    t = tenant("uc_base")
    _ms(t)["system_schemas"] = schemas
    assert _run(audit, t)["UC-13"]["outcome"] == outcome


# -- data that cannot be read ---------------------------------------------------------------------


@pytest.mark.parametrize("route, erroring", [
    ("GET /api/2.1/unity-catalog/permissions/*", UC_READERS),
    ("GET /api/2.1/unity-catalog/entity-tag-assignments/*", ["UC-09"]),
    ("GET /api/2.1/unity-catalog/recipients", ["UC-12"]),
    ("GET /api/2.1/unity-catalog/metastores/*/systemschemas", ["UC-13"]),
    ("GET /api/2.0/preview/scim/v2/Groups", ["UC-02", "UC-03", "UC-05", "UC-06", "UC-07", "UC-08"]),
], ids=["grants", "column-tags", "recipients", "system-schemas", "scim-groups"])
def test_unreadable_data_makes_the_control_error_with_the_reason(audit, tenant, route, erroring):
    t = tenant("uc_base")
    t["faults"] = [{"route": route, "status": 403, "error_code": "PERMISSION_DENIED", "message": "denied by test"}]
    results = _run(audit, t)
    path = route.split()[1].split("*")[0]
    for cid in UC:
        r = results[cid]
        if cid in erroring:
            assert r["outcome"] == "error", cid
            assert "403" in r["reason"] and path in r["reason"], (cid, r["reason"])
        else:
            assert r["outcome"] in ("passed", "skipped"), (cid, r)


# -- values the SDK would drop never pass (snapshot edited, then replayed) --------------------------


def test_unknown_values_in_a_replayed_snapshot_do_not_pass(audit, tenant, pytester):
    t = tenant("uc_base")
    _, live = audit(t, *SELECT_UC, "--dbsec-snapshot-out", "snap.json")
    assert all(r["outcome"] in ("passed", "skipped") for r in live["results"])
    snap_path = pytester.path / "snap.json"
    snap = json.loads(snap_path.read_text())
    ws = next(w for w in snap["workspaces"] if w["name"] == "ws1")
    sec = ws["sections"]
    uc = sec["uc"]["data"]
    # a privilege this tool has never heard of, to everyone and on a location
    uc["grants"]["catalog/analytics"].append({"principal": "account users", "privileges": ["FUTURE_PRIVILEGE"]})
    uc["grants"]["external_location/raw-landing"].append(
        {"principal": "account users", "privileges": ["READ_FILES_V2"]})
    # enums the SDK turns into None
    next(c for c in uc["catalogs"] if c["name"] == "analytics").pop("isolation_mode", None)
    uc["metastore"].pop("delta_sharing_scope", None)
    uc["metastore"]["delta_sharing_recipient_token_lifetime_in_seconds"] = 0
    acme = next(r for r in sec["uc_recipients"]["data"]["recipients"] if r["name"] == "west-region")
    acme["authentication_type"] = "SOME_NEW_AUTH"
    next(s for s in sec["uc_system_schemas"]["data"]["schemas"] if s["schema"] == "access")["state"] = "ENABLED_V2"
    snap_path.write_text(json.dumps(snap))
    baseline_path = pytester.path / "iso.yaml"
    baseline_path.write_text("extends: default\ngrants: {isolated_catalogs: [analytics]}\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--dbsec-report-dir", "out2", "--dbsec-replay",
                                "snap.json", "--dbsec-baseline", str(baseline_path), *SELECT_UC)
    report = json.loads((pytester.path / "out2" / "findings.json").read_text())
    assert result.ret == 1
    uc04 = outcome_of(report, "UC-04", "ws1")
    assert _ids(uc04) == {"catalog/analytics:account users", "external_location/raw-landing:account users"}
    assert any("FUTURE_PRIVILEGE" in f["seen"] and "unknown" in f["seen"] for f in uc04["findings"])
    assert _ids(outcome_of(report, "UC-08", "ws1")) == {"external_location/raw-landing:account users"}
    uc11 = outcome_of(report, "UC-11", "ws1")
    assert _ids(uc11) == {"analytics"} and "unknown" in uc11["findings"][0]["seen"]
    assert _ids(outcome_of(report, "UC-12", "ws1")) == {MS_ID, "west-region"}
    assert _ids(outcome_of(report, "UC-13", "ws1")) == {f"{MS_ID}/access"}


def test_recipient_credentials_never_reach_the_snapshot(audit, tenant, pytester):
    t = tenant("uc_base")
    rec = _ms(t)["recipients"][0]
    rec["activation_url"] = "https://example.com/delta_sharing/retrieve_config.html?secret-activation-XYZ"
    rec["tokens"][0]["activation_url"] = rec["activation_url"]
    audit(t, "-k", "test_UC_12", "--dbsec-snapshot-out", "snap.json")
    assert "secret-activation-XYZ" not in (pytester.path / "snap.json").read_text()
