"""The Databricks REST emulator, driven by the real databricks-sdk over real HTTP (no mocks)."""

from __future__ import annotations

import base64
import copy
import json
import os
import socket
import time
import urllib.error
import urllib.request

import pytest
from databricks.sdk import AccountClient, WorkspaceClient
from databricks.sdk.core import Config
from databricks.sdk.errors import NotFound, PermissionDenied, Unauthenticated

from pytest_dbsec.emulator import DEMO_TENANT, MINIMAL_TENANT, Emulator, TenantError, load_tenant

DAY_MS = 86_400_000
AUDITOR = "dbsec-auditor@corp.example.com"
AUDITOR_SP = "dbsec-auditor"
GRACE = "grace.lee@corp.example.com"


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(autouse=True)
def _scrub_databricks_env(monkeypatch):
    """Stray DATABRICKS_* / ARM_* variables would change how the SDK authenticates."""
    for name in list(os.environ):
        if name.startswith(("DATABRICKS_", "ARM_")) or name in ("GOOGLE_CREDENTIALS",):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", os.devnull)


@pytest.fixture(scope="module")
def demo_tenant():
    return load_tenant(DEMO_TENANT)


@pytest.fixture(scope="module")
def demo(demo_tenant):
    """A shared, read-only demo emulator. Tests that change data or faults start their own."""
    emu = Emulator(copy.deepcopy(demo_tenant)).start()
    yield emu
    emu.stop()


@pytest.fixture
def fresh(demo_tenant):
    emu = Emulator(copy.deepcopy(demo_tenant)).start()
    yield emu
    emu.stop()


def ws_client(emu, workspace, principal=AUDITOR) -> WorkspaceClient:
    cfg = Config(host=emu.workspace_url(workspace), token=emu.token_for(principal, workspace), retry_timeout_seconds=10)
    return WorkspaceClient(config=cfg)


def acct_client(emu, principal=AUDITOR_SP) -> AccountClient:
    cfg = Config(host=emu.account_url, account_id=emu.account_id, token=emu.token_for(principal), retry_timeout_seconds=10)
    return AccountClient(config=cfg)


def raw(url, token=None, method="GET", body=None):
    """(status, headers, parsed JSON) without the SDK, for wire-level checks."""
    req = urllib.request.Request(url, method=method, data=body)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"{}")


def ws_of(tenant, name):
    return next(w for w in tenant["account"]["workspaces"] if w["name"] == name)


def now_ms():
    return int(time.time() * 1000)


# ----------------------------------------------------------------------------- workspace lists


def test_workspace_identity_lists_match_tenant(demo, demo_tenant):
    w = ws_client(demo, "prod")
    me = w.current_user.me()
    assert me.user_name == AUDITOR
    assert w.get_workspace_id() == ws_of(demo_tenant, "prod")["id"]

    users = {u.user_name: u for u in w.users.list()}
    # every account user except julia.evans, who is only in dev
    assert len(users) == len(demo_tenant["account"]["users"]) - 1
    assert "julia.evans@corp.example.com" not in users
    assert users["aaron.carter@corp.example.com"].active is False  # deactivated, still in a group
    assert users["quinn.harris@corp.example.com"].external_id is None  # local account
    assert users["alice.nguyen@corp.example.com"].external_id == "okta-00u1a002"
    bob_groups = {g.display for g in users["bob.martinez@corp.example.com"].groups}
    assert {"data-engineers", "users"} <= bob_groups
    assert all(g.ref.startswith("Groups/") for g in users["bob.martinez@corp.example.com"].groups)

    groups = {g.display_name: g for g in w.groups.list()}
    assert {"admins", "users", "all-data-team", "data-engineers", "etl-leads", "platform-ops", "sre"} <= set(groups)
    assert groups["admins"].meta.resource_type == "WorkspaceGroup"
    assert groups["data-engineers"].meta.resource_type == "Group"
    assert "Groups/" + groups["etl-leads"].id in {m.ref for m in groups["data-engineers"].members}
    # The cycle platform-ops -> sre -> platform-ops is served as is.
    assert groups["sre"].id in {m.value for m in groups["platform-ops"].members}
    assert groups["platform-ops"].id in {m.value for m in groups["sre"].members}
    admin_members = {m.display for m in groups["admins"].members}
    assert {"dbsec auditor", "dbsec-auditor", "platform-admins", "airflow-sp", "Break Glass Admin"} <= admin_members
    # every workspace user plus the 5 service principals
    assert len(groups["users"].members) == len(users) + 5

    filtered = list(w.users.list(filter='userName eq "grace.lee@corp.example.com"'))
    assert [u.display_name for u in filtered] == ["Grace Lee"]
    assert [g.display_name for g in w.groups.list(filter="displayName sw platform")] == ["platform-admins", "platform-ops"]
    sp_me = ws_client(demo, "prod", AUDITOR_SP).current_user.me()
    assert sp_me.user_name == "6f1c2b9e-0a4d-4c3e-9b8a-1e2f3a4b5c05" and sp_me.display_name == "dbsec-auditor"

    sps = {s.display_name: s for s in w.service_principals.list()}
    assert set(sps) == {"etl-sp", "reporting-sp", "ml-serving-sp", "airflow-sp", "dbsec-auditor"}
    assert sps["etl-sp"].application_id == "6f1c2b9e-0a4d-4c3e-9b8a-1e2f3a4b5c01"
    assert w.users.get(users[GRACE].id).display_name == "Grace Lee"
    with pytest.raises(NotFound):
        w.users.get("1")


def test_token_material_in_prod(demo, demo_tenant):
    w = ws_client(demo, "prod")
    tokens = list(w.token_management.list())
    assert len(tokens) == len(ws_of(demo_tenant, "prod")["tokens"]) == 10
    now = now_ms()
    never = [t for t in tokens if t.expiry_time == -1]
    assert len(never) >= 2
    assert any(t.owner_id and t.created_by_username == "breakglass-admin@corp.example.com" for t in never)
    long_lived = [t for t in tokens if t.expiry_time != -1 and t.expiry_time - t.creation_time > 90 * DAY_MS]
    assert len(long_lived) >= 3
    assert any(t.expiry_time - t.creation_time > 365 * DAY_MS for t in long_lived)  # outlives the 365-day cap
    assert any(t.expiry_time != -1 and t.expiry_time - t.creation_time <= 90 * DAY_MS for t in tokens)
    assert any(t.expiry_time != -1 and 2 * DAY_MS < t.expiry_time - now < 4 * DAY_MS for t in tokens)  # expires in 3 days
    assert any(t.last_used_day and now - t.last_used_day > 90 * DAY_MS for t in tokens)  # unused for months
    sps = {s.id: s for s in w.service_principals.list()}
    sp_owned = [t for t in tokens if str(t.owner_id) in sps]
    assert {sps[str(t.owner_id)].display_name for t in sp_owned} == {"reporting-sp", "etl-sp"}
    assert all(t.workspace_id == ws_of(demo_tenant, "prod")["id"] for t in tokens)
    one = w.token_management.get(tokens[1].token_id).token_info
    assert one.token_id == tokens[1].token_id and one.comment == tokens[1].comment
    by_alice = list(w.token_management.list(created_by_username="alice.nguyen@corp.example.com"))
    assert len(by_alice) == 3  # her own plus two created on behalf of service principals
    conf = w.workspace_conf.get_status(keys="maxTokenLifetimeDays,enableTokensConfig,noSuchKey")
    assert conf == {"maxTokenLifetimeDays": "365", "enableTokensConfig": "true", "noSuchKey": None}
    acl = w.token_management.get_permissions().access_control_list
    assert any(a.group_name == "users" and a.all_permissions[0].permission_level.value == "CAN_USE" for a in acl)


def test_token_material_in_dev(demo):
    w = ws_client(demo, "dev")
    assert w.workspace_conf.get_status(keys="maxTokenLifetimeDays") == {"maxTokenLifetimeDays": None}
    assert any(t.expiry_time == -1 for t in w.token_management.list())
    assert w.metastores.current().default_catalog_name == "dev"
    groups = {g.display_name: g for g in w.groups.list()}
    assert groups["legacy-etl"].meta.resource_type == "WorkspaceGroup"
    assert w.settings.restrict_workspace_admins.get().restrict_workspace_admins.status.value == "ALLOW_ALL"


def test_workspace_settings_and_network_lists(demo):
    w = ws_client(demo, "prod")
    lists = list(w.ip_access_lists.list())
    assert [l.label for l in lists] == ["corp-vpn", "office-egress", "known-bad"]
    assert lists[0].address_count == 2 and lists[0].list_type.value == "ALLOW"
    assert w.ip_access_lists.get(lists[2].list_id).ip_access_list.label == "known-bad"
    dev_lists = list(ws_client(demo, "dev").ip_access_lists.list())
    assert "0.0.0.0/0" in dev_lists[0].ip_addresses
    s = w.settings
    assert s.restrict_workspace_admins.get().restrict_workspace_admins.status.value == "RESTRICT_TOKENS_AND_JOB_RUN_AS"
    assert s.automatic_cluster_update.get().automatic_cluster_update_workspace.enabled is True
    assert s.compliance_security_profile.get().compliance_security_profile_workspace.is_enabled is True
    assert s.sql_results_download.get().boolean_val.value is False
    assert s.disable_legacy_dbfs.get().disable_legacy_dbfs.value is True
    assert s.enable_export_notebook.get_enable_export_notebook().boolean_val.value is True
    with pytest.raises(NotFound):
        s.default_warehouse_id.get()  # not set in the tenant
    assert w.users.get_permissions().access_control_list[0].group_name == "admins"


def test_compute_lists(demo, demo_tenant):
    w = ws_client(demo, "prod")
    clusters = {c.cluster_name: c for c in w.clusters.list()}
    assert len(clusters) == len(ws_of(demo_tenant, "prod")["clusters"])
    bad = clusters["etl-legacy"]
    assert bad.data_security_mode.value == "NONE" and bad.policy_id is None and bad.autotermination_minutes == 0
    assert bad.spark_env_vars["AWS_ACCESS_KEY_ID"].startswith("AKIA") and len(bad.spark_env_vars["AWS_ACCESS_KEY_ID"]) == 20
    assert bad.init_scripts[0].dbfs.destination.startswith("dbfs:/")
    assert clusters["ml-gpu-rachel"].spark_env_vars["MLFLOW_TRACKING_TOKEN"] == "{{secrets/ml/mlflow-token}}"
    assert w.clusters.get(bad.cluster_id).cluster_name == "etl-legacy"
    with pytest.raises(NotFound):  # 400 "Cluster ... does not exist" maps to ResourceDoesNotExist
        w.clusters.get("0000-000000-nope")
    policies = {p.name: p for p in w.cluster_policies.list()}
    assert clusters["shared-analytics"].policy_id == policies["Shared Compute Policy"].policy_id
    assert json.loads(policies["Shared Compute Policy"].definition)["data_security_mode"]["value"] == "USER_ISOLATION"
    assert w.cluster_policies.get(policies["Legacy Unrestricted"].policy_id).name == "Legacy Unrestricted"
    perms = w.cluster_policies.get_permissions(policies["Legacy Unrestricted"].policy_id).access_control_list
    assert any(a.group_name == "users" for a in perms)
    assert [p.instance_pool_name for p in w.instance_pools.list()] == ["etl-pool"]
    scripts = list(w.global_init_scripts.list())
    assert scripts[0].name == "install-corp-ca"
    assert "update-ca-certificates" in base64.b64decode(w.global_init_scripts.get(scripts[0].script_id).script).decode()
    assert "15.4.x-scala2.12" in {v.key for v in w.clusters.spark_versions().versions}
    cperm = w.clusters.get_permissions(clusters["etl-legacy"].cluster_id)
    assert cperm.object_id == f"/clusters/{clusters['etl-legacy'].cluster_id}"
    assert {a.group_name or a.user_name for a in cperm.access_control_list} == {"bob.martinez@corp.example.com", "users", "admins"}


def test_jobs_pipelines_and_other_workspace_objects(demo, demo_tenant):
    w = ws_client(demo, "prod")
    apps = {s.display_name: s.application_id for s in w.service_principals.list()}
    jobs = {j.settings.name: j for j in w.jobs.list(expand_tasks=True)}
    assert len(jobs) == len(ws_of(demo_tenant, "prod")["jobs"])
    assert jobs["Hourly CRM sync"].settings.run_as.user_name == "bob.martinez@corp.example.com"
    assert jobs["Platform maintenance"].settings.run_as.service_principal_name == apps["airflow-sp"]
    assert jobs["Finance month-end close"].settings.run_as.user_name == "paul.walker@corp.example.com"  # defaults to creator
    assert jobs["Nightly ETL - sales"].settings.tasks[0].notebook_task.notebook_path == "/Shared/etl/nightly_load"
    assert not any(j.settings.tasks for j in w.jobs.list())  # no expand_tasks: no task details
    job = w.jobs.get(jobs["Platform maintenance"].job_id)
    assert job.run_as_user_name == apps["airflow-sp"]
    acl = w.jobs.get_permissions(job.job_id).access_control_list
    assert any(a.user_name == "henry.wilson@corp.example.com" and a.all_permissions[0].permission_level.value == "CAN_MANAGE" for a in acl)
    with pytest.raises(NotFound):
        w.jobs.get(1)

    pipelines = {p.name: p for p in w.pipelines.list_pipelines()}
    assert set(pipelines) == {"sales_bronze_silver", "marketing_attribution"}
    assert pipelines["marketing_attribution"].run_as_user_name == "carlos.mitchell@corp.example.com"
    got = w.pipelines.get(pipelines["sales_bronze_silver"].pipeline_id)
    assert got.run_as.service_principal_name == apps["etl-sp"] and got.spec.catalog == "sales"
    assert got.latest_updates[0].creation_time.endswith("Z")

    warehouses = {x.name: x for x in w.warehouses.list()}
    assert warehouses["Legacy BI"].auto_stop_mins == 0
    assert w.warehouses.get(warehouses["Shared SQL"].id).warehouse_type.value == "PRO"
    assert {e.name for e in w.serving_endpoints.list()} == {"churn-model", "support-bot"}
    assert w.serving_endpoints.get("churn-model").ai_gateway.usage_tracking_config.enabled is True
    dashboards = list(w.lakeview.list())
    assert [d.display_name for d in dashboards] == ["Sales KPIs"]  # the trashed one is hidden
    assert w.lakeview.get(dashboards[0].dashboard_id).create_time.endswith("Z")
    repos = list(w.repos.list())
    assert {r.path for r in repos} == {"/Repos/etl/sales-pipeline", "/Repos/bob.martinez@corp.example.com/scratch"}
    assert w.repos.get(repos[0].id).url.startswith("https://")

    scopes = {s.name for s in w.secrets.list_scopes()}
    assert scopes == {"etl-prod", "shared-readonly", "bi-team", "ml"}
    acls = {(a.principal, a.permission.value) for a in w.secrets.list_acls("bi-team")}
    assert ("users", "WRITE") in acls
    assert w.secrets.get_acl("shared-readonly", "users").permission.value == "READ"
    assert {s.key for s in w.secrets.list_secrets("etl-prod")} == {"crm-api-token", "s3-access-key"}

    paths = {o.path: o for o in w.workspace.list("/", recursive=True)}
    assert "/Users/bob.martinez@corp.example.com/crm_sync" in paths
    status = w.workspace.get_status("/Shared/etl")
    assert status.object_type.value == "DIRECTORY"
    exported = w.workspace.export("/Users/bob.martinez@corp.example.com/crm_sync")
    text = base64.b64decode(exported.content).decode()
    assert "dapi" in text and exported.file_type == "py"
    nb = paths["/Shared/etl/nightly_load"]
    nb_acl = w.workspace.get_permissions("notebooks", str(nb.object_id)).access_control_list
    assert any(a.group_name == "contractors" for a in nb_acl)
    with pytest.raises(NotFound):
        w.workspace.get_status("/nope")


def test_unity_catalog_lists(demo):
    w = ws_client(demo, "prod")
    assignment = w.metastores.current()
    summary = w.metastores.summary()
    assert summary.metastore_id == assignment.metastore_id and summary.owner == "data-governance"
    assert summary.delta_sharing_recipient_token_lifetime_in_seconds == 0
    assert {m.name for m in w.metastores.list()} == {"corp-prod-us-east-1", "corp-dev-us-west-2"}
    catalogs = {c.name: c for c in w.catalogs.list()}
    assert set(catalogs) == {"main", "sales", "hr", "finance", "ml"}
    assert catalogs["sales"].owner == "alice.nguyen@corp.example.com"
    assert catalogs["sales"].isolation_mode.value == "ISOLATED"
    assert w.catalogs.get("finance").owner == "finance"
    assert {s.full_name for s in w.schemas.list("sales")} == {"sales.crm", "sales.reporting"}
    tables = {t.name: t for t in w.tables.list("sales", "crm")}
    cols = {c.name: c for c in tables["customers"].columns}
    assert cols["email"].mask.function_name == "sales.crm.mask_email"
    assert cols["phone"].mask is None
    assert tables["customers"].row_filter.function_name == "sales.crm.region_filter"
    assert w.tables.get("hr.people.employees").owner == "hr-analytics"

    grants = w.grants.get("TABLE", "sales.crm.customers").privilege_assignments
    assert {g.principal for g in grants} == {"grace.lee@corp.example.com", "6f1c2b9e-0a4d-4c3e-9b8a-1e2f3a4b5c02"}
    fin = w.grants.get("catalog", "finance").privilege_assignments
    assert any(g.principal == "all-data-team" and [p.value for p in g.privileges] == ["ALL_PRIVILEGES"] for g in fin)
    assert any(g.principal == "account users" for g in w.grants.get("catalog", "main").privilege_assignments)
    eff = {a.principal: a for a in w.grants.get_effective("table", "sales.crm.customers").privilege_assignments}
    inherited = {(p.privilege.value, p.inherited_from_type.value, p.inherited_from_name) for p in eff["analysts"].privileges}
    assert ("SELECT", "SCHEMA", "sales.crm") in inherited and ("USE_CATALOG", "CATALOG", "sales") in inherited
    assert eff["grace.lee@corp.example.com"].privileges[0].inherited_from_type is None  # direct

    locations = {x.name: x for x in w.external_locations.list()}
    assert locations["raw-landing"].isolation_mode.value == "ISOLATION_MODE_OPEN"
    assert locations["finance-exports"].owner == "alice.nguyen@corp.example.com"
    assert any(g.principal == "account users" for g in w.grants.get("external_location", "raw-landing").privilege_assignments)
    creds = {x.name: x for x in w.storage_credentials.list()}
    assert creds["landing-role"].aws_iam_role.role_arn.endswith("role/corp-uc-landing")
    tags = {t.tag_key for t in w.entity_tag_assignments.list("columns", "sales.crm.customers.ssn")}
    assert {"pii", "class.us_ssn"} <= tags
    schemas = {s.schema: s.state for s in w.system_schemas.list(assignment.metastore_id)}
    assert schemas["access"] == "ENABLE_COMPLETED"
    recipients = {r.name: r for r in w.recipients.list()}
    assert recipients["partner-acme"].authentication_type.value == "TOKEN"
    assert w.recipients.get("partner-acme").tokens[0].created_at > 0
    summaries = {t.full_name for t in w.tables.list_summaries("sales", schema_name_pattern="crm")}
    assert summaries == {"sales.crm.customers", "sales.crm.orders"}
    assert list(w.volumes.list("sales", "crm")) == [] and list(w.functions.list("sales", "crm")) == []
    prod_id = w.get_workspace_id()
    assert w.workspace_bindings.get("sales").workspaces == [prod_id]
    assert [b.workspace_id for b in w.workspace_bindings.get_bindings("catalog", "hr")] == [prod_id]
    assert w.metastores.get(assignment.metastore_id).name == "corp-prod-us-east-1"
    only = w.grants.get("catalog", "sales", principal="analysts").privilege_assignments
    assert [(g.principal, [p.value for p in g.privileges]) for g in only] == [("analysts", ["USE_CATALOG"])]
    assert w.grants.get("metastore", assignment.metastore_id).privilege_assignments[0].principal == "data-governance"
    assert w.storage_credentials.get("landing-role").owner == "data-governance"
    assert w.external_locations.get("raw-landing").credential_name == "landing-role"
    assert w.schemas.get("sales.crm").owner == "data-engineers"
    dev_catalogs = [c.name for c in ws_client(demo, "dev").catalogs.list()]
    assert dev_catalogs == ["dev"]  # another metastore; the prod-bound catalogs are not visible
    with pytest.raises(NotFound):
        w.tables.get("sales.crm.nope")


def test_account_apis(demo, demo_tenant):
    a = acct_client(demo)
    workspaces = {x.workspace_name: x for x in a.workspaces.list()}
    assert set(workspaces) == {"prod", "dev"}
    prod = workspaces["prod"]
    assert prod.private_access_settings_id and prod.network_id and prod.storage_customer_managed_key_id
    assert workspaces["dev"].private_access_settings_id is None
    assert a.workspaces.get(prod.workspace_id).deployment_name == "corp-prod"
    users = {u.user_name: u for u in a.users.list()}
    assert len(users) == len(demo_tenant["account"]["users"])
    assert [r.value for r in users["breakglass-admin@corp.example.com"].roles] == ["account_admin"]
    assert users["breakglass-admin@corp.example.com"].external_id is None
    assert len(list(a.groups.list())) == len(demo_tenant["account"]["groups"])
    sps = {s.display_name: s for s in a.service_principals.list()}
    assert len(sps) == 5
    assert a.users.get(users[GRACE].id).user_name == GRACE

    assignments = a.workspace_assignment.list(prod.workspace_id)
    by_name = {x.principal.group_name or x.principal.user_name or x.principal.service_principal_name: x for x in assignments}
    assert [p.value for p in by_name["platform-admins"].permissions] == ["ADMIN"]
    assert [p.value for p in by_name["alex.morgan@corp.example.com"].permissions] == ["ADMIN"]
    assert by_name["6f1c2b9e-0a4d-4c3e-9b8a-1e2f3a4b5c04"].principal.display_name == "airflow-sp"
    levels = {p.permission_level.value for p in a.workspace_assignment.get(prod.workspace_id).permissions}
    assert levels == {"ADMIN", "USER"}

    etl_secrets = list(a.service_principal_secrets.list(sps["etl-sp"].id))
    assert etl_secrets[0].create_time.endswith("Z") and etl_secrets[0].status == "ACTIVE"
    reporting = list(a.service_principal_secrets.list(sps["reporting-sp"].id))
    assert reporting[0].expire_time is None  # never expires

    assert [l.label for l in a.ip_access_lists.list()] == ["admin-console-vpn"]
    assert a.settings.enable_ip_access_lists.get().acct_ip_acl_enable.value is True
    assert a.settings.personal_compute.get().personal_compute.value.value == "ON"
    configs = {c.config_name: c for c in a.log_delivery.list()}
    assert configs["audit-logs-prod"].log_type.value == "AUDIT_LOGS"
    assert configs["audit-logs-prod"].workspace_ids_filter == [prod.workspace_id]
    assert a.log_delivery.get(configs["billable-usage"].config_id).log_delivery_configuration.config_name == "billable-usage"
    policies = {p.network_policy_id: p for p in a.network_policies.list_network_policies_rpc()}
    assert policies["default-policy"].egress.network_access.restriction_mode.value == "FULL_ACCESS"
    assert a.workspace_network_configuration.get_workspace_network_option_rpc(prod.workspace_id).network_policy_id == "prod-restricted-egress"
    metastores = {m.name: m for m in a.metastores.list()}
    assert metastores["corp-dev-us-west-2"].owner == "alice.nguyen@corp.example.com"
    assert a.metastores.get(metastores["corp-prod-us-east-1"].metastore_id).metastore_info.name == "corp-prod-us-east-1"
    assert a.metastore_assignments.get(prod.workspace_id).metastore_assignment.metastore_id == metastores["corp-prod-us-east-1"].metastore_id
    assert list(a.metastore_assignments.list(metastores["corp-dev-us-west-2"].metastore_id)) == [workspaces["dev"].workspace_id]


# --------------------------------------------------------------------------------------- paging


def test_scim_paging_beyond_one_page(fresh):
    fresh.tenant["paging"]["scim_max"] = 7
    w = ws_client(fresh, "prod")
    fresh.clear_requests()
    users = list(w.users.list())
    expected = len(fresh.tenant["account"]["users"]) - 1  # julia.evans is only in dev
    assert len(users) == expected and len({u.id for u in users}) == expected
    starts = [int(r.query["startIndex"]) for r in fresh.requests if r.path.endswith("/scim/v2/Users")]
    # pages of 7, then one past the end: the empty page ends the SDK loop
    assert starts == list(range(1, expected + 1, 7)) + [expected + 1]
    a = acct_client(fresh)
    fresh.clear_requests()
    assert len(list(a.groups.list())) == 16
    assert len([r for r in fresh.requests if r.path.endswith("/scim/v2/Groups")]) == 4


def test_page_token_paging_beyond_one_page(fresh):
    fresh.tenant["paging"]["default_page"] = 2
    w = ws_client(fresh, "prod")

    def pages(path_suffix):
        return [r for r in fresh.requests if r.path.endswith(path_suffix)]

    fresh.clear_requests()
    assert len(list(w.catalogs.list())) == 5
    reqs = pages("/unity-catalog/catalogs")
    assert len(reqs) == 3 and reqs[0].query["max_results"] == "0" and "page_token" in reqs[1].query
    fresh.clear_requests()
    assert len(list(w.tables.list("sales", "crm", max_results=1))) == 2
    assert len(pages("/unity-catalog/tables")) == 2
    fresh.clear_requests()
    assert len(list(w.clusters.list())) == 5
    assert len(pages("/clusters/list")) == 3
    fresh.clear_requests()
    assert len(list(w.jobs.list())) == 5
    assert len(pages("/jobs/list")) == 3
    fresh.clear_requests()
    assert len(list(w.repos.list())) == 2 and len(list(w.pipelines.list_pipelines())) == 2
    assert len(pages("/api/2.0/repos")) == 1


# --------------------------------------------------------------------------------- auth, errors


def test_non_admin_gets_403_where_admin_is_required(demo):
    w = ws_client(demo, "prod", GRACE)
    with pytest.raises(PermissionDenied):
        list(w.token_management.list())
    with pytest.raises(PermissionDenied):
        w.workspace_conf.get_status(keys="maxTokenLifetimeDays")
    with pytest.raises(PermissionDenied):
        w.token_management.get_permissions()
    with pytest.raises(PermissionDenied):
        list(w.ip_access_lists.list())
    with pytest.raises(PermissionDenied):
        w.settings.restrict_workspace_admins.get()
    mine = list(w.tokens.list())  # non-admins see only their own tokens
    assert [t.comment for t in mine] == ["power bi gateway"]
    assert len(list(w.clusters.list())) == 5 and w.current_user.me().user_name == GRACE
    with pytest.raises(PermissionDenied):
        list(acct_client(demo, GRACE).workspaces.list())


def test_unknown_or_misplaced_token_is_401(demo):
    bogus = WorkspaceClient(config=Config(host=demo.workspace_url("prod"), token="dapi-not-a-real-token", retry_timeout_seconds=10))
    with pytest.raises(Unauthenticated):
        bogus.current_user.me()
    dev_token = demo.token_for(AUDITOR, "dev")
    status, _, body = raw(demo.workspace_url("prod") + "/api/2.0/preview/scim/v2/Me", dev_token)
    assert status == 401 and body["error_code"] == "UNAUTHENTICATED"
    status, _, body = raw(demo.workspace_url("prod") + "/api/2.0/clusters/list")
    assert status == 401
    status, _, _ = raw(f"{demo.account_url}/api/2.0/accounts/{demo.account_id}/workspaces", demo.token_for(AUDITOR, "prod"))
    assert status == 401
    with pytest.raises(KeyError):
        demo.token_for("nobody@corp.example.com", "prod")


def test_deactivated_principal_is_401(fresh):
    url, token = fresh.workspace_url("prod"), fresh.token_for(GRACE, "prod")
    assert raw(url + "/api/2.0/preview/scim/v2/Me", token)[0] == 200
    next(u for u in fresh.tenant["account"]["users"] if u["userName"] == GRACE)["active"] = False
    status, _, body = raw(url + "/api/2.0/preview/scim/v2/Me", token)
    assert status == 401 and "deactivated" in body["message"]


def test_well_known_and_route_separation(demo):
    status, headers, body = raw(demo.workspace_url("prod") + "/.well-known/databricks-config")
    assert status == 200 and body["workspace_id"] == "3141592653589793" and body["cloud"] == "aws"
    assert body["oidc_endpoint"].endswith("/oidc")
    status, _, body = raw(demo.account_url + "/.well-known/databricks-config")
    assert body == {"account_id": demo.account_id, "cloud": "aws", "oidc_endpoint": f"{demo.account_url}/oidc/accounts/{demo.account_id}"}
    token = demo.token_for(AUDITOR_SP)
    status, _, body = raw(demo.account_url + "/api/2.1/clusters/list", token)
    assert status == 404 and body["error_code"] == "ENDPOINT_NOT_FOUND"
    status, _, body = raw(f"{demo.workspace_url('prod')}/api/2.0/accounts/{demo.account_id}/workspaces", demo.token_for(AUDITOR, "prod"))
    assert status == 404 and body["error_code"] == "ENDPOINT_NOT_FOUND"
    status, headers, _ = raw(demo.workspace_url("dev") + "/api/2.0/preview/scim/v2/Me", demo.token_for(AUDITOR, "dev"))
    assert headers["X-Databricks-Org-Id"] == "2718281828459045"


def test_write_methods_are_rejected_and_logged(fresh):
    token = fresh.token_for(AUDITOR, "prod")
    url = fresh.workspace_url("prod")
    fresh.clear_requests()
    status, headers, body = raw(url + "/api/2.1/clusters/list", token, method="POST", body=b"{}")
    assert status == 405 and body["error_code"] == "BAD_REQUEST" and "GET" in headers["Allow"]
    status, _, _ = raw(url + "/api/2.0/token-management/tokens/abc", token, method="DELETE")
    assert status == 405
    w = ws_client(fresh, "prod")
    with pytest.raises(NotFound, match="warehouse abc does not exist"):
        w.statement_execution.execute_statement(statement="SELECT 1", warehouse_id="abc")
    writes = [(r.method, r.path, r.status, r.statement) for r in fresh.requests if r.method != "GET"]
    assert writes == [
        ("POST", "/api/2.1/clusters/list", 405, None),
        ("DELETE", "/api/2.0/token-management/tokens/abc", 405, None),
        ("POST", "/api/2.0/sql/statements", 404, "SELECT 1"),
    ]


def test_request_log_records_calls(fresh):
    w = ws_client(fresh, "prod")
    fresh.clear_requests()
    list(w.jobs.list(limit=3))
    rec = fresh.requests[-1]
    assert (rec.method, rec.path, rec.status, rec.target, rec.principal) == ("GET", "/api/2.2/jobs/list", 200, "prod", AUDITOR)
    assert rec.query["limit"] == "3"
    raw(fresh.workspace_url("prod") + "/api/2.0/preview/scim/v2/Me", "dapi-bogus")
    assert (fresh.requests[-1].status, fresh.requests[-1].principal) == (401, None)


# --------------------------------------------------------------------------------------- faults


def test_429_with_retry_after_then_success(fresh):
    w = ws_client(fresh, "prod")
    fresh.add_fault("GET /api/2.0/token-management/*", status=429, retry_after=0, times=1)
    fresh.clear_requests()
    assert len(list(w.token_management.list())) == 10
    statuses = [r.status for r in fresh.requests if r.path == "/api/2.0/token-management/tokens"]
    assert statuses == [429, 200]


def test_fault_shapes_latency_and_rate_limit(fresh):
    url, token = fresh.workspace_url("prod"), fresh.token_for(AUDITOR, "prod")
    fresh.add_fault("GET /api/2.1/clusters/*", status=503, times=1, target="prod")
    status, headers, body = raw(url + "/api/2.1/clusters/list", token)
    assert (status, headers["Retry-After"], body["error_code"]) == (503, "0", "TEMPORARILY_UNAVAILABLE")
    assert "Unexpected error" not in body["message"]
    assert raw(url + "/api/2.1/clusters/list", token)[0] == 200  # times exhausted

    fresh.add_fault("GET /api/2.0/instance-pools/list", status=500, error_code="CUSTOM", message="boom", times=1)
    assert raw(url + "/api/2.0/instance-pools/list", token)[2] == {"error_code": "CUSTOM", "message": "boom", "details": []}

    fresh.add_fault("GET /api/2.0/repos", latency_ms=150, times=1)
    t0 = time.monotonic()
    assert raw(url + "/api/2.0/repos", token)[0] == 200
    assert time.monotonic() - t0 >= 0.14

    fresh.add_fault("GET /api/2.0/sql/warehouses", rate_limit_per_s=1)
    results = [raw(url + "/api/2.0/sql/warehouses", token) for _ in range(3)]
    assert results[0][0] == 200
    limited = [r for r in results if r[0] == 429]
    assert limited and limited[0][1]["Retry-After"] == "1"

    fresh.add_fault("GET /api/2.0/secrets/scopes/list", status=403, target="dev")  # another target only
    assert raw(url + "/api/2.0/secrets/scopes/list", token)[0] == 200
    fresh.clear_faults()
    assert raw(url + "/api/2.0/sql/warehouses", token)[0] == 200


def test_faults_declared_in_the_tenant():
    tenant = load_tenant(MINIMAL_TENANT)
    tenant["faults"] = [{"route": "GET /api/2.0/preview/scim/v2/Me", "status": 500, "times": 1}]
    with Emulator(load_tenant(dict(tenant))) as emu:
        url, token = emu.workspace_url("main"), emu.token_for("admin@example.com", "main")
        assert raw(url + "/api/2.0/preview/scim/v2/Me", token)[2]["error_code"] == "INTERNAL_ERROR"
        assert raw(url + "/api/2.0/preview/scim/v2/Me", token)[0] == 200


# ----------------------------------------------------------------------------- tenant handling


def test_tenant_validation_errors_name_the_key(tmp_path):
    text = DEMO_TENANT.read_text()
    bad_member = text.replace(
        "members: [carol.smith@corp.example.com, david.kim@corp.example.com]",
        "members: [carol.smith@corp.example.com, nobody@corp.example.com]",
    )
    p = tmp_path / "bad.yaml"
    p.write_text(bad_member)
    with pytest.raises(TenantError) as e:
        load_tenant(p)
    msg = str(e.value)
    assert "account.groups[2].members[1]" in msg and "nobody@corp.example.com" in msg and f"{p}:" in msg
    assert e.value.line == bad_member.splitlines().index(
        "      members: [carol.smith@corp.example.com, nobody@corp.example.com]"
    ) + 1

    p.write_text(text.replace('creation_time: "-87d"', 'creation_time: "-87 days ago"'))
    with pytest.raises(TenantError, match=r"account\.workspaces\[0\]\.tokens\[6\]\.creation_time: bad time"):
        load_tenant(p)

    base = {"version": 1, "account": {"users": [{"userName": "a@x.com"}], "workspaces": [{"name": "w"}]}}
    cases = [
        ({"groups": [{"displayName": "g", "members": ["zz"]}]}, r"account\.groups\[0\]\.members\[0\]: unknown"),
        ({"service_principals": [{"displayName": "a@x.com"}]}, r"ambiguous principal name 'a@x\.com'"),
        ({"workspaces": [{"name": "w", "tokens": [{"owner": "a@x.com", "creation_time": "now"}]}]}, r"tokens\[0\]\.expiry_time"),
        ({"workspaces": [{"name": "w", "metastore": "nope"}]}, r"account\.workspaces\[0\]\.metastore: unknown metastore"),
        ({"workspaces": [{"name": "w", "clusters": [{"cluster_name": "c", "data_security_mode": "OPEN"}]}]}, r"data_security_mode: 'OPEN'"),
        ({"groups": [{"displayName": "g", "grant_rules": [{"role": "roles/servicePrincipal.user", "principals": ["a@x.com"]}]}]},
         r"account\.groups\[0\]\.grant_rules\[0\]\.role: 'roles/servicePrincipal\.user' is not one of roles/group\.manager"),
        ({"groups": [{"displayName": "g", "grant_rules": [{"role": "roles/group.manager", "principals": ["zz"]}]}]},
         r"account\.groups\[0\]\.grant_rules\[0\]\.principals\[0\]: unknown"),
    ]
    for extra, pattern in cases:
        data = copy.deepcopy(base)
        data["account"].update(extra)
        if "groups" in extra:
            data["account"]["workspaces"] = [{"name": "w"}]
        with pytest.raises(TenantError, match=pattern):
            load_tenant(data)
    data = copy.deepcopy(base)
    data["credentials"] = [{"token": "t", "principal": "a@x.com", "workspace": "w"}]
    with pytest.raises(TenantError, match=r"credentials\[0\]\.principal: 'a@x\.com' is not a member"):
        load_tenant(data)


def test_relative_times_resolve_near_now():
    tenant = load_tenant(
        {
            "version": 1,
            "account": {
                "users": [{"userName": "a@x.com"}],
                "service_principals": [{"displayName": "sp", "secrets": [{"create_time": "-400d", "expire_time": "2030-01-02"}]}],
                "workspaces": [
                    {
                        "name": "w",
                        "assignments": [{"principal": "a@x.com", "permissions": ["ADMIN"]}],
                        "tokens": [
                            {"owner": "a@x.com", "creation_time": "now", "expiry_time": "+90d", "last_used_day": "-12h"},
                            {"owner": "a@x.com", "creation_time": "2024-05-01T12:00:00Z", "expiry_time": -1},
                        ],
                        "dashboards": [{"display_name": "d", "create_time": "-1d"}],
                    }
                ],
            },
        }
    )
    now = now_ms()
    t0, t1 = tenant["account"]["workspaces"][0]["tokens"]
    assert abs(t0["creation_time"] - now) < 60_000
    assert abs(t0["expiry_time"] - (now + 90 * DAY_MS)) < 60_000
    assert t0["last_used_day"] % DAY_MS == 0 and now - t0["last_used_day"] <= 1.5 * DAY_MS
    assert t1["creation_time"] == 1714564800000 and t1["expiry_time"] == -1
    secret = tenant["account"]["service_principals"][0]["secrets"][0]
    assert secret["expire_time"] == "2030-01-02T00:00:00Z" and secret["create_time"].endswith("Z")
    assert tenant["account"]["workspaces"][0]["dashboards"][0]["create_time"].endswith("Z")


def test_tenant_edits_are_served_on_the_next_request(fresh):
    w = ws_client(fresh, "prod")
    prod = ws_of(fresh.tenant, "prod")
    prod["conf"]["maxTokenLifetimeDays"] = "30"
    prod["tokens"].append({"owner": "emma.johnson@corp.example.com", "comment": "added", "creation_time": "-1d", "expiry_time": "+2d"})
    assert w.workspace_conf.get_status(keys="maxTokenLifetimeDays") == {"maxTokenLifetimeDays": "30"}
    added = [t for t in w.token_management.list() if t.comment == "added"]
    assert len(added) == 1 and added[0].expiry_time - added[0].creation_time == 3 * DAY_MS


def test_minimal_tenant_without_metastore():
    with Emulator(MINIMAL_TENANT) as emu:
        w = ws_client(emu, "main", "admin@example.com")
        with pytest.raises(NotFound) as e:
            w.metastores.current()
        assert e.value.error_code == "METASTORE_DOES_NOT_EXIST"
        assert [u.user_name for u in w.users.list()] == ["admin@example.com"]
        assert list(w.token_management.list()) == [] and list(w.clusters.list()) == []
        assert emu.workspaces == [{"name": "main", "id": ws_of(emu.tenant, "main")["id"], "url": emu.workspace_url("main")}]


def test_stop_frees_the_ports():
    emu = Emulator(MINIMAL_TENANT).start()
    ports = [int(emu.account_url.rsplit(":", 1)[1]), int(emu.workspace_url("main").rsplit(":", 1)[1])]
    w = ws_client(emu, "main", "admin@example.com")
    assert w.current_user.me().user_name == "admin@example.com"  # leaves a keep-alive connection open
    emu.stop()
    for port in ports:
        with socket.socket() as s:
            # Like any server (and the emulator itself), reuse the address past TIME_WAIT.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen()
    with pytest.raises(RuntimeError):
        emu.account_url


def test_a_client_that_resets_its_connection_leaves_no_traceback(capfd):
    """A collector that exits drops its keep-alive connections; the emulator must not print a
    traceback for each (the benchmarks' stderr was full of them)."""
    import struct
    import urllib.parse

    emu = Emulator(MINIMAL_TENANT)
    emu.start()
    try:
        url = urllib.parse.urlsplit(emu.workspaces[0]["url"])
        sock = socket.create_connection((url.hostname, url.port))
        sock.sendall(b"GET /api/2.0/clusters/li")  # half a request line, then a reset (RST, not FIN)
        time.sleep(0.1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        time.sleep(0.3)
    finally:
        emu.stop()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ConnectionResetError" not in err


def _raw_exchange(emu, data: bytes, *, wait_close: bool = False) -> bytes:
    """Send raw bytes to the emulator's workspace listener; what came back within a short while."""
    import urllib.parse

    url = urllib.parse.urlsplit(emu.workspaces[0]["url"])
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(data)
        got = b""
        sock.settimeout(5 if wait_close else 0.5)
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except socket.timeout:
            pass
    return got


def test_http_requests_are_parsed_as_http_server_would(fresh):
    """The emulator reads request lines and headers itself (http.server's parser is slow); it must
    still behave like an HTTP/1.1 server: names case-insensitive, keep-alive by default, the same
    limits and errors, and a complete, well-formed answer in one piece."""
    token = fresh.token_for(AUDITOR, "prod")
    me = (f"GET /api/2.0/preview/scim/v2/Me HTTP/1.1\r\nHost: x\r\nauthorization:  Bearer {token}\r\n"
          "X-Folded: a\r\n b\r\n\r\n").encode()
    two = _raw_exchange(fresh, me + me)  # keep-alive: both answered on one connection
    assert two.count(b"HTTP/1.1 200 OK\r\n") == 2, two[:300]
    head, _, rest = two.partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    body = rest[: int(headers["Content-Length"])]
    assert json.loads(body)["userName"] == AUDITOR
    assert headers["Content-Type"] == "application/json" and headers["Date"].endswith(" GMT")
    assert headers["X-Databricks-Org-Id"] == str(fresh.workspaces[0]["id"])

    closed = _raw_exchange(fresh, me.replace(b"Host: x", b"Connection: close") + me, wait_close=True)
    assert closed.count(b"HTTP/1.1 200") == 1  # answered, then closed: the second request is not read

    head_only = _raw_exchange(fresh, me.replace(b"GET", b"HEAD", 1))
    assert head_only.startswith(b"HTTP/1.1 ") and head_only.endswith(b"\r\n\r\n")  # no body

    cont = _raw_exchange(fresh, b"POST /api/2.0/clusters/list HTTP/1.1\r\nExpect: 100-continue\r\n"
                                b"Content-Length: 2\r\n\r\n{}")
    assert cont.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")

    assert _raw_exchange(fresh, b"GET /x\r\n\r\n", wait_close=True).startswith(b"HTTP/1.1 400 ")
    assert _raw_exchange(fresh, b"GET /x HTTP/2.0\r\n\r\n", wait_close=True).startswith(b"HTTP/1.1 505 ")
    assert _raw_exchange(fresh, b"GET /x HTTP/abc\r\n\r\n", wait_close=True).startswith(b"HTTP/1.1 400 ")
    assert _raw_exchange(fresh, b"GET /x HTTP/1.1\r\nno colon here\r\n\r\n", wait_close=True).startswith(b"HTTP/1.1 400 ")
    many = b"GET /x HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(101)) + b"\r\n"
    assert _raw_exchange(fresh, many, wait_close=True).startswith(b"HTTP/1.1 431 ")
    long_line = b"GET /x HTTP/1.1\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n"
    assert _raw_exchange(fresh, long_line, wait_close=True).startswith(b"HTTP/1.1 431 ")
    # the well-formed requests above were logged with their principal; the malformed ones never reached a route
    assert [r.principal for r in fresh.requests if r.path == "/api/2.0/preview/scim/v2/Me"] == [AUDITOR] * 4


def test_uc_list_pages_render_only_their_own_items(demo_tenant, monkeypatch):
    """A schema of 10,000 tables is listed 50 at a time; rendering every table for every page made
    the emulator, not the client, the bottleneck of the collection benchmark."""
    from pytest_dbsec.emulator import routes_uc

    tenant = copy.deepcopy(demo_tenant)
    catalog = tenant["account"]["metastores"][0]["catalogs"][0]
    schema = catalog["schemas"][0]
    schema["tables"] = [{"name": f"t{i:03}", "owner": schema.get("owner") or catalog["owner"],
                         "columns": [{"name": "id", "type_name": "LONG"}]} for i in range(120)]
    rendered = []
    real = routes_uc._table
    monkeypatch.setattr(routes_uc, "_table", lambda *a, **k: rendered.append(a[4]["name"]) or real(*a, **k))
    emu = Emulator(tenant).start()
    try:
        w = ws_client(emu, "prod")
        names = [t.name for t in w.tables.list(catalog_name=catalog["name"], schema_name=schema["name"], max_results=50)]
        paged = [r for r in emu.requests if r.path == "/api/2.1/unity-catalog/tables"]
    finally:
        emu.stop()
    assert names == [f"t{i:03}" for i in range(120)]
    assert len(paged) == 3  # 50 + 50 + 20
    assert sorted(rendered) == names  # each table rendered once, on its own page
