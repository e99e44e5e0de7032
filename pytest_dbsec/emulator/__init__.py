"""Databricks REST emulator: a separate world reached only over HTTP.

It serves a declared tenant (an account, its identities, workspaces and Unity Catalog data) through the
same paths, query names and JSON shapes as the Databricks REST APIs, so the real ``databricks-sdk``
clients work against it unchanged. Nothing here imports from the rest of ``pytest_dbsec``.

    from pytest_dbsec.emulator import Emulator, DEMO_TENANT
    with Emulator(DEMO_TENANT) as emu:
        url, token = emu.workspace_url("prod"), emu.token_for("dbsec-auditor", "prod")

The tenant format is described in ``tenant.py`` and ``tenants/README.md``.
"""

from .server import Emulator, Fault, RequestRecord, serve
from .tenant import ACCOUNT_TENANT, DEMO_TENANT, MINIMAL_TENANT, Tenant, TenantError, load_tenant, normalize

__all__ = [
    "ACCOUNT_TENANT",
    "DEMO_TENANT",
    "MINIMAL_TENANT",
    "Emulator",
    "Fault",
    "RequestRecord",
    "Tenant",
    "TenantError",
    "load_tenant",
    "normalize",
    "serve",
]
