"""Wire-level constants: enum strings, setting field names, permission object types.

The SDK silently turns an unknown enum string into None (and drops unknown values from repeated enums),
so a typo in a tenant would make data vanish without a trace. The loader checks the values that the
security controls depend on against these sets and fails loudly instead.
"""

CLOUDS = {"aws", "azure", "gcp"}

WORKSPACE_STATUS = {"RUNNING", "PROVISIONING", "FAILED", "BANNED", "CANCELLING", "NOT_PROVISIONED"}
PRICING_TIERS = {"PREMIUM", "ENTERPRISE", "STANDARD", "COMMUNITY_EDITION", "DEDICATED", "UNKNOWN"}
WORKSPACE_PERMISSIONS = {"ADMIN", "USER"}

# Workspace fields that the account API returns when the tenant sets them.
WORKSPACE_WIRE_FIELDS = (
    "deployment_name",
    "workspace_status",
    "workspace_status_message",
    "pricing_tier",
    "aws_region",
    "location",
    "creation_time",
    "credentials_id",
    "storage_configuration_id",
    "network_id",
    "private_access_settings_id",
    "storage_customer_managed_key_id",
    "managed_services_customer_managed_key_id",
    "network_connectivity_config_id",
    "compute_mode",
    "custom_tags",
)


ACCOUNT_ROLES = {"account_admin", "marketplace.admin", "billing_admin"}
# roles an account rule set may grant on a group / a service principal (access-control rule-sets API)
GROUP_RULE_SET_ROLES = {"roles/group.manager"}
SP_RULE_SET_ROLES = {"roles/servicePrincipal.manager", "roles/servicePrincipal.user"}

IP_LIST_TYPES = {"ALLOW", "BLOCK"}

DATA_SECURITY_MODES = {
    "NONE",
    "SINGLE_USER",
    "USER_ISOLATION",
    "LEGACY_TABLE_ACL",
    "LEGACY_PASSTHROUGH",
    "LEGACY_SINGLE_USER",
    "LEGACY_SINGLE_USER_STANDARD",
    "DATA_SECURITY_MODE_AUTO",
    "DATA_SECURITY_MODE_STANDARD",
    "DATA_SECURITY_MODE_DEDICATED",
}
CLUSTER_SOURCES = {"UI", "API", "JOB", "PIPELINE", "SQL", "MODELS", "PIPELINE_MAINTENANCE", "SOME_OTHER"}

CATALOG_TYPES = {
    "MANAGED_CATALOG",
    "SYSTEM_CATALOG",
    "DELTASHARING_CATALOG",
    "FOREIGN_CATALOG",
    "INTERNAL_CATALOG",
    "MANAGED_ONLINE_CATALOG",
}
CATALOG_ISOLATION = {"OPEN", "ISOLATED"}
# External locations and storage credentials use a different enum from catalogs.
SECURABLE_ISOLATION = {"ISOLATION_MODE_OPEN", "ISOLATION_MODE_ISOLATED"}
TABLE_TYPES = {
    "MANAGED",
    "EXTERNAL",
    "VIEW",
    "MATERIALIZED_VIEW",
    "STREAMING_TABLE",
    "FOREIGN",
    "METRIC_VIEW",
    "MANAGED_SHALLOW_CLONE",
    "EXTERNAL_SHALLOW_CLONE",
}
DELTA_SHARING_SCOPES = {"INTERNAL", "INTERNAL_AND_EXTERNAL"}

PRIVILEGES = set(
    """ACCESS ALL_PRIVILEGES APPLY_TAG BROWSE CREATE CREATE_CATALOG CREATE_CLEAN_ROOM CREATE_CONNECTION
    CREATE_EXTERNAL_LOCATION CREATE_EXTERNAL_TABLE CREATE_EXTERNAL_VOLUME CREATE_FEATURE CREATE_FOREIGN_CATALOG
    CREATE_FOREIGN_SECURABLE CREATE_FUNCTION CREATE_MANAGED_STORAGE CREATE_MATERIALIZED_VIEW CREATE_MODEL
    CREATE_PROVIDER CREATE_RECIPIENT CREATE_SCHEMA CREATE_SERVICE_CREDENTIAL CREATE_SHARE
    CREATE_STORAGE_CREDENTIAL CREATE_TABLE CREATE_VIEW CREATE_VOLUME EXECUTE EXECUTE_CLEAN_ROOM_TASK
    EXTERNAL_USE_LOCATION EXTERNAL_USE_SCHEMA MANAGE MANAGE_ALLOWLIST MODIFY MODIFY_CLEAN_ROOM READ_FEATURE
    READ_FILES READ_METADATA READ_PRIVATE_FILES READ_VOLUME REFRESH SELECT SET_SHARE_PERMISSION USAGE
    USE_CATALOG USE_CONNECTION USE_MARKETPLACE_ASSETS USE_PROVIDER USE_RECIPIENT USE_SCHEMA USE_SHARE
    WRITE_FILES WRITE_PRIVATE_FILES WRITE_VOLUME""".split()
)

SECRET_ACL_PERMISSIONS = {"READ", "WRITE", "MANAGE"}
SECRET_BACKENDS = {"DATABRICKS", "AZURE_KEYVAULT"}

# Generic object permission levels (iam.PermissionLevel).
PERMISSION_LEVELS = {
    "CAN_ATTACH_TO",
    "CAN_BIND",
    "CAN_CREATE",
    "CAN_EDIT",
    "CAN_EDIT_METADATA",
    "CAN_MANAGE",
    "CAN_MANAGE_PRODUCTION_VERSIONS",
    "CAN_MANAGE_RUN",
    "CAN_MANAGE_STAGING_VERSIONS",
    "CAN_MONITOR",
    "CAN_MONITOR_ONLY",
    "CAN_QUERY",
    "CAN_READ",
    "CAN_RESTART",
    "CAN_RUN",
    "CAN_USE",
    "CAN_VIEW",
    "CAN_VIEW_METADATA",
    "IS_OWNER",
}

# Settings API: setting type (path segment) -> the response field that holds the value.
WORKSPACE_SETTING_FIELDS = {
    "restrict_workspace_admins": "restrict_workspace_admins",
    "shield_csp_enablement_ws_db": "compliance_security_profile_workspace",
    "shield_esm_enablement_ws_db": "enhanced_security_monitoring_workspace",
    "automatic_cluster_update": "automatic_cluster_update_workspace",
    "default_namespace_ws": "namespace",
    "default_warehouse_id": "string_val",
    "disable_legacy_access": "disable_legacy_access",
    "disable_legacy_dbfs": "disable_legacy_dbfs",
    "enable-export-notebook": "boolean_val",
    "enable-results-downloading": "boolean_val",
    "enable-notebook-table-clipboard": "boolean_val",
    "sql_results_download": "boolean_val",
    "dashboard_email_subscriptions": "boolean_val",
    "llm_proxy_partner_powered": "boolean_val",
    "aibi_dash_embed_ws_acc_policy": "aibi_dashboard_embedding_access_policy",
    "aibi_dash_embed_ws_apprvd_domains": "aibi_dashboard_embedding_approved_domains",
}
ACCOUNT_SETTING_FIELDS = {
    "dcp_acct_enable": "personal_compute",
    "shield_csp_enablement_ac": "csp_enablement_account",
    "shield_esm_enablement_ac": "esm_enablement_account",
    "acct_ip_acl_enable": "acct_ip_acl_enable",
    "disable_legacy_features": "disable_legacy_features",
    "llm_proxy_partner_powered": "boolean_val",
    "llm_proxy_partner_powered_enforce": "boolean_val",
}

# Permissions API request object types -> (object_type on the wire, owner level given to the creator,
# levels offered by /permissionLevels).
PERMISSION_TYPES = {
    "clusters": ("cluster", "CAN_MANAGE", ["CAN_ATTACH_TO", "CAN_RESTART", "CAN_MANAGE"]),
    "cluster-policies": ("cluster-policy", None, ["CAN_USE"]),
    "instance-pools": ("instance-pool", "CAN_MANAGE", ["CAN_ATTACH_TO", "CAN_MANAGE"]),
    "jobs": ("job", "IS_OWNER", ["CAN_VIEW", "CAN_MANAGE_RUN", "IS_OWNER", "CAN_MANAGE"]),
    "pipelines": ("pipelines", "IS_OWNER", ["CAN_VIEW", "CAN_RUN", "CAN_MANAGE", "IS_OWNER"]),
    "warehouses": ("warehouses", "IS_OWNER", ["CAN_VIEW", "CAN_MONITOR", "CAN_USE", "CAN_MANAGE", "IS_OWNER"]),
    "serving-endpoints": ("serving-endpoint", "CAN_MANAGE", ["CAN_VIEW", "CAN_QUERY", "CAN_MANAGE"]),
    "dashboards": ("dashboard", "CAN_MANAGE", ["CAN_READ", "CAN_RUN", "CAN_EDIT", "CAN_MANAGE"]),
    "repos": ("repo", "CAN_MANAGE", ["CAN_READ", "CAN_RUN", "CAN_EDIT", "CAN_MANAGE"]),
    "notebooks": ("notebook", "CAN_MANAGE", ["CAN_READ", "CAN_RUN", "CAN_EDIT", "CAN_MANAGE"]),
    "directories": ("directory", "CAN_MANAGE", ["CAN_READ", "CAN_RUN", "CAN_EDIT", "CAN_MANAGE"]),
    "files": ("file", "CAN_MANAGE", ["CAN_READ", "CAN_RUN", "CAN_EDIT", "CAN_MANAGE"]),
    "experiments": ("mlflowExperiment", "CAN_MANAGE", ["CAN_READ", "CAN_EDIT", "CAN_MANAGE"]),
    "registered-models": (
        "registered-model",
        "CAN_MANAGE",
        ["CAN_READ", "CAN_EDIT", "CAN_MANAGE_STAGING_VERSIONS", "CAN_MANAGE_PRODUCTION_VERSIONS", "CAN_MANAGE"],
    ),
    "authorization": ("authorization", None, ["CAN_USE"]),
}

DEFAULT_SPARK_VERSIONS = [
    {"key": "16.4.x-scala2.12", "name": "16.4 LTS (includes Apache Spark 3.5.2, Scala 2.12)"},
    {"key": "15.4.x-scala2.12", "name": "15.4 LTS (includes Apache Spark 3.5.0, Scala 2.12)"},
    {"key": "15.4.x-photon-scala2.12", "name": "15.4 LTS Photon (includes Apache Spark 3.5.0, Scala 2.12)"},
    {"key": "14.3.x-scala2.12", "name": "14.3 LTS (includes Apache Spark 3.5.0, Scala 2.12)"},
    {"key": "13.3.x-scala2.12", "name": "13.3 LTS (includes Apache Spark 3.4.1, Scala 2.12)"},
    {"key": "15.4.x-cpu-ml-scala2.12", "name": "15.4 LTS ML (includes Apache Spark 3.5.0, Scala 2.12)"},
]
