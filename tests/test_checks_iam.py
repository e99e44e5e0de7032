"""IAM-01..IAM-12 end to end: tenant -> emulator -> real SDK -> controls -> findings.json.

Every scenario starts from tests/tenants/iam_base.yaml (everything passes with the baseline written by
``judge``) and adds the one bad thing it is about."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
import yaml
from dbsec_helpers import outcome_of

AUDITOR = "auditor@corp.example.com"
ETL_SP = "7f1c2b9e-0000-4000-8000-00000000e001"
TODAY = dt.datetime.now(dt.timezone.utc).date()

# approved admins and a current IAM-12 attestation: the base tenant passes everything under it
BASE_BASELINE = {
    "extends": "default",
    "iam": {"approved_admins": ["platform-admins"]},
    "attestations": [{"control": "IAM-12", "statement": "SSO enforced in Okta", "evidence": "https://wiki/sso",
                      "attested_by": "ciso@corp.example.com", "date": TODAY.isoformat(), "valid_days": 90}],
}

METASTORE = {
    "name": "ms1", "owner": "platform-admins", "region": "us-east-1",
    "catalogs": [{"name": "main", "owner": "platform-admins",
                  "grants": [{"principal": "data-team", "privileges": ["USE_CATALOG"]}],
                  "schemas": [{"name": "sales", "tables": [{"name": "orders",
                                                            "columns": [{"name": "id", "type_name": "LONG"}]}]}]}],
}


@pytest.fixture
def judge(audit, pytester, tenant, emulator):
    """judge(edit=None, "-k", "IAM_03", baseline={...}, faults=[...], principal=..., account=True) -> report.

    ``edit(t, ws)`` changes a fresh copy of the base tenant (ws is its only workspace); ``baseline``
    overrides keys of BASE_BASELINE (top-level keys replaced, mappings merged one level)."""

    def run(edit=None, *args, baseline=None, faults=(), principal=AUDITOR, account=True, tenant_dict=None):
        t = tenant_dict or tenant("iam_base")
        if edit is not None:
            edit(t, t["account"]["workspaces"][0])
        b = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE_BASELINE.items()}
        for key, value in (baseline or {}).items():
            if isinstance(value, dict) and isinstance(b.get(key), dict):
                b[key].update(value)
            else:
                b[key] = value
        (pytester.path / "iam-baseline.yaml").write_text(yaml.safe_dump(b))
        emu = emulator(t)
        for route, kw in faults:
            emu.add_fault(route, **kw)
        result, report = audit(t, *args, "--dbsec-baseline", "iam-baseline.yaml", principal=principal,
                               account=account, emu=emu)
        assert report is not None, result.stdout.str()
        return report

    return run


def ids(r) -> set[str]:
    return {f["resource_id"] for f in r["findings"]}


def failed(report, control, target="ws1") -> dict:
    r = outcome_of(report, control, target)
    assert r["outcome"] == "failed", r
    return r


def passed(report, control, target="ws1") -> dict:
    r = outcome_of(report, control, target)
    assert r["outcome"] == "passed", r
    return r


def errored(report, control, *fragments, target="ws1") -> dict:
    r = outcome_of(report, control, target)
    assert r["outcome"] == "error", r
    for fragment in fragments:
        assert fragment in r["reason"], r["reason"]
    return r


def user(name, **kw):
    return {"userName": name, "displayName": name.split("@")[0].title(), "externalId": f"okta-{name}", **kw}


def with_metastore(t, ws):
    t["account"]["metastores"] = [copy.deepcopy(METASTORE)]
    ws["metastore"] = "ms1"


# -- the compliant tenant ------------------------------------------------------------------------


def test_compliant_tenant_passes_every_iam_control(judge):
    report = judge(None, "-k", "IAM")
    got = {(r["control_id"], r["outcome"]) for r in report["results"]}
    assert got == {("IAM-01", "passed"), ("IAM-02", "passed"), ("IAM-03", "passed"), ("IAM-04", "passed"),
                   ("IAM-05", "passed"), ("IAM-06", "skipped"), ("IAM-07", "passed"), ("IAM-08", "skipped"),
                   ("IAM-09", "passed"), ("IAM-10", "passed"), ("IAM-11", "passed"), ("IAM-12", "attested")}
    assert "break_glass.principals" in outcome_of(report, "IAM-06")["reason"]
    assert "audit-log evidence not evaluated" in outcome_of(report, "IAM-06")["reason"]
    assert "elevations" in outcome_of(report, "IAM-08")["reason"]


# -- IAM-01 password login -----------------------------------------------------------------------


def test_iam_01_password_login_for_non_admins_fails(judge):
    def edit(t, ws):
        ws["permissions"]["authorization/passwords"] = [
            {"group_name": "users", "permission_level": "CAN_USE"},
            {"user_name": "carol@corp.example.com", "permission_level": "CAN_USE"},
            {"user_name": "alice@corp.example.com", "permission_level": "CAN_USE"},  # a workspace admin: fine
            {"group_name": "admins", "permission_level": "CAN_USE"},
        ]

    r = failed(judge(edit, "-k", "IAM_01"), "IAM-01")
    assert ids(r) == {"users", "carol@corp.example.com"}
    users = next(f for f in r["findings"] if f["resource_id"] == "users")
    assert "CAN_USE" in users["seen"] and "every workspace user" in users["seen"]


def test_iam_01_only_admins_passes(judge):
    def edit(t, ws):
        ws["permissions"]["authorization/passwords"] = [{"group_name": "admins", "permission_level": "CAN_USE"}]

    passed(judge(edit, "-k", "IAM_01"), "IAM-01")


# -- IAM-02 provisioning -------------------------------------------------------------------------


def _local_accounts(t, ws):
    acct = t["account"]
    acct["users"] += [{"userName": "dave@corp.example.com", "displayName": "Dave Local"},
                      {"userName": "erin@corp.example.com", "displayName": "Erin Local"},
                      {"userName": "gone@corp.example.com", "displayName": "Gone", "active": False}]
    acct["groups"].append({"displayName": "hand-made", "members": ["dave@corp.example.com", "erin@corp.example.com",
                                                                     "gone@corp.example.com"]})
    ws["assignments"].append({"principal": "hand-made", "permissions": ["USER"]})
    ws["local_groups"] = [{"displayName": "legacy-etl", "members": ["bob@corp.example.com"]}]


def test_iam_02_unprovisioned_share_above_the_ratio_fails(judge):
    # 6 active users + platform-admins, data-team, hand-made, legacy-etl = 10; 4 without externalId
    r = failed(judge(_local_accounts, "-k", "IAM_02"), "IAM-02")
    assert ids(r) == {"dave@corp.example.com", "erin@corp.example.com", "hand-made", "legacy-etl"}
    assert all("4 of 10" in f["seen"] for f in r["findings"])
    assert {f["resource_type"] for f in r["findings"]} == {"user", "group", "group (workspace-local)"}


def test_iam_02_baseline_ratio_and_local_accounts_change_the_verdict(judge):
    passed(judge(_local_accounts, "-k", "IAM_02", baseline={"iam": {"max_unprovisioned_ratio": 0.4}}), "IAM-02")
    # declared local accounts and break-glass principals are not counted (by user name or display name)
    report = judge(_local_accounts, "-k", "IAM_02", baseline={"iam": {"local_accounts": ["Dave Local"]},
                                                              "break_glass": {"principals": ["erin@corp.example.com"]}})
    assert ids(failed(report, "IAM-02")) == {"hand-made", "legacy-etl"}


# -- IAM-03 number of admins ---------------------------------------------------------------------


def _more_admins(t, ws):
    acct = t["account"]
    acct["users"] += [user("dave@corp.example.com"), user("erin@corp.example.com"), user("frank@corp.example.com")]
    acct["groups"] += [{"displayName": "sre", "externalId": "okta-sre", "members": ["dave@corp.example.com", "oncall"]},
                       {"displayName": "oncall", "externalId": "okta-oncall", "members": ["erin@corp.example.com"]}]
    ws["assignments"].append({"principal": "sre", "permissions": ["ADMIN"]})       # nested: dave and erin
    ws["assignments"].append({"principal": "etl-sp", "permissions": ["ADMIN"]})    # a service principal
    ws["admins"] = ["frank@corp.example.com"]                                       # a direct member of admins


def test_iam_03_too_many_admins_fails_counting_nested_groups_and_direct_members(judge):
    r = failed(judge(_more_admins, "-k", "IAM_03"), "IAM-03")
    (f,) = r["findings"]
    assert f["resource_id"] == "admins" and f["seen"].startswith("6 workspace admins")
    assert set(f["details"]["admins"]) == {AUDITOR, "alice@corp.example.com", "dave@corp.example.com",
                                           "erin@corp.example.com", "frank@corp.example.com", ETL_SP}
    assert "member of sre, which has an ADMIN workspace assignment" in f["details"]["admins"]["erin@corp.example.com"]
    assert "5 (iam.max_workspace_admins)" in f["expected"]


def test_iam_03_baseline_maximum_changes_the_verdict(judge):
    passed(judge(_more_admins, "-k", "IAM_03", baseline={"iam": {"max_workspace_admins": 6}}), "IAM-03")
    r = failed(judge(None, "-k", "IAM_03", baseline={"iam": {"max_workspace_admins": 1}}), "IAM-03")
    assert r["findings"][0]["seen"].startswith("2 workspace admins")


class _View:
    """A stand-in for the workspace fixture: just data()."""

    def __init__(self, **sections):
        self.sections, self.name, self.id = sections, "ws", 1

    def data(self, name):
        return self.sections[name]


def test_workspace_admins_are_the_union_of_scim_and_account_assignments():
    from pytest_dbsec.checks.iam import _workspace_admins

    identities = {
        "users": [{"id": "1", "userName": "a@x"}, {"id": "2", "userName": "b@x"}, {"id": "3", "userName": "c@x"},
                  {"id": "4", "userName": "d@x", "active": False}],
        "service_principals": [{"id": "9", "applicationId": "app-9", "displayName": "robot"}],
        "groups": [{"id": "10", "displayName": "admins", "members": [{"value": "1"}]},
                   {"id": "11", "displayName": "ops", "members": [{"value": "12"}]},
                   {"id": "12", "displayName": "ops-inner", "members": [{"value": "3"}, {"value": "4"}]}],
    }
    assignments = {"permission_assignments": [
        {"principal": {"user_name": "b@x"}, "permissions": ["ADMIN"]},          # not (yet) in SCIM admins
        {"principal": {"group_name": "ops"}, "permissions": ["ADMIN"]},         # expanded transitively
        {"principal": {"service_principal_name": "app-9"}, "permissions": ["USER"]},
        {"principal": {"user_name": "ghost@x", "display_name": "Ghost"}, "permissions": ["ADMIN"]},
    ]}
    wa = _workspace_admins(_View(identities=identities, admin_assignments=assignments))
    assert set(wa.admins) == {"a@x", "b@x", "c@x", "d@x", "ghost@x"}
    assert wa.admins["d@x"].active is False and wa.admins["c@x"].via == ["member of ops, which has an ADMIN "
                                                                          "workspace assignment"]
    assert set(wa.groups) == {"ops"} and set(wa.direct_users) == {"a@x", "b@x", "ghost@x"}


# -- IAM-04 approved admins ----------------------------------------------------------------------


def test_iam_04_every_admin_must_be_approved(judge):
    r = failed(judge(None, "-k", "IAM_04", baseline={"iam": {"approved_admins": []}}), "IAM-04")
    assert {(f["resource_type"], f["resource_id"]) for f in r["findings"]} == {
        ("admin group", "platform-admins"), ("workspace admin (user)", AUDITOR),
        ("workspace admin (user)", "alice@corp.example.com"), ("account admin (user)", AUDITOR)}


def test_iam_04_unapproved_admins_by_assignment_and_account_role_fail(judge):
    def edit(t, ws):
        acct = t["account"]
        acct["users"] += [user("dave@corp.example.com"), user("erin@corp.example.com")]
        acct["groups"].append({"displayName": "finance-admins", "externalId": "x", "roles": ["account_admin"],
                               "members": ["erin@corp.example.com"]})
        ws["assignments"] += [{"principal": "dave@corp.example.com", "permissions": ["ADMIN"]},
                              {"principal": "etl-sp", "permissions": ["ADMIN"]}]

    r = failed(judge(edit, "-k", "IAM_04"), "IAM-04")
    assert {(f["resource_type"], f["resource_id"]) for f in r["findings"]} == {
        ("workspace admin (user)", "dave@corp.example.com"), ("workspace admin (service principal)", ETL_SP),
        ("account admin (user)", "erin@corp.example.com")}
    erin = next(f for f in r["findings"] if f["resource_id"] == "erin@corp.example.com")
    assert "finance-admins" in erin["seen"]
    # approving them by name, SP display name and group clears it
    report = judge(edit, "-k", "IAM_04", baseline={"iam": {"approved_admins": [
        "platform-admins", "dave@corp.example.com", "etl-sp", "finance-admins"]}})
    passed(report, "IAM-04")


# -- IAM-05 admin through groups -----------------------------------------------------------------


def test_iam_05_users_admin_without_a_group_fail(judge):
    def edit(t, ws):
        ws["assignments"] += [{"principal": "carol@corp.example.com", "permissions": ["ADMIN"]},
                              {"principal": "etl-sp", "permissions": ["ADMIN"]}]  # an SP: not this control's business
        ws["admins"] = ["bob@corp.example.com"]

    r = failed(judge(edit, "-k", "IAM_05"), "IAM-05")
    assert ids(r) == {"carol@corp.example.com", "bob@corp.example.com"}
    carol = next(f for f in r["findings"] if f["resource_id"] == "carol@corp.example.com")
    assert "direct ADMIN workspace assignment" in carol["seen"]


# -- IAM-06 break-glass --------------------------------------------------------------------------

BREAK_GLASS = "breakglass@corp.example.com"


def _break_glass(standing: bool):
    def edit(t, ws):
        acct = t["account"]
        acct["users"].append({"userName": BREAK_GLASS, "displayName": "Break Glass",
                              **({"roles": ["account_admin"]} if standing else {})})
        acct["groups"].append({"displayName": "emergency", "externalId": "x", "members": [BREAK_GLASS]})
        ws["assignments"].append({"principal": BREAK_GLASS if standing else "emergency",
                                  "permissions": ["ADMIN" if standing else "USER"]})
        if standing:
            with_metastore(t, ws)
            t["account"]["metastores"][0]["catalogs"][0]["grants"].append(
                {"principal": "emergency", "privileges": ["SELECT"]})
            ws["tokens"].append({"token_id": "tok-bg", "owner": BREAK_GLASS, "comment": "emergency",
                                 "creation_time": "-200d", "expiry_time": -1})
            ws["permissions"]["jobs/nightly"] = [{"user_name": BREAK_GLASS, "permission_level": "CAN_MANAGE"}]
        else:  # an expired token is no standing access
            ws["tokens"].append({"token_id": "tok-bg-old", "owner": BREAK_GLASS, "comment": "last drill",
                                 "creation_time": "-200d", "expiry_time": "-100d", "last_used_day": "-150d"})
    return edit


def test_iam_06_break_glass_with_standing_access_fails(judge):
    report = judge(_break_glass(True), "-k", "IAM_06", baseline={"break_glass": {"principals": [BREAK_GLASS]}})
    (f,) = failed(report, "IAM-06")["findings"]
    assert f["resource_id"] == BREAK_GLASS and f["details"]["tokens"] == ["tok-bg"]
    held = " | ".join(f["details"]["holdings"])
    for fragment in ("workspace admin", "account admin", "SELECT on catalog/main through group emergency",
                     "CAN_MANAGE on jobs/101", "token tok-bg (never expires"):
        assert fragment in held, held
    assert "audit-log evidence not evaluated" in f["expected"]


def test_iam_06_dormant_break_glass_passes_and_a_window_skips(judge):
    bg = {"principals": [BREAK_GLASS]}
    passed(judge(_break_glass(False), "-k", "IAM_06", baseline={"break_glass": bg}), "IAM-06")
    now = dt.datetime.now(dt.timezone.utc)
    window = {"start": (now - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "end": (now + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"), "reason": "INC-4711"}
    report = judge(_break_glass(True), "-k", "IAM_06", baseline={"break_glass": {**bg, "windows": [window]}})
    r = outcome_of(report, "IAM-06", "ws1")
    assert r["outcome"] == "skipped" and "INC-4711" in r["reason"]
    # a window that has ended protects nothing
    old = {"start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z", "reason": "old drill"}
    failed(judge(_break_glass(True), "-k", "IAM_06", baseline={"break_glass": {**bg, "windows": [old]}}), "IAM-06")


# -- IAM-07 dormant privileged accounts ----------------------------------------------------------


def _dormant(t, ws):
    t["account"]["users"] += [user("dave@corp.example.com"), user(BREAK_GLASS)]
    t["account"]["groups"][0]["members"] += ["dave@corp.example.com", BREAK_GLASS]  # platform-admins
    for tok in ws["tokens"]:
        if tok["token_id"] == "tok-alice":
            tok["last_used_day"] = "-200d"
    ws["tokens"].append({"token_id": "tok-carol", "owner": "carol@corp.example.com", "comment": "old",
                         "creation_time": "-300d", "expiry_time": "-10d", "last_used_day": "-20d"})
    with_metastore(t, ws)
    t["account"]["metastores"][0]["catalogs"].append({"name": "finance", "owner": "carol@corp.example.com"})
    t["account"]["metastores"][0]["catalogs"][0]["grants"].append({"principal": "bob@corp.example.com",
                                                                   "privileges": ["MANAGE"]})


def test_iam_07_privileged_accounts_without_recent_activity_fail(judge):
    report = judge(_dormant, "-k", "IAM_07", baseline={"break_glass": {"principals": [BREAK_GLASS]}})
    r = failed(report, "IAM-07")
    # alice: admin, last used 200 days ago; dave: admin, no evidence at all. carol (catalog owner) used an
    # expired token 20 days ago; bob (MANAGE) used his yesterday; the break-glass admin is IAM-06's.
    assert ids(r) == {"alice@corp.example.com", "dave@corp.example.com"}
    dave = next(f for f in r["findings"] if f["resource_id"] == "dave@corp.example.com")
    assert "no activity evidence" in dave["seen"] and "audit-log evidence not evaluated" in dave["seen"]


def test_iam_07_baseline_dormant_days_change_the_verdict(judge):
    report = judge(_dormant, "-k", "IAM_07", baseline={"iam": {"dormant_days": 10},
                                                        "break_glass": {"principals": [BREAK_GLASS]}})
    assert ids(failed(report, "IAM-07")) == {"alice@corp.example.com", "dave@corp.example.com",
                                             "carol@corp.example.com"}
    r = failed(judge(_dormant, "-k", "IAM_07", baseline={"iam": {"dormant_days": 365}}), "IAM-07")
    assert ids(r) == {"dave@corp.example.com", BREAK_GLASS}  # no evidence is never dormant-proof


# -- IAM-08 just-in-time elevations --------------------------------------------------------------


def _elevation(principal, privilege, securable, expires):
    return {"principal": principal, "privilege": privilege, "securable": securable, "expires": expires,
            "justification": "incident", "approver": "ciso@corp.example.com"}


def _elevated(t, ws):
    with_metastore(t, ws)
    ms = t["account"]["metastores"][0]
    ms["catalogs"][0]["grants"].append({"principal": "bob@corp.example.com", "privileges": ["ALL_PRIVILEGES"]})
    ws["assignments"].append({"principal": "carol@corp.example.com", "permissions": ["ADMIN"]})
    ws["permissions"]["jobs/nightly"] = [{"user_name": "bob@corp.example.com", "permission_level": "IS_OWNER"}]


def test_iam_08_expired_elevations_still_present_fail(judge):
    past, future = "2024-01-31", (TODAY + dt.timedelta(days=5)).isoformat()
    elevations = [
        _elevation("carol@corp.example.com", "ADMIN", "ws1", past),             # still admin
        _elevation("bob@corp.example.com", "SELECT", "main.sales.orders", past),  # ALL_PRIVILEGES on the catalog
        _elevation("bob@corp.example.com", "CAN_MANAGE", "jobs/101", past),     # IS_OWNER is more
        _elevation("bob@corp.example.com", "MANAGE", "catalog/main", past),     # ALL_PRIVILEGES excludes MANAGE
        _elevation("carol@corp.example.com", "MODIFY", "main.sales", past),     # revoked on time
        _elevation("bob@corp.example.com", "ADMIN", "ws1", future),             # not yet expired
    ]
    r = failed(judge(_elevated, "-k", "IAM_08", baseline={"elevations": elevations}), "IAM-08")
    assert ids(r) == {"carol@corp.example.com ADMIN ws1", "bob@corp.example.com SELECT main.sales.orders",
                      "bob@corp.example.com CAN_MANAGE jobs/101"}
    sel = next(f for f in r["findings"] if "SELECT" in f["resource_id"])
    assert "ALL_PRIVILEGES on catalog/main (covers main.sales.orders)" in sel["seen"]
    assert sel["details"]["approver"] == "ciso@corp.example.com" and sel["owner"] == "bob@corp.example.com"


def test_iam_08_revoked_elevations_pass(judge):
    elevations = [_elevation("carol@corp.example.com", "ADMIN", "ws1", "2024-01-31"),
                  _elevation("bob@corp.example.com", "SELECT", "main.sales.orders", "2024-01-31")]
    passed(judge(with_metastore, "-k", "IAM_08", baseline={"elevations": elevations}), "IAM-08")


# -- IAM-09 SP OAuth secrets ---------------------------------------------------------------------


def _secrets(t, ws):
    t["account"]["service_principals"][0]["secrets"] = [
        {"id": "sec-ok", "status": "ACTIVE", "create_time": "-30d", "expire_time": "+60d"},
        {"id": "sec-old", "status": "ACTIVE", "create_time": "-200d", "expire_time": "+100d"},
        {"id": "sec-forever", "status": "ACTIVE", "create_time": "-10d"},
        {"id": "sec-expired", "status": "ACTIVE", "create_time": "-400d", "expire_time": "-5d"},
        {"id": "sec-revoked", "status": "REVOKED", "create_time": "-400d"},
        {"id": "sec-new-status", "status": "SOMETHING_NEW", "create_time": "-300d", "expire_time": "+10d"},
    ]


def test_iam_09_old_and_never_expiring_secrets_fail(judge):
    r = failed(judge(_secrets, "-k", "IAM_09"), "IAM-09", target="account")
    assert ids(r) == {"sec-old", "sec-forever", "sec-new-status"}
    forever = next(f for f in r["findings"] if f["resource_id"] == "sec-forever")
    assert "never expires" in forever["seen"] and forever["owner"] == f"etl-sp ({ETL_SP})"


def test_iam_09_baseline_age_changes_the_verdict(judge):
    r = failed(judge(_secrets, "-k", "IAM_09", baseline={"iam": {"max_sp_secret_age_days": 365}}), "IAM-09",
               target="account")
    assert ids(r) == {"sec-forever"}


# -- IAM-10 deactivated identities ---------------------------------------------------------------


def _deactivated(t, ws):
    t["account"]["users"][2]["active"] = False                     # bob: data-team, tok-bob, an ACL
    t["account"]["service_principals"][0]["active"] = False        # etl-sp: data-team, run_as of nightly
    t["account"]["users"].append({"userName": "gone@corp.example.com", "displayName": "Gone", "externalId": "x",
                                  "active": False})                 # assigned, holds nothing else
    ws["assignments"].append({"principal": "gone@corp.example.com", "permissions": ["USER"]})
    ws["permissions"]["jobs/nightly"] = [{"user_name": "bob@corp.example.com", "permission_level": "CAN_VIEW"}]


def test_iam_10_deactivated_identities_with_access_fail(judge):
    r = failed(judge(_deactivated, "-k", "IAM_10"), "IAM-10")
    assert ids(r) == {"bob@corp.example.com", ETL_SP}
    bob = next(f for f in r["findings"] if f["resource_id"] == "bob@corp.example.com")
    assert set(bob["details"]["access"]) == {"member of data-team", "CAN_VIEW on jobs/101", "token tok-bob"}
    sp = next(f for f in r["findings"] if f["resource_id"] == ETL_SP)
    assert "run_as of job 101 (nightly)" in sp["details"]["access"]


# -- IAM-11 restrict workspace admins ------------------------------------------------------------


@pytest.mark.parametrize("setting, seen", [
    ({"status": "ALLOW_ALL"}, "status ALLOW_ALL"),
    (None, "never set"),
    ({"status": "A_NEW_VALUE"}, "status A_NEW_VALUE"),  # unknown must not pass
])
def test_iam_11_unrestricted_admins_fail(judge, setting, seen):
    def edit(t, ws):
        if setting is None:
            del ws["settings"]["restrict_workspace_admins"]
        else:
            ws["settings"]["restrict_workspace_admins"] = setting

    (f,) = failed(judge(edit, "-k", "IAM_11"), "IAM-11")["findings"]
    assert f["resource_id"] == "restrict_workspace_admins" and seen in f["seen"]


def test_iam_11_unavailable_setting_skips(judge):
    report = judge(None, "-k", "IAM_11", faults=[("GET /api/2.0/settings/types/restrict_workspace_admins/*",
                                                  {"status": 404, "error_code": "FEATURE_DISABLED"})])
    r = outcome_of(report, "IAM-11", "ws1")
    assert r["outcome"] == "skipped" and "not available" in r["reason"]


# -- IAM-12 attestation --------------------------------------------------------------------------


def test_iam_12_is_attested_only_with_a_current_attestation(judge):
    r = outcome_of(judge(None, "-k", "IAM_12"), "IAM-12", "account")
    assert r["outcome"] == "attested" and r["attestation"]["attested_by"] == "ciso@corp.example.com"
    (f,) = failed(judge(None, "-k", "IAM_12", baseline={"attestations": []}), "IAM-12", target="account")["findings"]
    assert f["resource_id"] == "IAM-12" and "no attestation" in f["seen"]
    stale = [{**BASE_BASELINE["attestations"][0], "date": (TODAY - dt.timedelta(days=120)).isoformat()}]
    (f,) = failed(judge(None, "-k", "IAM_12", baseline={"attestations": stale}), "IAM-12", target="account")["findings"]
    assert "stale" in f["seen"]


# -- data that cannot be read: ERROR with the reason, never a pass ---------------------------------


def test_without_account_credentials_the_account_side_errors(judge):
    report = judge(None, "-k", "IAM", account=False)
    for cid in ("IAM-03", "IAM-04", "IAM-05", "IAM-06", "IAM-07", "IAM-08"):
        errored(report, cid, "admin_assignments", "no account credentials")
    for cid in ("IAM-09", "IAM-12"):
        errored(report, cid, "no account credentials", target="account")
    for cid in ("IAM-01", "IAM-02", "IAM-10", "IAM-11"):
        passed(report, cid)


def test_denied_workspace_and_account_apis_error(judge):
    report = judge(None, "-k", "IAM", faults=[
        ("GET /api/2.0/permissions/authorization/*", {"status": 403}),
        ("GET /api/2.0/settings/types/*", {"status": 403}),
        ("GET /api/2.2/jobs/list", {"status": 403}),
        ("GET /api/2.0/accounts/*/permissionassignments", {"status": 403}),
        ("GET /api/2.0/accounts/*/servicePrincipals/*/credentials/secrets", {"status": 403}),
    ], baseline={"break_glass": {"principals": [BREAK_GLASS]},
                 "elevations": [_elevation("bob@corp.example.com", "CAN_MANAGE", "jobs/101", "2024-01-31")]})
    errored(report, "IAM-01", "authorization_acls", "/api/2.0/permissions/authorization/", "403", "PERMISSION_DENIED")
    errored(report, "IAM-11", "settings", "403")
    errored(report, "IAM-10", "jobs", "403")
    for cid in ("IAM-03", "IAM-04", "IAM-05", "IAM-06", "IAM-07", "IAM-08"):
        errored(report, cid, "admin_assignments", "permissionassignments", "403", "account admin")
    errored(report, "IAM-09", "sp_secrets", "403", target="account")
    passed(report, "IAM-02")


def test_unreadable_scim_errors(judge):
    report = judge(None, "-k", "IAM", faults=[("GET /api/2.0/preview/scim/v2/Users", {"status": 403})])
    for cid in ("IAM-01", "IAM-02", "IAM-03", "IAM-04", "IAM-05", "IAM-07", "IAM-10"):
        errored(report, cid, "identities", "/api/2.0/preview/scim/v2/Users", "403")
    passed(report, "IAM-11")


def test_unreadable_tokens_and_grants_error(judge):
    report = judge(with_metastore, "-k", "IAM", faults=[
        ("GET /api/2.0/token-management/*", {"status": 403}),
        ("GET /api/2.1/unity-catalog/catalogs", {"status": 403}),
    ], baseline={"break_glass": {"principals": [BREAK_GLASS]},
                 "elevations": [_elevation("bob@corp.example.com", "SELECT", "main.sales", "2024-01-31")]})
    for cid in ("IAM-06", "IAM-07", "IAM-10"):
        errored(report, cid, "tokens", "token-management", "403", "workspace admin")
    errored(report, "IAM-08", "'uc'", "unity-catalog/catalogs", "403")
    for cid in ("IAM-01", "IAM-02", "IAM-03", "IAM-04", "IAM-05"):
        passed(report, cid)


# -- IAM-06 / IAM-07 with the audit log (--dbsec-warehouse-id) -------------------------------------


def _with_audit(*events, readers=(AUDITOR,)):
    """Edit: a metastore whose `access` system schema the auditor may read, a warehouse wh1, these events."""

    def edit(t, ws):
        if not t["account"].get("metastores"):
            with_metastore(t, ws)
        t["account"]["metastores"][0]["system_schemas"] = [
            {"schema": "access", "state": "ENABLE_COMPLETED",
             "grants": [{"principal": r, "privileges": ["USE_SCHEMA", "SELECT"]} for r in readers]}]
        ws["warehouses"] = [{"id": "wh1", "name": "audit wh", "creator_name": AUDITOR, "state": "RUNNING"}]
        t["account"].setdefault("audit_log", []).extend(
            {"workspace": "ws1", "service_name": "accounts", "source_ip_address": "203.0.113.9", **e} for e in events)

    return edit


def _both(*edits):
    def edit(t, ws):
        for e in edits:
            e(t, ws)

    return edit


WH = ("--dbsec-warehouse-id", "wh1")


def test_iam_07_audit_activity_counts_as_use(judge):
    audit = _with_audit(
        {"event_time": "-3d", "principal": "alice@corp.example.com", "action_name": "login"},  # token: 200 days
        {"event_time": "-100d", "principal": "dave@corp.example.com", "action_name": "login"},
        {"event_time": "-1d", "principal": "bob@corp.example.com", "action_name": "login"})
    report = judge(_both(_dormant, audit), "-k", "IAM_07", *WH, baseline={"break_glass": {"principals": [BREAK_GLASS]}})
    r = failed(report, "IAM-07")
    # alice is active in the audit log now; dave's last event is 100 days old (dormant_days 90)
    assert ids(r) == {"dave@corp.example.com"}
    seen = r["findings"][0]["seen"]
    assert "last audit-log event" in seen and "(100 days ago)" in seen and "no token use on record" in seen
    assert "system.access.audit via SQL warehouse wh1" in seen and "not evaluated" not in seen
    # without the warehouse, the same tenant judges on tokens alone, as before
    report = judge(_both(_dormant, audit), "-k", "IAM_07", baseline={"break_glass": {"principals": [BREAK_GLASS]}})
    assert ids(failed(report, "IAM-07")) == {"alice@corp.example.com", "dave@corp.example.com"}


def test_iam_07_service_principals_are_found_by_application_id(judge):
    def sp_admin(t, ws):
        ws["assignments"].append({"principal": "etl-sp", "permissions": ["ADMIN"]})

    audit = _with_audit({"event_time": "-2d", "principal": "etl-sp", "service_name": "jobs", "action_name": "runNow"})
    report = judge(_both(sp_admin, audit), "-k", "IAM_07", *WH)
    passed(report, "IAM-07")
    failed(judge(sp_admin, "-k", "IAM_07"), "IAM-07")  # no token, no audit log: no evidence


def test_iam_06_use_outside_a_window_fails_and_inside_passes(judge):
    bg = {"principals": [BREAK_GLASS]}
    audit = _with_audit({"event_time": "-10d", "principal": BREAK_GLASS, "action_name": "login"},
                        {"event_time": "-10d", "principal": BREAK_GLASS, "action_name": "setAdmin",
                         "request_params": {"targetUserName": "bob@corp.example.com"}},
                        {"event_time": "-1d", "principal": "alice@corp.example.com", "action_name": "login"})
    report = judge(_both(_break_glass(False), audit), "-k", "IAM_06", *WH, baseline={"break_glass": bg})
    f = failed(report, "IAM-06")["findings"][0]
    assert f["resource_id"] == BREAK_GLASS and f["details"]["holdings"] == []
    uses = f["details"]["uses_outside_window"]
    assert len(uses) == 2 and all("(workspace " in u and "203.0.113.9" in u for u in uses)
    assert {u.split()[1] for u in uses} == {"accounts.login", "accounts.setAdmin"}
    # the same use inside a declared (past) window is fine
    now = dt.datetime.now(dt.timezone.utc)
    window = {"start": (now - dt.timedelta(days=11)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "end": (now - dt.timedelta(days=9)).strftime("%Y-%m-%dT%H:%M:%SZ"), "reason": "INC-1 drill"}
    report = judge(_both(_break_glass(False), audit), "-k", "IAM_06", *WH,
                   baseline={"break_glass": {**bg, "windows": [window]}})
    passed(report, "IAM-06")
    # without the warehouse the use is invisible: passes on standing access alone
    passed(judge(_both(_break_glass(False), audit), "-k", "IAM_06", baseline={"break_glass": bg}), "IAM-06")


@pytest.mark.parametrize("edit_reader,warehouse,says", [
    ((), "wh1", "[INSUFFICIENT_PERMISSIONS]"),  # the auditor may not read system.access
    ((AUDITOR,), "nope", "SQL warehouse nope does not exist"),
])
def test_iam_06_07_error_when_the_audit_log_cannot_be_read(judge, edit_reader, warehouse, says):
    audit = _with_audit({"event_time": "-1d", "principal": "alice@corp.example.com", "action_name": "login"},
                        readers=edit_reader)
    report = judge(_both(_break_glass(False), audit), "-k", "IAM_06 or IAM_07", "--dbsec-warehouse-id", warehouse,
                   baseline={"break_glass": {"principals": [BREAK_GLASS]}})
    errored(report, "IAM-06", "audit_activity", says)
    errored(report, "IAM-07", "audit_activity", says)


def test_the_warehouse_may_come_from_the_ini_file(judge, pytester):
    pytester.makeini("[pytest]\ndbsec_warehouse_id = wh1\n")
    audit = _with_audit({"event_time": "-3d", "principal": "alice@corp.example.com", "action_name": "login"},
                        {"event_time": "-2d", "principal": "dave@corp.example.com", "action_name": "login"})
    report = judge(_both(_dormant, audit), "-k", "IAM_07", baseline={"break_glass": {"principals": [BREAK_GLASS]}})
    passed(report, "IAM-07")
