"""TOK-05..TOK-09 end to end (TOK-01..04 are tested in test_plugin.py).

Every scenario starts from tests/tenants/tokens.yaml, where every TOK control passes, and adds the
one bad thing it is about."""

from __future__ import annotations

import pytest
import yaml
from dbsec_helpers import outcome_of

SP_APP_ID = "7f1c2b9e-0000-4000-8000-00000000a001"  # the tokens tenant's dbsec-auditor service principal


@pytest.fixture
def judge(audit, pytester, tenant, emulator):
    """judge(edit, "-k", "TOK_06", baseline={...}, faults=[...], principal=...) -> findings report."""

    def run(edit=None, *args, baseline=None, faults=(), principal="dbsec-auditor"):
        t = tenant("tokens")
        ws = t["account"]["workspaces"][0]
        # the tokens tenant predates TOK-08: give it a tokens ACL so that it passes everything
        ws.setdefault("permissions", {})["authorization/tokens"] = [
            {"group_name": "data-engineers", "permission_level": "CAN_USE"}]
        if edit is not None:
            edit(t, t["account"]["workspaces"][0])
        (pytester.path / "tok-baseline.yaml").write_text(yaml.safe_dump({"extends": "default", **(baseline or {})}))
        emu = emulator(t)
        for route, kw in faults:
            emu.add_fault(route, **kw)
        result, report = audit(t, *args, "--dbsec-baseline", "tok-baseline.yaml", principal=principal,
                               account=False, emu=emu)
        assert report is not None, result.stdout.str()
        return report

    return run


def ids(report, control) -> set[str]:
    return {f["resource_id"] for f in outcome_of(report, control, "ws1")["findings"]}


def outcome(report, control) -> str:
    return outcome_of(report, control, "ws1")["outcome"]


def add_tokens(*tokens):
    def edit(t, ws):
        ws["tokens"] += [dict(tok) for tok in tokens]
    return edit


def test_compliant_tenant_passes_tok_05_to_09(judge):
    report = judge(None, "-k", "TOK_05 or TOK_06 or TOK_07 or TOK_08 or TOK_09")
    assert {r["control_id"]: r["outcome"] for r in report["results"]} == {
        "TOK-05": "passed", "TOK-06": "passed", "TOK-07": "passed", "TOK-08": "passed", "TOK-09": "passed"}


# -- TOK-05 about to expire ----------------------------------------------------------------------

EXPIRING = [
    {"token_id": "tok-soon", "owner": "alice@corp.example.com", "comment": "gateway", "creation_time": "-80d",
     "expiry_time": "+3d", "last_used_day": "-1d"},
    {"token_id": "tok-later", "owner": "alice@corp.example.com", "comment": "cli", "creation_time": "-10d",
     "expiry_time": "+20d", "last_used_day": "-1d"},
    {"token_id": "tok-forever", "owner": "bob@corp.example.com", "comment": "never", "creation_time": "-1d",
     "expiry_time": -1, "last_used_day": "-1d"},
]


def test_tok_05_tokens_expiring_within_the_warning_window(judge):
    report = judge(add_tokens(*EXPIRING), "-k", "TOK_05")
    assert outcome(report, "TOK-05") == "failed" and ids(report, "TOK-05") == {"tok-soon"}
    (f,) = outcome_of(report, "TOK-05", "ws1")["findings"]
    assert f["owner"] == "alice@corp.example.com" and "in 3.0 days" in f["seen"]
    report = judge(add_tokens(*EXPIRING), "-k", "TOK_05", baseline={"tokens": {"warn_expiry_days": 25}})
    assert ids(report, "TOK-05") == {"tok-soon", "tok-later", "tok-bob-1"}  # tok-bob-1 expires in 10 days
    report = judge(add_tokens(*EXPIRING), "-k", "TOK_05", baseline={"tokens": {"warn_expiry_days": 2}})
    assert outcome(report, "TOK-05") == "passed"


# -- TOK-06 unused -------------------------------------------------------------------------------

UNUSED = [
    {"token_id": "tok-idle", "owner": "alice@corp.example.com", "comment": "idle", "creation_time": "-200d",
     "expiry_time": "+20d", "last_used_day": "-120d"},
    {"token_id": "tok-never", "owner": "bob@corp.example.com", "comment": "never used", "creation_time": "-100d",
     "expiry_time": "+20d"},
    {"token_id": "tok-new", "owner": "bob@corp.example.com", "comment": "new, unused", "creation_time": "-5d",
     "expiry_time": "+20d"},
    {"token_id": "tok-dead", "owner": "bob@corp.example.com", "comment": "expired", "creation_time": "-400d",
     "expiry_time": "-200d", "last_used_day": "-300d"},
]


def test_tok_06_unused_tokens_fail(judge):
    report = judge(add_tokens(*UNUSED), "-k", "TOK_06")
    assert outcome(report, "TOK-06") == "failed" and ids(report, "TOK-06") == {"tok-idle", "tok-never"}
    never = next(f for f in outcome_of(report, "TOK-06", "ws1")["findings"] if f["resource_id"] == "tok-never")
    assert "never used" in never["seen"]
    report = judge(add_tokens(*UNUSED), "-k", "TOK_06", baseline={"tokens": {"max_unused_days": 150}})
    assert outcome(report, "TOK-06") == "passed"


def test_tok_05_and_06_error_when_tokens_are_denied(judge):
    report = judge(None, "-k", "TOK_05 or TOK_06 or TOK_07", principal="alice@corp.example.com")
    for cid in ("TOK-05", "TOK-06", "TOK-07"):
        r = outcome_of(report, cid, "ws1")
        assert r["outcome"] == "error" and "token-management" in r["reason"] and "403" in r["reason"]


# -- TOK-07 service principals -------------------------------------------------------------------

SP_TOKEN = {"token_id": "tok-sp", "owner": "dbsec-auditor", "created_by": "alice@corp.example.com",
            "comment": "on behalf", "creation_time": "-5d", "expiry_time": "+30d", "last_used_day": "-1d"}
SP_OWN = {"token_id": "tok-sp-own", "owner": "dbsec-auditor", "comment": "self", "creation_time": "-5d",
          "expiry_time": "+30d", "last_used_day": "-1d"}


def test_tok_07_service_principal_tokens_fail_unless_allowed(judge):
    report = judge(add_tokens(SP_TOKEN, SP_OWN), "-k", "TOK_07")
    assert outcome(report, "TOK-07") == "failed" and ids(report, "TOK-07") == {"tok-sp", "tok-sp-own"}
    f = next(f for f in outcome_of(report, "TOK-07", "ws1")["findings"] if f["resource_id"] == "tok-sp")
    assert f["owner"] == f"dbsec-auditor ({SP_APP_ID})" and "created by alice@corp.example.com" in f["seen"]
    for allowed in (SP_APP_ID, "dbsec-auditor"):  # by applicationId or display name
        report = judge(add_tokens(SP_TOKEN, SP_OWN), "-k", "TOK_07", baseline={"tokens": {"sp_pat_allowed": [allowed]}})
        assert outcome(report, "TOK-07") == "passed"


def test_tok_07_errors_without_identities(judge):
    report = judge(add_tokens(SP_TOKEN), "-k", "TOK_07",
                   faults=[("GET /api/2.0/preview/scim/v2/ServicePrincipals", {"status": 403})])
    r = outcome_of(report, "TOK-07", "ws1")
    assert r["outcome"] == "error" and "identities" in r["reason"] and "403" in r["reason"]


# -- TOK-08 token creation -----------------------------------------------------------------------


@pytest.mark.parametrize("acl, conf, failing", [
    ([{"group_name": "users", "permission_level": "CAN_USE"}], "true", {"users"}),
    (None, "true", {"authorization/tokens"}),      # no ACL: every user may create tokens
    (None, None, {"authorization/tokens"}),        # unset: tokens are on by default
    (None, "false", set()),                        # tokens off: nothing to restrict
    ([{"group_name": "data-engineers", "permission_level": "CAN_USE"}], "true", set()),
])
def test_tok_08_token_creation(judge, acl, conf, failing):
    def edit(t, ws):
        ws["conf"]["enableTokensConfig"] = conf
        if acl is None:
            del ws["permissions"]["authorization/tokens"]
        else:
            ws["permissions"]["authorization/tokens"] = acl

    report = judge(edit, "-k", "TOK_08")
    assert outcome(report, "TOK-08") == ("failed" if failing else "passed")
    assert ids(report, "TOK-08") == failing


def test_tok_08_errors_when_acl_is_denied(judge):
    report = judge(None, "-k", "TOK_08", faults=[("GET /api/2.0/permissions/authorization/*", {"status": 403})])
    r = outcome_of(report, "TOK-08", "ws1")
    assert r["outcome"] == "error" and "authorization_acls" in r["reason"] and "403" in r["reason"]


# -- TOK-09 tokens enabled -----------------------------------------------------------------------


@pytest.mark.parametrize("conf, allowed, result", [
    ("true", False, "failed"),
    (None, False, "failed"),       # unset: enabled by default
    ("TRUE", False, "failed"),
    ("false", False, "passed"),
    ("true", True, "passed"),
])
def test_tok_09_tokens_enabled_where_not_allowed(judge, conf, allowed, result):
    def edit(t, ws):
        ws["conf"]["enableTokensConfig"] = conf

    report = judge(edit, "-k", "TOK_09", baseline={"tokens": {"allowed": allowed}})
    assert outcome(report, "TOK-09") == result
    if result == "failed":
        assert ids(report, "TOK-09") == {"enableTokensConfig"}


def test_tok_09_missing_key_skips_and_denied_conf_errors(judge):
    def edit(t, ws):
        ws["conf_unsupported"] = ["enableTokensConfig"]

    report = judge(edit, "-k", "TOK_09", baseline={"tokens": {"allowed": False}})
    r = outcome_of(report, "TOK-09", "ws1")
    assert r["outcome"] == "skipped" and "enableTokensConfig" in r["reason"]
    report = judge(None, "-k", "TOK_09", principal="alice@corp.example.com")
    r = outcome_of(report, "TOK-09", "ws1")
    assert r["outcome"] == "error" and "workspace-conf" in r["reason"] and "403" in r["reason"]
