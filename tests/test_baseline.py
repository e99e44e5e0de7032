"""Baselines (thresholds, allowlists, waivers, elevations, break-glass, attestations, overrides) and
accepted findings: loading, inheritance, and errors that name file, line and key."""

from __future__ import annotations

import hashlib
import textwrap
from datetime import date, datetime, timezone

import jsonschema
import pytest
import yaml

from pytest_dbsec.accepted import AcceptedError, AcceptedSet, accepted_from_findings, merge, write_accepted
from pytest_dbsec.baseline import SCHEMA, THRESHOLD_KEYS, Baseline, BaselineError, shipped_baselines

# every [key] of the control catalog (shared/controls.md)
CATALOG_KEYS = [
    "iam.max_unprovisioned_ratio", "iam.local_accounts", "iam.max_workspace_admins", "iam.approved_admins",
    "iam.dormant_days", "iam.max_sp_secret_age_days",
    "tokens.max_lifetime_days", "tokens.warn_expiry_days", "tokens.max_unused_days", "tokens.sp_pat_allowed",
    "tokens.allowed",
    "network.widest_prefix", "network.require_private_link",
    "grants.broad_groups", "grants.broad_group_size", "grants.public_securables", "grants.managers",
    "grants.isolated_catalogs",
    "classification.pii_tags", "classification.pii_name_patterns", "classification.unmasked_allowed",
    "classification.row_filter_required",
    "sharing.max_token_days",
    "compute.max_autotermination_minutes", "compute.require_node_allowlist", "compute.max_uptime_days",
    "secrets.shared_scopes", "secrets.scan_max_objects",
    "workspace.require_csp", "workspace.allow_web_terminal", "workspace.require_cmk",
    "jobs.user_run_as_allowed", "jobs.managers",
    "break_glass.principals", "break_glass.windows", "elevations", "waivers", "attestations",
]

TODAY = date(2026, 5, 9)


@pytest.fixture
def here(tmp_path, monkeypatch):
    """Work in tmp_path, so that messages name files as a user would type them (b.yaml:3)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problems(name: str) -> list[str]:
    """The lines of the BaselineError raised when loading ``name``."""
    with pytest.raises(BaselineError) as e:
        Baseline.load(name)
    lines = str(e.value).splitlines()
    assert [str(p) for p in e.value.problems] == lines
    return lines


# -- shipped baselines -------------------------------------------------------------------------------


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_default_sets_every_catalog_key_and_strict_is_tighter():
    assert {"default", "strict"} <= set(shipped_baselines())
    d = Baseline.load("default")
    for key in CATALOG_KEYS + list(THRESHOLD_KEYS):
        d.get(key)  # raises naming the key if it is missing
    assert set(CATALOG_KEYS) - {"break_glass.principals", "break_glass.windows", "elevations", "waivers",
                                "attestations"} <= set(THRESHOLD_KEYS)
    assert d.get("tokens.max_lifetime_days") == 90
    for allowlist in ("iam.approved_admins", "tokens.sp_pat_allowed", "grants.managers", "secrets.shared_scopes",
                      "waivers", "elevations", "attestations", "break_glass.principals"):
        assert d.get(allowlist) == []
    assert d.waivers == d.elevations == d.attestations == [] and d.overrides == {}
    assert d.sha256 == hashlib.sha256(d.path.read_bytes()).hexdigest() and d.chain == (d.path,)

    s = Baseline.load("strict")
    assert s.name == "strict" and s.chain == (d.path, s.path)
    # the chain's digest covers both files, root first
    assert s.sha256 == hashlib.sha256(d.path.read_bytes() + s.path.read_bytes()).hexdigest()
    assert s.get("tokens.max_lifetime_days") == 30 and s.get("iam.dormant_days") == 30
    assert s.get("iam.max_workspace_admins") == 3
    assert s.get("network.require_private_link") is s.get("workspace.require_cmk") is s.get("workspace.require_csp") is True
    assert s.get("workspace.allow_web_terminal") is False
    assert s.get("tokens.sp_pat_allowed") == [] and s.get("classification.pii_tags") == d.get("classification.pii_tags")
    for key in ("tokens.max_lifetime_days", "tokens.max_unused_days", "iam.dormant_days", "iam.max_workspace_admins",
                "network.widest_prefix", "sharing.max_token_days", "compute.max_autotermination_minutes"):
        tighter = s.get(key) > d.get(key) if key == "network.widest_prefix" else s.get(key) < d.get(key)
        assert tighter, key


def test_get_names_the_missing_key(here):
    write(here / "b.yaml", "tokens:\n  max_lifetime_days: 30\n")
    b = Baseline.load("b.yaml")
    with pytest.raises(BaselineError, match=r"b\.yaml: key 'tokens.warn_expiry_days' is not set"):
        b.get("tokens.warn_expiry_days")
    with pytest.raises(BaselineError, match="key 'network.widest_prefix' is not set"):
        b.get("network.widest_prefix")


# -- extends ---------------------------------------------------------------------------------------------


def test_extends_overrides_a_key_and_keeps_the_rest_and_lists_replace(here):
    write(here / "conf/base.yaml", """
        name: base
        tokens:
          max_lifetime_days: 60
          sp_pat_allowed: [sp-a, sp-b]
        grants:
          broad_groups: [users, account users, everyone]
        controls:
          TOK-05: {enabled: false, reason: noisy}
        """)
    write(here / "conf/mine.yaml", """
        extends: base.yaml
        tokens:
          max_lifetime_days: 30
          sp_pat_allowed: [sp-c]
        controls:
          TOK-09: {severity: high, reason: PATs are forbidden here}
        """)
    write(here / "conf/base2.yaml", "extends: default\n")
    (here / "elsewhere").mkdir()
    base = Baseline.load("conf/base.yaml")
    b = Baseline.load("conf/mine.yaml")  # extends: base.yaml is found beside mine.yaml, not in the cwd
    assert b.get("tokens.max_lifetime_days") == 30
    assert b.get("tokens.sp_pat_allowed") == ["sp-c"]  # a list is replaced, not appended to
    assert b.get("grants.broad_groups") == ["users", "account users", "everyone"]  # kept from base
    assert set(b.overrides) == {"TOK-05", "TOK-09"}  # mappings merge
    assert b.overrides["TOK-05"].enabled is False and b.overrides["TOK-05"].source == "conf/base.yaml:8"
    assert b.overrides["TOK-09"].severity == "high" and b.overrides["TOK-09"].enabled is True
    assert b.overrides["TOK-09"].reason == "PATs are forbidden here" and b.overrides["TOK-09"].source == "conf/mine.yaml:6"
    assert base.name == "base" and b.name == "mine" and "name" not in b.data and "extends" not in b.data
    # a shipped parent: everything not overridden comes from default
    assert Baseline.load("conf/base2.yaml").get("tokens.warn_expiry_days") == 7


def test_inherited_waivers_name_the_file_they_are_written_in(here):
    write(here / "parent.yaml", """
        waivers:
          - control: TOK-01
            resource: tok-1
            justification: migration
            approver: ciso@corp.example.com
            expires: 2026-12-31
        """)
    write(here / "child.yaml", "extends: parent.yaml\ntokens:\n  max_lifetime_days: 30\n")
    (w,) = Baseline.load("child.yaml").waivers
    assert w.source == "parent.yaml:2" and w.expires == date(2026, 12, 31) and w.workspace == "*"


# -- errors: file, line, key ---------------------------------------------------------------------------

WAIVER = """
waivers:
  - control: TOK-01
    resource: tok-1
    justification: migration
    approver: ciso@corp.example.com
    expires: 2026-12-31
"""


@pytest.mark.parametrize("text, expected", [
    # unknown keys, at the top and nested, with a suggestion
    ("tokens:\n  max_lifetime_days: 30\ntokenz: {}\n", "b.yaml:3: tokenz: unknown key (did you mean 'tokens'?)"),
    ("tokens:\n  max_lifetime_days: 30\n  max_lifetime: 3\n",
     "b.yaml:3: tokens.max_lifetime: unknown key (did you mean 'max_lifetime_days'?)"),
    # wrong types
    ("tokens:\n  allowed: maybe\n", "b.yaml:2: tokens.allowed: expected true or false, got text 'maybe'"),
    ("iam:\n  approved_admins: admins\n", "b.yaml:2: iam.approved_admins: expected a list of names, got text 'admins'"),
    ("waivers: {}\n", "b.yaml:1: waivers: expected a list of waivers, got a mapping"),
    # negative or out-of-range thresholds
    ("\n\ntokens:\n  max_lifetime_days: -1\n", "b.yaml:4: tokens.max_lifetime_days: must be at least 1, got -1"),
    ("iam:\n  max_unprovisioned_ratio: 1.5\n", "b.yaml:2: iam.max_unprovisioned_ratio: must be at most 1, got 1.5"),
    ("tokens:\n  warn_expiry_days: -7\n", "b.yaml:2: tokens.warn_expiry_days: must be at least 0, got -7"),
    # a waiver without expiry, justification or approver: the line of the waiver
    (WAIVER.replace("    expires: 2026-12-31\n", ""), "b.yaml:3: waivers[0].expires: required (a waiver must expire)"),
    (WAIVER.replace("    justification: migration\n", ""),
     "b.yaml:3: waivers[0].justification: required (a waiver must say why)"),
    (WAIVER.replace("    approver: ciso@corp.example.com\n", ""),
     "b.yaml:3: waivers[0].approver: required (a waiver must name who approved it)"),
    (WAIVER.replace("migration", "''"), "b.yaml:5: waivers[0].justification: '' is not a non-blank text"),
    # dates: a YAML date or an ISO string, nothing else
    (WAIVER.replace("2026-12-31", "20261231"), "b.yaml:7: waivers[0].expires: expected a date (YYYY-MM-DD), got integer 20261231"),
    (WAIVER.replace("2026-12-31", "next year"), "b.yaml:7: waivers[0].expires: 'next year' is not a date (YYYY-MM-DD)"),
    (WAIVER.replace("2026-12-31", "2026-13-01"),
     "b.yaml:7: waivers[0].expires: '2026-13-01' is not a date (YYYY-MM-DD): month must be in 1..12"),
    (WAIVER.replace("2026-12-31", "2026-12-31T12:00:00Z"),
     "b.yaml:7: waivers[0].expires: '2026-12-31T12:00:00+00:00' is not a date (YYYY-MM-DD): it has a time of day; "
     "a date alone is expected"),
    (WAIVER.replace("TOK-01", "TOK1"), "b.yaml:3: waivers[0].control: 'TOK1' is not a control ID such as TOK-01"),
    # overrides: severity, reason
    ("controls:\n  TOK-09: {severity: urgent, reason: x}\n",
     "b.yaml:2: controls.TOK-09.severity: must be one of critical, high, medium, low, info; got 'urgent'"),
    ("controls:\n  TOK-09:\n    severity: high\n",
     "b.yaml:2: controls.TOK-09.reason: required (a re-rated or disabled control must say why)"),
    ("controls:\n  TOK-05:\n    enabled: false\n",
     "b.yaml:2: controls.TOK-05.reason: required (a re-rated or disabled control must say why)"),
    ("controls:\n  TOK-05:\n    reason: just because\n",
     "b.yaml:2: controls.TOK-05: sets neither enabled nor severity: nothing to override"),
    ("controls:\n  tok-5: {enabled: false, reason: x}\n", "b.yaml:2: controls.tok-5: 'tok-5' is not a control ID such as TOK-01"),
    # break-glass windows
    ("break_glass:\n  windows:\n    - start: 2026-03-02T10:00:00Z\n      end: 2026-03-01T10:00:00Z\n      reason: drill\n",
     "b.yaml:4: break_glass.windows[0].end: the window ends (2026-03-01T10:00:00+00:00) before it starts "
     "(2026-03-02T10:00:00+00:00)"),
    ("break_glass:\n  windows:\n    - {start: 2026-03-02, end: 2026-03-03T10:00:00Z, reason: drill}\n",
     "b.yaml:3: break_glass.windows[0].start: '2026-03-02' is not a date and time (e.g. 2026-03-01T09:00:00Z): "
     "the time of day is missing"),
    # regular expressions must compile
    ("classification:\n  pii_name_patterns:\n    - ssn\n    - '(unclosed'\n",
     "b.yaml:4: classification.pii_name_patterns[1]: '(unclosed' is not a regular expression: "
     "missing ), unterminated subpattern at position 0"),
    # attestations and elevations
    ("attestations:\n  - control: IAM-12\n    statement: SSO enforced\n    evidence: https://wiki/sso\n"
     "    attested_by: ciso\n    date: 2026-01-01\n", "b.yaml:2: attestations[0].valid_days: required "
     "(an attestation must go stale)"),
    ("elevations:\n  - principal: bob\n    privilege: MODIFY\n    securable: main.sales\n    justification: x\n"
     "    approver: y\n", "b.yaml:2: elevations[0].expires: required (a just-in-time elevation must expire)"),
    # YAML itself
    ("tokens:\n  max_lifetime_days: 30\n  sp_pat_allowed: [a\n", "b.yaml:4: not valid YAML:"),
    ("tokens:\n  max_lifetime_days: 30\ntokens:\n  allowed: false\n",
     "b.yaml:3: tokens: duplicate key (first on line 1)"),
    ("workspace:\n  on: true\n", "b.yaml:2: workspace: key 'on' is not text (quote it: 'on')"),
    ("[1, 2]\n", "b.yaml:1: expected a mapping, got a list"),
])
def test_each_error_names_file_line_and_key(here, text, expected):
    (here / "b.yaml").write_text(text)  # as is: leading blank lines count
    (first, *_) = problems("b.yaml")
    assert first.startswith(expected), first


def test_accepted_values_for_dates_and_times(here):
    write(here / "b.yaml", WAIVER + "  - {control: TOK-02, resource: '*', justification: j, approver: a, "
                                    "expires: '2027-01-15', workspace: 'dev-*', resource_type: token}\n"
                           "break_glass:\n  principals: [bg@corp.example.com]\n  windows:\n"
                           "    - {start: 2026-03-01 09:00:00, end: '2026-03-01T12:00:00+02:00', reason: drill}\n")
    b = Baseline.load("b.yaml")
    assert [w.expires for w in b.waivers] == [date(2026, 12, 31), date(2027, 1, 15)]
    (win,) = b.break_glass.windows
    assert win.start == datetime(2026, 3, 1, 9, tzinfo=timezone.utc)  # no zone: UTC
    assert win.end == datetime(2026, 3, 1, 10, tzinfo=timezone.utc)  # +02:00 converted
    assert win.source == "b.yaml:11" and b.break_glass.principals == ("bg@corp.example.com",)
    assert b.break_glass.window_at(datetime(2026, 3, 1, 9, 0)) is win
    assert b.break_glass.window_at(datetime(2026, 3, 1, 10, 0, 1, tzinfo=timezone.utc)) is None


def test_all_problems_of_a_file_are_reported_sorted_by_line(here):
    write(here / "b.yaml", """
        waivers:
          - control: TOK-01
            resource: tok-1
            justification: migration
            approver: ciso
        tokens:
          max_lifetime_days: 0
          nope: 1
        controls:
          TOK-09: {severity: high}
        """)
    assert problems("b.yaml") == [
        "b.yaml:2: waivers[0].expires: required (a waiver must expire)",
        "b.yaml:7: tokens.max_lifetime_days: must be at least 1, got 0",
        "b.yaml:8: tokens.nope: unknown key (known keys: allowed, max_lifetime_days, max_unused_days, "
        "sp_pat_allowed, warn_expiry_days)",
        "b.yaml:10: controls.TOK-09.reason: required (a re-rated or disabled control must say why)",
    ]


def test_an_error_in_an_inherited_file_names_that_file(here):
    write(here / "base/parent.yaml", "# the parent\ntokens:\n  max_lifetime_days: -5\n")
    write(here / "child.yaml", "extends: base/parent.yaml\ntokens:\n  warn_expiry_days: 3\nnetwork:\n  wide: 1\n")
    assert problems("child.yaml") == [
        "child.yaml:5: network.wide: unknown key (known keys: require_private_link, widest_prefix, widest_prefix_v6)",
        "base/parent.yaml:3: tokens.max_lifetime_days: must be at least 1, got -5",
    ]
    # the parent alone is broken: the child's line is not blamed
    write(here / "child.yaml", "extends: base/parent.yaml\ntokens:\n  max_lifetime_days: 30\n")
    assert problems("child.yaml") == ["base/parent.yaml:3: tokens.max_lifetime_days: must be at least 1, got -5"]


def test_extends_cycles_and_missing_parents_name_the_extends_line(here):
    write(here / "a.yaml", "# a\nextends: b.yaml\n")
    write(here / "b.yaml", "tokens:\n  allowed: true\nextends: a.yaml\n")
    assert problems("a.yaml") == ["b.yaml:3: extends: 'extends' forms a cycle: a.yaml -> b.yaml -> a.yaml"]
    write(here / "c.yaml", "# c\nextends: nowhere.yaml\n")
    (line,) = problems("c.yaml")
    assert line.startswith("c.yaml:2: extends: 'nowhere.yaml': no such baseline file") and "default" in line and "strict" in line
    with pytest.raises(BaselineError, match="nope.yaml: no such baseline file"):
        Baseline.load("nope.yaml")


def test_yaml_anchors_and_merge_keys_keep_their_lines(here):
    write(here / "b.yaml", """
        waivers:
          - &w1
            control: TOK-01
            resource: tok-1
            justification: vendor fix pending
            approver: ciso
            expires: 2026-12-31
          - <<: *w1
            resource: tok-2
          - <<: *w1
            expires: soon
        """)
    assert problems("b.yaml") == ["b.yaml:11: waivers[2].expires: 'soon' is not a date (YYYY-MM-DD)"]
    write(here / "b.yaml", (here / "b.yaml").read_text().replace("soon", "2026-06-30"))
    w = Baseline.load("b.yaml").waivers
    assert [(x.resource, x.expires, x.source) for x in w] == [
        ("tok-1", date(2026, 12, 31), "b.yaml:2"), ("tok-2", date(2026, 12, 31), "b.yaml:8"),
        ("tok-1", date(2026, 6, 30), "b.yaml:10")]


# -- waivers, attestations, control IDs -------------------------------------------------------------------


@pytest.fixture
def waivers(here):
    write(here / "w.yaml", """
        waivers:
          - control: TOK-01
            resource: "ci-*"
            workspace: "prod*"
            justification: CI tokens migrate to OAuth in Q3
            approver: ciso@corp.example.com
            expires: 2026-06-30
          - control: TOK-02
            resource: tok-42
            resource_type: token
            justification: vendor integration
            approver: ciso@corp.example.com
            expires: 2026-05-08
          - control: TOK-02
            resource: tok-7
            justification: expired long ago
            approver: ciso@corp.example.com
            expires: 2026-01-01
          - control: TOK-02
            resource: tok-7
            justification: renewed
            approver: ciso@corp.example.com
            expires: 2026-05-09
        """)
    return Baseline.load("w.yaml")


def test_waiver_matches_by_glob_on_id_or_name_and_on_workspace(waivers):
    w1 = waivers.waivers[0]
    assert w1.source == "w.yaml:2"
    # by resource name, by resource id
    assert waivers.waiver_for("TOK-01", "prod", "token", "tok-1", "ci-deploy", TODAY) == (w1, None)
    assert waivers.waiver_for("TOK-01", "prod-eu", "token", "ci-99", "someone's", TODAY) == (w1, None)
    # not this workspace, resource, control; and case matters
    assert waivers.waiver_for("TOK-01", "dev", "token", "tok-1", "ci-deploy", TODAY) == (None, None)
    assert waivers.waiver_for("TOK-01", "prod", "token", "tok-1", "deploy", TODAY) == (None, None)
    assert waivers.waiver_for("TOK-02", "prod", "token", "ci-1", "ci-1", TODAY) == (None, None)
    assert waivers.waiver_for("TOK-01", "PROD", "token", "ci-1", "ci-1", TODAY) == (None, None)


def test_expired_waiver_is_returned_second_and_does_not_protect(waivers):
    w42 = waivers.waivers[1]
    assert w42.expired(TODAY) and not w42.expired(date(2026, 5, 8))  # protects through its expiry day
    assert waivers.waiver_for("TOK-02", "prod", "token", "tok-42", "x", TODAY) == (None, w42)
    assert waivers.waiver_for("TOK-02", "prod", "token", "tok-42", "x", date(2026, 5, 8)) == (w42, None)
    # resource_type narrows the match
    assert waivers.waiver_for("TOK-02", "prod", "cluster", "tok-42", "x", TODAY) == (None, None)
    # a renewed waiver protects; its expired predecessor is not reported
    assert waivers.waiver_for("TOK-02", "prod", "token", "tok-7", "x", TODAY) == (waivers.waivers[3], None)
    # once both expired, the most recent one is reported
    assert waivers.waiver_for("TOK-02", "prod", "token", "tok-7", "x", date(2026, 6, 1)) == (None, waivers.waivers[3])


def test_attestation_current_and_stale(here):
    write(here / "b.yaml", """
        attestations:
          - control: IAM-12
            statement: SSO is enforced for the account; password login disabled
            evidence: https://wiki.corp.example.com/sec/sso-2026
            attested_by: ciso@corp.example.com
            date: 2026-01-10
            valid_days: 180
          - control: IAM-12
            statement: SSO is enforced (previous review)
            evidence: https://wiki.corp.example.com/sec/sso-2025
            attested_by: ciso@corp.example.com
            date: 2025-01-10
            valid_days: 180
        """)
    b = Baseline.load("b.yaml")
    new, old = b.attestations
    assert new.source == "b.yaml:2" and old.source == "b.yaml:8"
    assert new.current(TODAY) and new.current(date(2026, 7, 9)) and not new.current(date(2026, 7, 10))
    assert not new.current(date(2026, 1, 9))  # not yet attested
    assert not old.current(TODAY)
    assert b.attestation_for("IAM-12", TODAY) == (new, None)
    assert b.attestation_for("IAM-12", date(2027, 1, 1)) == (None, new)
    assert b.attestation_for("TOK-01", TODAY) == (None, None)


def test_validate_control_ids_names_the_line_of_each_unknown_id(here):
    write(here / "parent.yaml", """
        attestations:
          - {control: IAM-12, statement: s, evidence: https://x, attested_by: me, date: 2026-01-01, valid_days: 90}
        """)
    write(here / "b.yaml", """
        extends: parent.yaml
        controls:
          TOK-05: {enabled: false, reason: noisy}
          TOK-99: {severity: low, reason: typo}
        waivers:
          - control: TOK-01
            resource: x
            justification: j
            approver: a
            expires: 2026-12-31
          - control: TOK-10
            resource: x
            justification: j
            approver: a
            expires: 2026-12-31
        """)
    b = Baseline.load("b.yaml")
    known = {f"TOK-0{i}" for i in range(1, 10)}
    with pytest.raises(BaselineError) as e:
        b.validate_control_ids(known)
    lines = str(e.value).splitlines()
    assert lines[0] == "b.yaml:4: controls.TOK-99: unknown control 'TOK-99'; did you mean TOK-09?"
    assert lines[1].startswith("b.yaml:11: waivers[1].control: unknown control 'TOK-10'")
    assert lines[2:] == ["parent.yaml:2: attestations[0].control: unknown control 'IAM-12'"]
    b.validate_control_ids(known | {"TOK-99", "TOK-10", "IAM-12"})


def test_elevations_and_overrides_as_objects(here):
    write(here / "b.yaml", """
        elevations:
          - principal: bob@corp.example.com
            privilege: MODIFY
            securable: catalog:main.sales
            expires: 2026-05-01
            justification: INC-1234 data fix
            approver: lead@corp.example.com
        controls:
          WS-13: {enabled: false, reason: no notebooks in this workspace}
        """)
    b = Baseline.load("b.yaml")
    (e,) = b.elevations
    assert (e.principal, e.privilege, e.securable, e.source) == ("bob@corp.example.com", "MODIFY",
                                                                  "catalog:main.sales", "b.yaml:2")
    assert e.expired(TODAY) and not e.expired(date(2026, 5, 1))
    o = b.overrides["WS-13"]
    assert (o.enabled, o.severity, o.reason, o.source) == (False, None, "no notebooks in this workspace", "b.yaml:9")


# -- accepted findings -------------------------------------------------------------------------------------


def _finding(fp, rid, disposition=None, rtype="token"):
    return {"fingerprint": fp, "resource_type": rtype, "resource_id": rid, "resource_name": f"name-{rid}",
            "owner": "bob", "seen": "x", "expected": "y", "details": {}, "disposition": disposition,
            "expired_waiver": None}


FINDINGS = {
    "format": "pytest-dbsec/findings", "version": 1, "complete": True,
    "results": [
        {"control_id": "TOK-02", "target": "prod", "outcome": "failed", "findings": [
            _finding("bbbbbbbbbbbbbbbb", "tok-2"),
            _finding("aaaaaaaaaaaaaaaa", "tok-1"),
            _finding("cccccccccccccccc", "tok-3", {"kind": "waived", "justification": "j", "approver": "a",
                                                   "expires": "2026-12-31", "source": "b.yaml:3", "active": True}),
            _finding("dddddddddddddddd", "tok-4", {"kind": "waived", "justification": "j", "approver": "a",
                                                   "expires": "2026-01-01", "source": "b.yaml:9", "active": False}),
        ]},
        {"control_id": "TOK-01", "target": "prod", "outcome": "accepted", "findings": [
            _finding("eeeeeeeeeeeeeeee", "tok-5", {"kind": "accepted", "justification": "accepted on 2026-01-02",
                                                   "source": "acc.yaml:5", "active": True}),
        ]},
        {"control_id": "TOK-03", "target": "prod", "outcome": "passed", "findings": []},
    ],
}


def test_accepted_round_trip_only_open_findings(tmp_path):
    doc = accepted_from_findings(FINDINGS, TODAY)
    assert doc["format"] == "pytest-dbsec/accepted" and doc["version"] == 1 and doc["created"] == "2026-05-09"
    # sorted by control, target, resource; the actively waived tok-3 is not accepted, the expired-waiver tok-4 is
    assert [(e["control"], e["resource_id"]) for e in doc["accepted"]] == [
        ("TOK-01", "tok-5"), ("TOK-02", "tok-1"), ("TOK-02", "tok-2"), ("TOK-02", "tok-4")]
    assert doc["accepted"][1] == {"fingerprint": "aaaaaaaaaaaaaaaa", "control": "TOK-02", "target": "prod",
                                  "resource_type": "token", "resource_id": "tok-1", "resource_name": "name-tok-1",
                                  "accepted_on": "2026-05-09"}
    strict = accepted_from_findings(FINDINGS, TODAY, keep_accepted=False)
    assert [e["resource_id"] for e in strict["accepted"]] == ["tok-1", "tok-2", "tok-4"]

    path = tmp_path / "sub" / "accepted.yaml"
    write_accepted(doc, path)
    text = path.read_text()
    assert text.startswith("# pytest-dbsec accepted findings") and yaml.safe_load(text)["accepted"]
    assert [p.name for p in path.parent.iterdir()] == ["accepted.yaml"]  # no temp file left behind
    acc = AcceptedSet.load(path)
    assert len(acc) == 4 and acc.created == TODAY
    e = acc.match("aaaaaaaaaaaaaaaa")
    assert (e.control, e.target, e.resource_type, e.resource_id, e.resource_name, e.accepted_on) == (
        "TOK-02", "prod", "token", "tok-1", "name-tok-1", TODAY)
    lines = text.splitlines()
    assert acc.source(e) == e.source == f"{path}:{lines.index('- fingerprint: aaaaaaaaaaaaaaaa') + 1}"
    assert acc.match("cccccccccccccccc") is None and acc.match("0000000000000000") is None
    assert acc.to_doc() == doc


def test_merge_keeps_the_earliest_acceptance(tmp_path):
    old = accepted_from_findings(FINDINGS, date(2026, 1, 2))
    old["accepted"] = old["accepted"][:2] + [dict(old["accepted"][0], fingerprint="ffffffffffffffff",
                                                  resource_id="tok-gone", note="ticket SEC-1")]
    new = accepted_from_findings(FINDINGS, TODAY)
    merged = merge(old, new)
    by = {e["fingerprint"]: e for e in merged["accepted"]}
    assert by["eeeeeeeeeeeeeeee"]["accepted_on"] == "2026-01-02"  # in both: the earlier date
    assert by["dddddddddddddddd"]["accepted_on"] == "2026-05-09"  # new
    assert by["ffffffffffffffff"]["note"] == "ticket SEC-1"  # only in old: kept
    pruned = merge(old, new, prune=True)
    assert "ffffffffffffffff" not in {e["fingerprint"] for e in pruned["accepted"]}
    assert {e["fingerprint"]: e["accepted_on"] for e in pruned["accepted"]}["aaaaaaaaaaaaaaaa"] == "2026-01-02"
    write_accepted(merged, tmp_path / "a.yaml")
    assert len(AcceptedSet.load(tmp_path / "a.yaml")) == 5


ACCEPTED = """
format: pytest-dbsec/accepted
version: 1
created: 2026-05-09
accepted:
  - fingerprint: aaaaaaaaaaaaaaaa
    control: TOK-02
    target: prod
    accepted_on: 2026-05-09
  - fingerprint: bbbbbbbbbbbbbbbb
    control: TOK-02
    target: prod
    accepted_on: 2026-05-09
"""


@pytest.mark.parametrize("text, expected", [
    (ACCEPTED.replace("pytest-dbsec/accepted", "pytest-dbsec/findings"),
     "a.yaml:1: format: expected 'pytest-dbsec/accepted', got 'pytest-dbsec/findings'"),
    (ACCEPTED.replace("version: 1", "version: 2"),
     "a.yaml:2: version: expected 1 (the only version this pytest-dbsec reads), got 2"),
    (ACCEPTED.replace("  - fingerprint: bbbbbbbbbbbbbbbb\n    control", "  - control"),
     "a.yaml:9: accepted[1].fingerprint: required (the fingerprint is what matches a finding)"),
    (ACCEPTED.replace("bbbbbbbbbbbbbbbb", "aaaaaaaaaaaaaaaa"),
     "a.yaml:9: accepted[1].fingerprint: duplicate fingerprint aaaaaaaaaaaaaaaa (first on line 5)"),
    (ACCEPTED.replace("accepted_on: 2026-05-09\n  -", "accepted_on: yesterday\n  -"),
     "a.yaml:8: accepted[0].accepted_on: 'yesterday' is not a date (YYYY-MM-DD)"),
    (ACCEPTED.replace("aaaaaaaaaaaaaaaa", "not-a-print"),
     "a.yaml:5: accepted[0].fingerprint: 'not-a-print' is not a finding fingerprint"),
    (ACCEPTED.replace("    target: prod\n    accepted_on: 2026-05-09\n  - f",
                      "    target: prod\n    accepted_on: 2026-05-09\n    why: legacy\n  - f"),
     "a.yaml:9: accepted[0].why: unknown key"),
    (ACCEPTED.replace("accepted:\n", "accepted:\n  - [\n"), "a.yaml:6: not valid YAML"),
])
def test_accepted_errors_name_file_line_and_key(here, text, expected):
    write(here / "a.yaml", text)
    with pytest.raises(AcceptedError) as e:
        AcceptedSet.load("a.yaml")
    assert str(e.value).splitlines()[0].startswith(expected), str(e.value)


def test_accepted_from_bad_findings_json_names_the_key():
    with pytest.raises(AcceptedError, match=r"findings.json: format: expected 'pytest-dbsec/findings'"):
        accepted_from_findings({"format": "x", "version": 1, "results": []}, TODAY)
    bad = {**FINDINGS, "results": [{"control_id": "TOK-01", "target": "prod", "findings": [{"resource_id": "x"}]}]}
    with pytest.raises(AcceptedError, match=r"results\[0\]\.findings\[0\]\.fingerprint: missing"):
        accepted_from_findings(bad, TODAY)
    with pytest.raises(AcceptedError, match="cannot read"):
        AcceptedSet.load("/nonexistent/accepted.yaml")
