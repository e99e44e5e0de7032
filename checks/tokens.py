"""TOK: personal access tokens.

Tokens come from the token-management API, which lists every user's tokens (the tokens API would
show only the auditor's own). Ages are judged against the time the data was read, not the wall
clock, so a replayed snapshot gives the same verdicts as the live run.
"""

from __future__ import annotations

import datetime as dt

import pytest

DAY_MS = 86_400_000

REVOKE = ("Revoke it: `databricks token-management delete <token_id>` "
          "(DELETE /api/2.0/token-management/tokens/{token_id}), then have the owner create a token with an "
          "expiry, e.g. `databricks tokens create --lifetime-seconds 7776000`; prefer OAuth for automation.")


def _when(ms) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d")


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
        created=_when(tok["creation_time"]) if tok.get("creation_time") else None,
        expires=_when(tok["expiry_time"]) if (tok.get("expiry_time") or 0) > 0 else "never",
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
