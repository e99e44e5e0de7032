"""CMP: compute -- clusters, cluster policies, init scripts, runtimes, credentials in cluster config.

Which clusters each control judges:

* CMP-01/02/03/07/09 judge *interactive* clusters: ``cluster_source`` UI or API (or a source the SDK
  did not know, which arrives as None: unknown must not pass). Job clusters are short-lived and are
  judged through the job definitions where it matters (CMP-05, CMP-06, CMP-08).
* CMP-05/06 judge every cluster in the clusters list plus the cluster specs of job definitions (tasks'
  ``new_cluster``, ``job_clusters``) and pipelines (``spec.clusters``).
* CMP-08 judges non-job clusters from the list and the job definitions' cluster specs (a JOB cluster in
  the list is one past run of a definition).

Credential values never reach this module: the collector replaced them with a marker and kept only the
location and a redacted preview (``credential_matches`` of the ``compute`` and ``jobs`` sections).
"""

from __future__ import annotations

import json

import pytest

from pytest_dbsec.credentials import group_by_location

DAY_MS = 86_400_000
INTERACTIVE_SOURCES = ("UI", "API", None)
# data_security_mode values that enforce Unity Catalog (standard/shared and dedicated/single-user, or
# "auto", which Databricks resolves to one of them)
UC_MODES = ("SINGLE_USER", "USER_ISOLATION", "DATA_SECURITY_MODE_STANDARD", "DATA_SECURITY_MODE_DEDICATED",
            "DATA_SECURITY_MODE_AUTO")
EVERYONE = ("users", "account users")


def _interactive(compute: dict) -> list[dict]:
    return [c for c in compute.get("clusters") or [] if c.get("cluster_source") in INTERACTIVE_SOURCES]


def _fail_cluster(findings, c: dict, seen: str, expected: str, **details) -> None:
    findings.fail(resource_type="cluster", resource_id=c.get("cluster_id", "?"),
                  resource_name=c.get("cluster_name") or c.get("cluster_id", "?"),
                  owner=c.get("creator_user_name"), seen=seen, expected=expected,
                  source=c.get("cluster_source") or "unknown", state=c.get("state"), **details)


def _job_name(job: dict) -> str:
    return (job.get("settings") or {}).get("name") or str(job.get("job_id"))


def _job_cluster_specs(job: dict):
    """(where, cluster spec) of every cluster a job definition creates."""
    settings = job.get("settings") or {}
    for jc in settings.get("job_clusters") or []:
        if isinstance(jc.get("new_cluster"), dict):
            yield f"job_clusters[{jc.get('job_cluster_key')}]", jc["new_cluster"]

    def tasks(items, prefix=""):
        for t in items or []:
            if isinstance(t.get("new_cluster"), dict):
                yield f"{prefix}tasks[{t.get('task_key')}].new_cluster", t["new_cluster"]
            nested = (t.get("for_each_task") or {}).get("task")
            if isinstance(nested, dict):
                yield from tasks([nested], f"{prefix}tasks[{t.get('task_key')}].for_each_task.")

    yield from tasks(settings.get("tasks"))


def _pipeline_cluster_specs(p: dict):
    for c in (p.get("spec") or {}).get("clusters") or []:
        if isinstance(c, dict):
            yield f"clusters[{c.get('label', '?')}]", c


# -- policies ------------------------------------------------------------------------------------


class PolicyDefinitionError(ValueError):
    pass


def policy_definition(p: dict) -> dict:
    """A policy's rules: its ``definition`` (a JSON string) with the family overrides applied."""
    merged: dict = {}
    for key in ("definition", "policy_family_definition_overrides"):
        raw = p.get(key)
        if raw in (None, ""):
            continue
        try:
            parsed = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError as e:
            raise PolicyDefinitionError(f"{key} is not valid JSON ({e})") from None
        if not isinstance(parsed, dict):
            raise PolicyDefinitionError(f"{key} is not a JSON object")
        merged.update(parsed)
    return merged


def _rule(definition: dict, key: str) -> dict | None:
    rule = definition.get(key)
    return rule if isinstance(rule, dict) else None


def _show(rule) -> str:
    return "not set by the policy" if rule is None else json.dumps(rule, separators=(",", ":"), sort_keys=True)


def pins_uc_mode(definition: dict) -> bool:
    """The policy forces a Unity Catalog access mode: fixed to one, or an allowlist of only those."""
    rule = _rule(definition, "data_security_mode")
    if rule is None:
        return False
    if rule.get("type") == "fixed":
        return rule.get("value") in UC_MODES
    if rule.get("type") == "allowlist":
        values = rule.get("values") or []
        return bool(values) and all(v in UC_MODES for v in values)
    return False


def _autotermination_bounded(definition: dict, max_minutes: int) -> bool:
    """Every cluster the policy allows terminates within max_minutes (0, "never", is not allowed)."""
    rule = _rule(definition, "autotermination_minutes")
    if rule is None:
        return False

    def ok(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and 1 <= v <= max_minutes

    kind = rule.get("type")
    if kind == "fixed":
        return ok(rule.get("value"))
    if kind == "range":
        # a range without minValue (or minValue 0) allows 0, which disables auto-termination
        return ok(rule.get("maxValue")) and ok(rule.get("minValue"))
    if kind == "allowlist":
        values = rule.get("values") or []
        return bool(values) and all(ok(v) for v in values)
    return False


def _node_types_restricted(definition: dict) -> bool:
    for key in ("node_type_id", "instance_pool_id"):  # a fixed pool fixes the node type
        rule = _rule(definition, key)
        if rule is not None and rule.get("type") in ("fixed", "allowlist") \
                and (rule.get("value") is not None or rule.get("values")):
            return True
    return False


def _fail_policy(findings, p: dict, seen: str, expected: str, **details) -> None:
    findings.fail(resource_type="cluster-policy", resource_id=p.get("policy_id", "?"),
                  resource_name=p.get("name") or p.get("policy_id", "?"), owner=p.get("creator_user_name"),
                  seen=seen, expected=expected, **details)


# -- the controls ----------------------------------------------------------------------------------

POLICY_FIX = ("Create clusters under a policy: `databricks clusters edit <cluster-id> --json "
              "'{\"policy_id\": \"<id>\", ...}'` (POST /api/2.1/clusters/edit), and stop unrestricted creation by "
              "removing the `allow-cluster-create` entitlement from users and groups "
              "(PATCH /api/2.0/preview/scim/v2/Groups/{id}).")


@pytest.mark.dbsec(
    id="CMP-01", title="Interactive clusters use a policy", severity="medium", scope="workspace",
    sections=["compute"], refs={"seeds": ["cluster policies"]},
    rationale="A cluster created without a policy can pick any access mode, instance profile, node type and "
              "init script; policies are how the workspace enforces its compute baseline.",
    remediation=POLICY_FIX,
)
def test_CMP_01_interactive_clusters_use_a_policy(workspace, findings):
    for c in _interactive(workspace.data("compute")):
        if not c.get("policy_id"):
            _fail_cluster(findings, c, seen="no cluster policy", expected="created under a cluster policy")


@pytest.mark.dbsec(
    id="CMP-02", title="Clusters use Unity Catalog access modes", severity="high", scope="workspace",
    sections=["compute"], refs={"SAT": ["GOV-12"], "CIS": ["3.1.5"]},
    rationale="No-isolation and legacy access modes bypass Unity Catalog: users of such a cluster share one "
              "identity and credentials, and table ACLs, row filters and column masks are not enforced.",
    remediation="Switch the cluster to standard (USER_ISOLATION) or dedicated (SINGLE_USER) access mode: "
                "`databricks clusters edit <cluster-id> --json '{\"data_security_mode\": \"USER_ISOLATION\", ...}'` "
                "(POST /api/2.1/clusters/edit); enforce it with a policy fixing data_security_mode (CMP-04).",
)
def test_CMP_02_clusters_use_unity_catalog_access_modes(workspace, findings):
    for c in _interactive(workspace.data("compute")):
        mode = c.get("data_security_mode")
        if mode in UC_MODES:
            continue
        seen = ("access mode unset or unknown to the SDK" if mode is None
                else f"access mode {mode}" + (" (no isolation)" if mode == "NONE" else " (legacy)"
                                              if str(mode).startswith("LEGACY_") else ""))
        _fail_cluster(findings, c, seen=seen, expected=f"a Unity Catalog access mode ({', '.join(UC_MODES[:2])})")


@pytest.mark.dbsec(
    id="CMP-03", title="Auto-termination on", severity="medium", scope="workspace",
    sections=["compute"], refs={"seeds": ["auto-termination"]},
    rationale="A cluster that never terminates keeps running (and stays reachable, on an aging runtime) long "
              "after anyone uses it.",
    remediation="Set auto-termination: `databricks clusters edit <cluster-id> --json "
                "'{\"autotermination_minutes\": 60, ...}'` (POST /api/2.1/clusters/edit); bound it in policies "
                "(CMP-04).",
)
def test_CMP_03_auto_termination_on(workspace, baseline, findings):
    max_minutes = baseline.get("compute.max_autotermination_minutes")
    expected = f"auto-termination between 1 and {max_minutes} minutes"
    for c in _interactive(workspace.data("compute")):
        minutes = c.get("autotermination_minutes")
        if not minutes:  # 0 or absent: the API's "never"
            _fail_cluster(findings, c, seen="auto-termination off (never terminates)", expected=expected)
        elif minutes > max_minutes:
            _fail_cluster(findings, c, seen=f"auto-termination after {minutes} minutes", expected=expected)


@pytest.mark.dbsec(
    id="CMP-04", title="Policies pin the security mode", severity="medium", scope="workspace",
    sections=["compute"], refs={"seeds": ["cluster policies"]},
    rationale="A policy is only a control if it fixes what matters: the Unity Catalog access mode, a bounded "
              "auto-termination, and (where required) the node types.",
    remediation="Edit the policy definition: `\"data_security_mode\": {\"type\": \"fixed\", \"value\": "
                "\"USER_ISOLATION\"}`, `\"autotermination_minutes\": {\"type\": \"range\", \"minValue\": 10, "
                "\"maxValue\": 120}`, `\"node_type_id\": {\"type\": \"allowlist\", \"values\": [...]}` -- "
                "`databricks cluster-policies edit --json @policy.json` (POST /api/2.0/policies/clusters/edit).",
)
def test_CMP_04_policies_pin_the_security_mode(workspace, baseline, findings):
    max_minutes = baseline.get("compute.max_autotermination_minutes")
    need_nodes = baseline.get("compute.require_node_allowlist")
    for p in workspace.data("compute").get("cluster_policies") or []:
        try:
            d = policy_definition(p)
        except PolicyDefinitionError as e:
            _fail_policy(findings, p, seen=f"unreadable policy: {e}", expected="a valid JSON policy definition")
            continue
        problems = []
        if not pins_uc_mode(d):
            problems.append(f"data_security_mode {_show(_rule(d, 'data_security_mode'))}")
        if not _autotermination_bounded(d, max_minutes):
            problems.append(f"autotermination_minutes {_show(_rule(d, 'autotermination_minutes'))}")
        if need_nodes and not _node_types_restricted(d):
            problems.append(f"node_type_id {_show(_rule(d, 'node_type_id'))}")
        if problems:
            expected = (f"data_security_mode fixed to a Unity Catalog mode, autotermination_minutes within "
                        f"1..{max_minutes}" + (", node types restricted to an allowlist" if need_nodes else ""))
            _fail_policy(findings, p, seen="; ".join(problems), expected=expected)


def _cluster_credential_matches(workspace) -> list[dict]:
    matches = list(workspace.data("compute").get("credential_matches") or [])
    matches += [m for m in workspace.data("jobs").get("credential_matches") or [] if m.get("area") == "cluster_conf"]
    return matches


def report_credentials(findings, matches: list[dict], expected: str) -> None:
    """One finding per object and location; the secret itself was never collected."""
    for g in group_by_location(matches):
        oid, location = g["object_id"], g["location"]
        findings.fail(resource_type=g["object_type"] or "object", resource_id=f"{oid}:{location}",
                      resource_name=f"{g['object_name'] or oid}: {location}", owner=g["owner"],
                      seen="; ".join(f"{m.get('description')} ({m.get('preview')})" for m in g["matches"]),
                      expected=expected, location=location, kinds=sorted({m.get("kind") for m in g["matches"]}))


@pytest.mark.dbsec(
    id="CMP-05", title="No plaintext secrets in cluster config", severity="critical", scope="workspace",
    sections=["compute", "jobs"], refs={"seeds": ["plaintext secrets"], "NIST": ["IA-5(7)"]},
    rationale="spark_env_vars and spark_conf are readable by anyone who can view the cluster or job, appear "
              "in logs and in the Spark UI; a credential there is exposed to every such reader.",
    remediation="Rotate the exposed credential, store it in a secret scope (`databricks secrets put-secret "
                "<scope> <key>`) and reference it as `{{secrets/<scope>/<key>}}` in the env var or Spark conf "
                "(POST /api/2.1/clusters/edit, POST /api/2.2/jobs/reset).",
)
def test_CMP_05_no_plaintext_secrets_in_cluster_config(workspace, findings):
    report_credentials(findings, _cluster_credential_matches(workspace),
                       expected="a {{secrets/<scope>/<key>}} reference, no literal credential")


def _dbfs_init_scripts(spec: dict) -> list[str]:
    out = []
    for s in spec.get("init_scripts") or []:
        if not isinstance(s, dict):
            continue
        for kind, body in s.items():
            dest = (body or {}).get("destination", "") if isinstance(body, dict) else ""
            if kind == "dbfs" or str(dest).startswith(("dbfs:", "/dbfs/")):
                out.append(dest or f"{kind} (no destination)")
    return out


@pytest.mark.dbsec(
    id="CMP-06", title="No init scripts from DBFS", severity="high", scope="workspace",
    sections=["compute", "jobs", "workspace_conf"], refs={"SAT": ["GOV-25", "INFO-5"]},
    rationale="DBFS is writable by every workspace user: an init script stored there can be replaced by anyone "
              "and then runs as root on every cluster that uses it. Legacy global init scripts (DBFS) run on "
              "every cluster.",
    remediation="Move init scripts to workspace files or a Unity Catalog volume and point the cluster/job at "
                "them (`init_scripts: [{\"volumes\": {\"destination\": \"/Volumes/...\"}}]`); disable legacy "
                "global init scripts: `databricks workspace-conf set-status --json "
                "'{\"enableDeprecatedGlobalInitScripts\": \"false\"}'`.",
)
def test_CMP_06_no_init_scripts_from_dbfs(workspace, findings):
    compute, jobs = workspace.data("compute"), workspace.data("jobs")
    expected = "init scripts from workspace files or Unity Catalog volumes, none from DBFS"
    for c in compute.get("clusters") or []:
        bad = _dbfs_init_scripts(c)
        if bad:
            _fail_cluster(findings, c, seen=f"init scripts from DBFS: {', '.join(bad)}", expected=expected)
    for j in jobs.get("jobs") or []:
        bad = [f"{where}: {d}" for where, spec in _job_cluster_specs(j) for d in _dbfs_init_scripts(spec)]
        if bad:
            findings.fail(resource_type="job", resource_id=j.get("job_id"), resource_name=_job_name(j),
                          owner=j.get("creator_user_name"), seen=f"init scripts from DBFS: {'; '.join(bad)}",
                          expected=expected)
    for p in jobs.get("pipelines") or []:
        bad = [f"{where}: {d}" for where, spec in _pipeline_cluster_specs(p) for d in _dbfs_init_scripts(spec)]
        if bad:
            findings.fail(resource_type="pipeline", resource_id=p.get("pipeline_id"), resource_name=p.get("name"),
                          owner=p.get("creator_user_name"), seen=f"init scripts from DBFS: {'; '.join(bad)}",
                          expected=expected)
    conf = workspace.data("workspace_conf")
    key = "enableDeprecatedGlobalInitScripts"
    if key not in (conf.get("unavailable") or []):
        raw = (conf.get("values") or {}).get(key)
        if raw is not None and str(raw).strip().lower() != "false":
            enabled = [s.get("name") for s in compute.get("global_init_scripts") or [] if s.get("enabled")]
            findings.fail(resource_type="workspace-conf", resource_id=key, resource_name=f"workspace {workspace.name}",
                          seen=f"{key} {raw!r} (legacy global init scripts in dbfs:/databricks/init run on every "
                               f"cluster)", expected=f'{key} "false"',
                          current_global_init_scripts=enabled)


def _cloud(compute: dict) -> str | None:
    if compute.get("cloud"):
        return compute["cloud"]
    for c in compute.get("clusters") or []:
        for attr, cloud in (("aws_attributes", "aws"), ("azure_attributes", "azure"), ("gcp_attributes", "gcp")):
            if c.get(attr):
                return cloud
    return None


@pytest.mark.dbsec(
    id="CMP-07", title="Local disk encryption", severity="low", scope="workspace",
    sections=["compute"], refs={"SAT": ["DP-2"]},
    rationale="Without local disk encryption, shuffle and spill data on the cluster's instance disks is "
              "stored unencrypted.",
    remediation="Recreate or edit the cluster with `\"enable_local_disk_encryption\": true` (POST "
                "/api/2.1/clusters/edit) and fix it in the cluster policy.",
)
def test_CMP_07_local_disk_encryption(workspace, findings):
    compute = workspace.data("compute")
    cloud = _cloud(compute)
    if cloud is None:
        pytest.skip("cannot tell this workspace's cloud (no host metadata, no cloud attributes on clusters); "
                    "local disk encryption is judged on AWS only")
    if cloud != "aws":
        pytest.skip(f"local disk encryption is an AWS setting; this workspace is on {cloud}")
    for c in _interactive(compute):
        if c.get("enable_local_disk_encryption") is not True:
            _fail_cluster(findings, c, seen="local disk encryption off", expected="enable_local_disk_encryption true")


def _supported(version: str, keys: set[str]) -> bool:
    return version in keys or version.startswith("auto:")


@pytest.mark.dbsec(
    id="CMP-08", title="Supported runtimes", severity="high", scope="workspace",
    sections=["compute", "jobs"], refs={"SAT": ["GOV-5"]},
    rationale="A runtime that is no longer supported gets no security fixes.",
    remediation="Move the cluster or job cluster to a supported (LTS) runtime: `databricks clusters edit "
                "<cluster-id> --json '{\"spark_version\": \"15.4.x-scala2.12\", ...}'`, or update the job's "
                "new_cluster.spark_version (POST /api/2.2/jobs/reset); list them with `databricks clusters "
                "spark-versions`.",
)
def test_CMP_08_supported_runtimes(workspace, findings):
    compute, jobs = workspace.data("compute"), workspace.data("jobs")
    keys = {v.get("key") for v in compute.get("spark_versions") or [] if v.get("key")}
    if not keys:
        raise RuntimeError("the workspace returned no supported runtime versions (clusters/spark-versions is "
                           "empty): supported runtimes cannot be judged")
    expected = "a runtime in the workspace's supported versions list"
    for c in compute.get("clusters") or []:
        if c.get("cluster_source") in ("JOB", "PIPELINE", "PIPELINE_MAINTENANCE"):
            continue  # one run of a job definition: the definition is judged below
        v = c.get("spark_version")
        if v and not _supported(v, keys):
            _fail_cluster(findings, c, seen=f"runtime {v}", expected=expected)
    for j in jobs.get("jobs") or []:
        bad = sorted({f"{where}: {spec['spark_version']}" for where, spec in _job_cluster_specs(j)
                      if spec.get("spark_version") and not _supported(spec["spark_version"], keys)})
        if bad:
            findings.fail(resource_type="job", resource_id=j.get("job_id"), resource_name=_job_name(j),
                          owner=j.get("creator_user_name"), seen=f"runtime {'; '.join(bad)}", expected=expected)


@pytest.mark.dbsec(
    id="CMP-09", title="No long-running clusters", severity="medium", scope="workspace",
    sections=["compute"], refs={"SAT": ["GOV-4"]},
    rationale="A cluster picks up runtime and host patches only when it restarts; one running for weeks runs "
              "unpatched code.",
    remediation="Restart the cluster (`databricks clusters restart <cluster-id>`, POST /api/2.1/clusters/restart) "
                "and set auto-termination (CMP-03); schedule restarts for clusters that must stay up.",
)
def test_CMP_09_no_long_running_clusters(workspace, baseline, findings):
    max_days = baseline.get("compute.max_uptime_days")
    now_ms = workspace.now.timestamp() * 1000
    for c in _interactive(workspace.data("compute")):
        if c.get("state") not in ("RUNNING", "RESIZING"):
            continue
        started = max([t for t in (c.get("start_time"), c.get("last_restarted_time")) if t] or [0])
        if not started:
            _fail_cluster(findings, c, seen="running, start time unknown", expected=f"up at most {max_days} days")
            continue
        days = (now_ms - started) / DAY_MS
        if days > max_days:
            _fail_cluster(findings, c, seen=f"running for {days:.0f} days without a restart",
                          expected=f"up at most {max_days} days")


@pytest.mark.dbsec(
    id="CMP-10", title="Permissive policies not open to all", severity="medium", scope="workspace",
    sections=["compute", "acls_cluster_policies"], refs={"seeds": ["escalation"]},
    rationale="CAN_USE on a policy lets a user create clusters under it; when the policy does not pin a Unity "
              "Catalog access mode, every user can create no-isolation or legacy clusters that bypass UC.",
    remediation="Pin the access mode in the policy (CMP-04), or remove CAN_USE for `users`: "
                "`databricks cluster-policies set-permissions <policy-id> --json '{\"access_control_list\": "
                "[{\"group_name\": \"<team>\", \"permission_level\": \"CAN_USE\"}]}'` (PUT "
                "/api/2.0/permissions/cluster-policies/{id}).",
)
def test_CMP_10_permissive_policies_not_open_to_all(workspace, findings):
    acls = workspace.data("acls_cluster_policies").get("acls") or {}
    vanished = set(workspace.data("acls_cluster_policies").get("vanished") or [])
    for p in workspace.data("compute").get("cluster_policies") or []:
        try:
            pinned = pins_uc_mode(policy_definition(p))
        except PolicyDefinitionError:
            pinned = False  # an unreadable policy pins nothing we can see
        if pinned:
            continue
        key = f"cluster-policies/{p.get('policy_id')}"
        acl = acls.get(key)
        if key in vanished:
            continue  # deleted while the audit ran
        if acl is None:
            _fail_policy(findings, p, seen="permissions unknown (not in the collected ACLs) on a policy that does "
                                           "not pin an access mode", expected="CAN_USE only for named groups")
            continue
        open_to = sorted({e.get("group_name") for e in acl.get("access_control_list") or []
                          if e.get("group_name") in EVERYONE and e.get("all_permissions")})
        if open_to:
            _fail_policy(findings, p, seen=f"{' and '.join(open_to)} can use it; it does not pin a Unity Catalog "
                                           f"access mode", expected="not usable by all users, or an access mode pinned")


@pytest.mark.dbsec(
    id="CMP-11", title="Automatic cluster update", severity="medium", scope="workspace",
    sections=["settings"], refs={"SAT": ["GOV-36"]},
    rationale="Automatic cluster update restarts long-running compute in a maintenance window so it runs the "
              "latest images with security fixes.",
    remediation="Enable it: `databricks settings automatic-cluster-update update --json "
                "'{\"setting\": {\"automatic_cluster_update_workspace\": {\"enabled\": true}}, "
                "\"field_mask\": \"automatic_cluster_update_workspace.enabled\", \"allow_missing\": true}'` "
                "(PATCH /api/2.0/settings/types/automatic_cluster_update/names/default).",
)
def test_CMP_11_automatic_cluster_update(workspace, findings):
    name = "automatic_cluster_update"
    s = workspace.data("settings")
    if name in (s.get("unavailable") or {}):
        pytest.skip(f"setting {name} is not available on this workspace or cloud: {s['unavailable'][name]}")
    value = (s.get("values") or {}).get(name)
    if value is None or name in (s.get("unset") or []):
        seen = "never set (off by default)"
    else:
        inner = value.get("automatic_cluster_update_workspace") if isinstance(value, dict) else None
        enabled = inner.get("enabled") if isinstance(inner, dict) else None
        if enabled is True:
            return
        seen = "enabled false" if enabled is False else f"enabled unknown ({json.dumps(inner, sort_keys=True)})"
    findings.fail(resource_type="setting", resource_id=name, resource_name=f"workspace {workspace.name}",
                  seen=seen, expected="automatic_cluster_update_workspace.enabled true")
