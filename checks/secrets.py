"""SEC: secret scopes and credentials in code and job definitions.

Credential detection (``pytest_dbsec.credentials``) runs at collection time: notebook sources are
scanned and dropped, and credential values in job definitions are replaced by a marker before they
enter the inventory. These controls therefore see only *where* a credential is and a redacted preview
(at most its first 4 characters), never the value, and neither do snapshots or reports.
"""

from __future__ import annotations

import pytest

from pytest_dbsec.credentials import group_by_location

EVERYONE = ("users", "account users")
RANK = {"READ": 1, "WRITE": 2, "MANAGE": 3}


@pytest.mark.dbsec(
    id="SEC-01", title="Secret scope ACLs least-privilege", severity="high", scope="workspace",
    sections=["secrets"], refs={"seeds": ["secret scope ACLs"]},
    rationale="WRITE lets a user replace a secret that jobs trust (poisoning), MANAGE lets them grant "
              "themselves anything; READ for everyone exposes the secret to every workspace user's code.",
    remediation="Replace the `users` ACL with named groups: `databricks secrets delete-acl <scope> users` and "
                "`databricks secrets put-acl <scope> <group> READ` (POST /api/2.0/secrets/acls/delete, "
                "/api/2.0/secrets/acls/put); list deliberately shared scopes in secrets.shared_scopes.",
)
def test_SEC_01_secret_scope_acls_least_privilege(workspace, baseline, findings):
    shared = set(baseline.get("secrets.shared_scopes") or [])
    for scope in workspace.data("secrets").get("scopes") or []:
        name = scope.get("name")
        bad = []
        for acl in scope.get("acls") or []:
            if acl.get("principal") not in EVERYONE:
                continue
            perm = acl.get("permission")
            if perm in ("WRITE", "MANAGE"):
                bad.append(f"{acl['principal']} {perm}")
            elif perm == "READ":
                if name not in shared:
                    bad.append(f"{acl['principal']} READ (not a shared scope)")
            else:  # a level the SDK did not know arrives as None: unknown must not pass
                bad.append(f"{acl['principal']} {perm or 'unknown permission'}")
        if bad:
            findings.fail(resource_type="secret-scope", resource_id=name, resource_name=name, seen="; ".join(bad),
                          expected="no WRITE/MANAGE for all users; READ for all users only on scopes in "
                                   "secrets.shared_scopes", backend=scope.get("backend_type"))


@pytest.mark.dbsec(
    id="SEC-02", title="Secret scopes in use", severity="low", scope="workspace",
    sections=["secrets"], refs={"SAT": ["DP-1"]},
    rationale="A workspace without a single secret scope keeps its credentials somewhere else -- usually in "
              "code or cluster configuration.",
    remediation="Create a scope and move credentials into it: `databricks secrets create-scope <scope>`, "
                "`databricks secrets put-secret <scope> <key>`; reference them as `{{secrets/<scope>/<key>}}` or "
                "`dbutils.secrets.get(scope, key)`.",
)
def test_SEC_02_secret_scopes_in_use(workspace, findings):
    if not workspace.data("secrets").get("scopes"):
        findings.fail(resource_type="workspace", resource_id=workspace.name,
                      resource_name=f"workspace {workspace.name}",
                      seen="no secret scope", expected="at least one secret scope holding the workspace's credentials")


def _notebook_owner(path: str) -> str | None:
    parts = (path or "").split("/")
    if len(parts) > 2 and parts[1] in ("Users", "Repos") and "@" in parts[2]:
        return parts[2]
    return None


@pytest.mark.dbsec(
    id="SEC-03", title="No hardcoded credentials in notebooks", severity="critical", scope="workspace",
    sections=["notebooks"], refs={"seeds": ["hardcoded credentials"], "SAT": ["secret scanner"]},
    rationale="Notebook source is readable by everyone it is shared with, exported, copied into repos and "
              "revisions; a credential written in it is exposed to all of them and outlives any edit.",
    remediation="Rotate the credential now (revision history keeps the old source), store it in a secret scope "
                "(`databricks secrets put-secret <scope> <key>`) and read it with "
                "`dbutils.secrets.get(scope=..., key=...)`. Raise secrets.scan_max_objects if the scan was "
                "incomplete.",
)
def test_SEC_03_no_hardcoded_credentials_in_notebooks(workspace, baseline, findings):
    data = workspace.data("notebooks")
    limit = baseline.get("secrets.scan_max_objects")
    scanned = data.get("scanned") or []
    judged = scanned[:limit]
    for obj in judged:
        matches = obj.get("matches") or []
        if not matches:
            continue
        path = obj.get("path")
        lines = sorted({m.get("line") for m in matches if m.get("line")})
        findings.fail(resource_type="notebook" if obj.get("object_type") == "NOTEBOOK" else "file",
                      resource_id=path, resource_name=path, owner=_notebook_owner(path),
                      seen="; ".join(f"line {m.get('line')}: {m.get('description')} ({m.get('preview')})"
                                     for m in matches),
                      expected="no credentials in code: dbutils.secrets.get(scope, key)",
                      lines=lines, kinds=sorted({m.get("kind") for m in matches}), object_id=obj.get("object_id"))
    # A scan that did not cover everything is said, never a silent pass.
    found = data.get("found", len(scanned))
    unreadable = data.get("unreadable") or []
    listing_errors = data.get("listing_errors") or []
    beyond = max(0, len(scanned) - len(judged)) + max(0, found - len(scanned) - len(unreadable))
    if len(judged) < found or listing_errors:
        parts = [f"scanned {len(judged)} of {found} notebooks and workspace files"]
        if beyond:
            cap = min(limit, data.get("export_limit") or limit)
            parts.append(f"{beyond} beyond the scan limit of {cap} (secrets.scan_max_objects {limit}, collector "
                         f"limit {data.get('export_limit')})")
        if unreadable:
            parts.append(f"{len(unreadable)} could not be read (e.g. {unreadable[0].get('path')}: "
                         f"{unreadable[0].get('reason')})")
        if listing_errors:
            parts.append(f"{len(listing_errors)} folders could not be listed (e.g. {listing_errors[0].get('path')}: "
                         f"{listing_errors[0].get('reason')})")
        findings.fail(resource_type="scan", resource_id="notebook-scan-coverage",
                      resource_name=f"notebook scan of workspace {workspace.name}", seen="; ".join(parts),
                      expected="every notebook and workspace file scanned",
                      found=found, scanned=len(judged), unreadable=[u.get("path") for u in unreadable][:50],
                      unlisted_folders=[e.get("path") for e in listing_errors][:50])


@pytest.mark.dbsec(
    id="SEC-04", title="No credentials in job definitions", severity="critical", scope="workspace",
    sections=["jobs"], refs={"seeds": ["credentials in job definitions"]},
    rationale="Job settings -- parameters, task parameters, job cluster environment, dependencies -- are "
              "readable by everyone with CAN_VIEW on the job and appear in run pages and the jobs API.",
    remediation="Rotate the credential, store it in a secret scope and pass a reference instead: "
                "`{{secrets/<scope>/<key>}}` in job cluster env vars, `dbutils.secrets.get` in the task code "
                "(update the job: `databricks jobs reset --json @job.json`, POST /api/2.2/jobs/reset; pipelines: "
                "PUT /api/2.0/pipelines/{id}).",
)
def test_SEC_04_no_credentials_in_job_definitions(workspace, findings):
    for g in group_by_location(workspace.data("jobs").get("credential_matches") or []):
        oid, location = g["object_id"], g["location"]
        findings.fail(resource_type=g["object_type"] or "job", resource_id=f"{oid}:{location}",
                      resource_name=f"{g['object_name'] or oid}: {location}", owner=g["owner"],
                      seen="; ".join(f"{m.get('description')} ({m.get('preview')})" for m in g["matches"]),
                      expected="a secret reference ({{secrets/<scope>/<key>}}), no literal credential",
                      location=location, kinds=sorted({m.get("kind") for m in g["matches"]}))
