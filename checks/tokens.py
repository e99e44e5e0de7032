"""TOK: personal access tokens.

Tokens come from the token-management API, which lists every user's tokens (the tokens API would
show only the auditor's own). Ages are judged against the time the data was read, not the wall
clock, so a replayed snapshot gives the same verdicts as the live run.
"""

from __future__ import annotations

import datetime as dt

import pytest

from pytest_dbsec.findings import day

DAY_MS = 86_400_000

REVOKE = ("Revoke it: `databricks token-management delete <token_id>` "
          "(DELETE /api/2.0/token-management/tokens/{token_id}), then have the owner create a token with an "
          "expiry, e.g. `databricks tokens create --lifetime-seconds 7776000`; prefer OAuth for automation.")



def _owner(tok: dict) -> str:
    return tok.get("created_by_username") or (f"user id {tok['owner_id']}" if tok.get("owner_id") else "unknown")


def _fail_token(findings, tok: dict, seen: str, expected: str) -> None:
    findings.fail(
        resource_type="token",
        resource_id=tok.get("token_id", "?"),
        resource_name=tok.get("comment") or tok.get("token_id", "?"),
        owner=_owner(tok),
        seen=seen,
        expected=expected,
        created=day(tok["creation_time"]) if tok.get("creation_time") else None,
        expires=day(tok["expiry_time"]) if (tok.get("expiry_time") or 0) > 0 else "never",
    )


def _never_expires(tok: dict) -> bool:
    # -1 is the API's "never"; a missing or zero expiry is unknown, and unknown must not pass
    expiry = tok.get("expiry_time")
    return expiry is None or expiry <= 0


def _lifetime_days(tok: dict) -> float | None:
    """Days from creation to expiry; None when it never expires or the creation time is unknown."""
    if _never_expires(tok) or not tok.get("creation_time"):
        return None
    return (tok["expiry_time"] - tok["creation_time"]) / DAY_MS


def _active(tokens: list[dict], now: dt.datetime) -> list[dict]:
    """Tokens that still work at `now` (an expired token is harmless and soon purged)."""
    now_ms = now.timestamp() * 1000
    return [t for t in tokens if _never_expires(t) or t["expiry_time"] > now_ms]


def _conf_cap(workspace) -> tuple[str | None, int | None]:
    """The workspace's maxTokenLifetimeDays as (raw value, days); days None when unset or not a number."""
    conf = workspace.data("workspace_conf")
    if "maxTokenLifetimeDays" in conf.get("unavailable", []):
        pytest.skip("workspace-conf key maxTokenLifetimeDays does not exist on this workspace or cloud")
    raw = conf["values"].get("maxTokenLifetimeDays")
    try:
        return raw, int(str(raw).strip())
    except (TypeError, ValueError):
        return raw, None


@pytest.mark.dbsec(
    id="TOK-01", title="No token without expiry", severity="high", scope="workspace",
    sections=["tokens"], refs={"SAT": ["IA-4"], "CIS": ["2.1.6"], "NIST": ["IA-5"]},
    rationale="A token that never expires stays valid long after its owner or purpose is gone; a leaked one "
              "is a permanent backdoor.",
    remediation=REVOKE,
)
def test_TOK_01_no_token_without_expiry(workspace, findings):
    for tok in _active(workspace.data("tokens")["token_infos"], workspace.now):
        if _never_expires(tok):
            seen = "no expiry (expiry_time -1)" if tok.get("expiry_time") == -1 else \
                f"expiry unknown (expiry_time {tok.get('expiry_time')!r})"
            _fail_token(findings, tok, seen=seen, expected="an expiry date")


@pytest.mark.dbsec(
    id="TOK-02", title="Token lifetime within policy", severity="high", scope="workspace",
    sections=["tokens"], refs={"seeds": ["token lifetime"], "NIST": ["IA-5"]},
    rationale="Short-lived tokens bound the damage of a leak; the policy's maximum lifetime is the "
              "longest exposure the organisation accepts.",
    remediation=REVOKE + " Cap new tokens with workspace-conf maxTokenLifetimeDays (TOK-03).",
)
def test_TOK_02_token_lifetime_within_policy(workspace, baseline, findings):
    max_days = baseline.get("tokens.max_lifetime_days")
    for tok in _active(workspace.data("tokens")["token_infos"], workspace.now):
        days = _lifetime_days(tok)
        if _never_expires(tok):
            _fail_token(findings, tok, seen="lifetime unbounded (never expires)",
                        expected=f"lifetime of at most {max_days} days")
        elif days is None:
            _fail_token(findings, tok, seen="lifetime unknown (no creation time)",
                        expected=f"lifetime of at most {max_days} days")
        elif days > max_days:
            _fail_token(findings, tok, seen=f"lifetime {days:.0f} days",
                        expected=f"lifetime of at most {max_days} days")


@pytest.mark.dbsec(
    id="TOK-03", title="Workspace caps token lifetime", severity="medium", scope="workspace",
    sections=["workspace_conf"], refs={"SAT": ["IA-5"], "NIST": ["IA-5"]},
    rationale="Without a workspace-wide cap any user can create a token that outlives the policy.",
    remediation="Set the cap: `databricks workspace-conf set-status --json '{\"maxTokenLifetimeDays\": \"90\"}'` "
                "(PATCH /api/2.0/workspace-conf). It applies to new tokens; revoke longer ones (TOK-04).",
)
def test_TOK_03_workspace_caps_token_lifetime(workspace, baseline, findings):
    max_days = baseline.get("tokens.max_lifetime_days")
    raw, days = _conf_cap(workspace)
    expected = f"maxTokenLifetimeDays set, between 1 and {max_days}"
    if raw is None:
        seen = "maxTokenLifetimeDays unset (no cap)"
    elif days is None:
        seen = f"maxTokenLifetimeDays {raw!r} is not a number"
    elif days <= 0:
        seen = f"maxTokenLifetimeDays {days} (no cap)"
    elif days > max_days:
        seen = f"maxTokenLifetimeDays {days}"
    else:
        return
    findings.fail(resource_type="workspace-conf", resource_id="maxTokenLifetimeDays",
                  resource_name=f"workspace {workspace.name}", seen=seen, expected=expected)


@pytest.mark.dbsec(
    id="TOK-04", title="No token beyond the workspace cap", severity="medium", scope="workspace",
    sections=["tokens", "workspace_conf"], refs={"SAT": ["IA-6"], "NIST": ["IA-5"]},
    rationale="The workspace cap applies only to tokens created after it was set; older tokens keep "
              "their longer lifetime until revoked.",
    remediation=REVOKE,
)
def test_TOK_04_no_token_beyond_workspace_cap(workspace, findings):
    raw, cap = _conf_cap(workspace)
    if cap is None or cap <= 0:
        pytest.skip(f"the workspace sets no token lifetime cap (maxTokenLifetimeDays {raw!r}); TOK-03 reports it")
    for tok in _active(workspace.data("tokens")["token_infos"], workspace.now):
        days = _lifetime_days(tok)
        if _never_expires(tok):
            _fail_token(findings, tok, seen="never expires", expected=f"lifetime within the workspace cap of {cap} days")
        elif days is not None and days > cap:
            _fail_token(findings, tok, seen=f"lifetime {days:.0f} days",
                        expected=f"lifetime within the workspace cap of {cap} days")


# -- TOK-05..TOK-09 ------------------------------------------------------------------------------


def _conf_value(workspace, key: str) -> str | None:
    """A workspace-conf value as a lower-case string (None when unset); skip when the key does not exist."""
    conf = workspace.data("workspace_conf")
    if key in conf.get("unavailable", []):
        pytest.skip(f"workspace-conf key {key} does not exist on this workspace or cloud")
    raw = conf["values"].get(key)
    return None if raw is None else str(raw).strip().lower()


def _tokens_enabled(raw: str | None) -> bool:
    # unset means the default (tokens enabled); anything but an explicit "false" counts as enabled
    return raw != "false"


@pytest.mark.dbsec(
    id="TOK-05", title="Tokens about to expire (info)", severity="info", scope="workspace",
    sections=["tokens"], refs={"SAT": ["GOV-2"]},
    rationale="A token that expires soon breaks whatever still uses it; knowing a week ahead lets the owner "
              "move the integration to OAuth or a new short-lived token instead of extending it in a hurry.",
    remediation="Tell the owner; replace the token before it expires (`databricks tokens create --lifetime-seconds "
                "...`), or better move the integration to OAuth (service principal with M2M OAuth).",
)
def test_TOK_05_tokens_about_to_expire(workspace, baseline, findings):
    warn_days = baseline.get("tokens.warn_expiry_days")
    now_ms = workspace.now.timestamp() * 1000
    for tok in _active(workspace.data("tokens")["token_infos"], workspace.now):
        if _never_expires(tok):
            continue  # TOK-01 reports it
        left = (tok["expiry_time"] - now_ms) / DAY_MS
        if left <= warn_days:
            _fail_token(findings, tok, seen=f"expires {day(tok['expiry_time'])} (in {left:.1f} days)",
                        expected=f"no token expiring within {warn_days} days unnoticed (tokens.warn_expiry_days)")


@pytest.mark.dbsec(
    id="TOK-06", title="No unused tokens", severity="medium", scope="workspace",
    sections=["tokens"], refs={"SAT": ["issue 365"]},
    rationale="A token nobody uses serves no one but whoever finds it; unused credentials should not exist.",
    remediation=REVOKE,
)
def test_TOK_06_no_unused_tokens(workspace, baseline, findings):
    max_days = baseline.get("tokens.max_unused_days")
    now_ms = workspace.now.timestamp() * 1000
    expected = f"used within the last {max_days} days (tokens.max_unused_days)"
    for tok in _active(workspace.data("tokens")["token_infos"], workspace.now):
        last = tok.get("last_used_day")
        if last:
            idle = (now_ms - last) / DAY_MS
            if idle > max_days:
                _fail_token(findings, tok, seen=f"last used {day(last)} ({idle:.0f} days ago)", expected=expected)
        elif not tok.get("creation_time"):
            _fail_token(findings, tok, seen="never used, creation time unknown", expected=expected)
        elif (now_ms - tok["creation_time"]) / DAY_MS > max_days:
            age = (now_ms - tok["creation_time"]) / DAY_MS
            _fail_token(findings, tok, seen=f"never used in {age:.0f} days since creation", expected=expected)


def _service_principals(workspace) -> tuple[dict[str, dict], dict[str, dict]]:
    """Workspace service principals by SCIM id and by applicationId."""
    sps = workspace.data("identities").get("service_principals") or []
    return ({str(sp.get("id")): sp for sp in sps if sp.get("id") is not None},
            {sp["applicationId"]: sp for sp in sps if sp.get("applicationId")})


@pytest.mark.dbsec(
    id="TOK-07", title="Service principals use OAuth, not PATs", severity="medium", scope="workspace",
    sections=["tokens", "identities"], refs={"seeds": ["SP PATs"], "NIST": ["IA-5"]},
    rationale="Automation identities should authenticate with short-lived OAuth tokens (M2M) minted from a "
              "rotated secret; a PAT held by a service principal is a long-lived password stored in some pipeline.",
    remediation=REVOKE + " Give the service principal an OAuth secret (`databricks account service-principal-secrets "
                         "create <sp_id>`) and use OAuth M2M; allow exceptions in tokens.sp_pat_allowed.",
)
def test_TOK_07_service_principals_use_oauth_not_pats(workspace, baseline, findings):
    allowed = set(baseline.get("tokens.sp_pat_allowed") or [])
    by_id, by_app = _service_principals(workspace)
    for tok in _active(workspace.data("tokens")["token_infos"], workspace.now):
        sp = by_id.get(str(tok.get("owner_id"))) if tok.get("owner_id") is not None else None
        if sp is None and tok.get("owner_id") is None:
            sp = by_app.get(tok.get("created_by_username") or "")
        if sp is None:
            continue
        if {sp.get("applicationId"), sp.get("displayName")} & allowed:
            continue
        label = f"{sp.get('displayName') or '?'} ({sp.get('applicationId') or sp.get('id')})"
        creator = tok.get("created_by_username")
        on_behalf = f", created by {creator}" if creator and creator != sp.get("applicationId") else ""
        findings.fail(
            resource_type="token", resource_id=tok.get("token_id", "?"),
            resource_name=tok.get("comment") or tok.get("token_id", "?"), owner=label,
            seen=f"personal access token owned by service principal {label}{on_behalf}",
            expected="OAuth (M2M) for service principals, or the SP in tokens.sp_pat_allowed",
            created=day(tok["creation_time"]) if tok.get("creation_time") else None,
            expires=day(tok["expiry_time"]) if (tok.get("expiry_time") or 0) > 0 else "never",
        )


@pytest.mark.dbsec(
    id="TOK-08", title="Token creation restricted", severity="medium", scope="workspace",
    sections=["authorization_acls", "workspace_conf"], refs={"SAT": ["IA-8"]},
    rationale="When every user may create personal access tokens, any account can mint a long-lived credential "
              "that bypasses SSO and MFA; token use should be granted to the groups that need it.",
    remediation="Grant CAN_USE on tokens to the groups that need PATs only: `databricks permissions set "
                "authorization tokens --json '{\"access_control_list\": [{\"group_name\": \"<group>\", "
                "\"permission_level\": \"CAN_USE\"}]}'` (PUT /api/2.0/permissions/authorization/tokens); this "
                "removes `users`.",
)
def test_TOK_08_token_creation_restricted(workspace, findings):
    acl = (workspace.data("authorization_acls").get("tokens") or {}).get("access_control_list") or []
    conf = workspace.data("workspace_conf")
    # a workspace that does not know the key cannot turn tokens off: judge the ACL as if they were on
    raw = None if "enableTokensConfig" in conf.get("unavailable", []) else conf["values"].get("enableTokensConfig")
    raw = None if raw is None else str(raw).strip().lower()
    if not _tokens_enabled(raw):
        return  # tokens are off: nobody can create one
    grantees = []
    for entry in acl:
        if entry.get("group_name") == "admins":
            continue
        levels = [str(p.get("permission_level")) for p in entry.get("all_permissions") or []]
        grantees.append(entry)
        if entry.get("group_name") == "users":
            findings.fail(resource_type="token permission", resource_id="users",
                          resource_name="users (every workspace user)",
                          seen=f"{'/'.join(levels) or 'an entry'} on authorization/tokens",
                          expected="token use granted to specific groups, not to users")
    if not grantees:
        findings.fail(resource_type="token permission", resource_id="authorization/tokens",
                      resource_name=f"token permissions of workspace {workspace.name}",
                      seen=f"tokens enabled (enableTokensConfig {raw!r}) with no ACL besides admins "
                           "(every user may create tokens)",
                      expected="a tokens ACL naming the groups allowed to create tokens")


@pytest.mark.dbsec(
    id="TOK-09", title="Tokens enabled only where needed", severity="low", scope="workspace",
    sections=["workspace_conf"], refs={"seeds": ["PATs off where unused"]},
    rationale="A workspace that does not need personal access tokens should not allow them at all: no token, "
              "no token to leak.",
    remediation="Disable tokens: `databricks workspace-conf set-status --json '{\"enableTokensConfig\": \"false\"}'` "
                "(PATCH /api/2.0/workspace-conf); existing tokens stop working. If the workspace needs them, set "
                "tokens.allowed: true in its baseline.",
)
def test_TOK_09_tokens_enabled_only_where_needed(workspace, baseline, findings):
    if baseline.get("tokens.allowed"):
        return
    raw = _conf_value(workspace, "enableTokensConfig")
    if _tokens_enabled(raw):
        findings.fail(resource_type="workspace-conf", resource_id="enableTokensConfig",
                      resource_name=f"workspace {workspace.name}",
                      seen=f"enableTokensConfig {raw!r}"
                           + (" (unset: tokens are enabled by default)" if raw is None else ""),
                      expected="false (tokens.allowed is false)")
