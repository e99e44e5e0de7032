"""The audit log (``system.access.audit``) read through a SQL warehouse.

``system.access.audit`` holds the audit events of every workspace of the account in the region of the
warehouse's metastore, plus account-level events (``workspace_id`` ``"0"``). So one warehouse answers for
all workspaces of its region; the queries here do not filter on ``workspace_id`` and every record keeps it.
The log names a user by userName and a service principal by application id (``user_identity.email``).

Two readers:

* :func:`principal_actions` for ``dbsec access --sql-warehouse-id``: one principal's recent actions with
  lasting side effects (``SIDE_EFFECT_ACTIONS``), newest first, at most ``ACTION_ROW_CAP`` rows;
* the ``audit_activity`` data section for IAM-06/IAM-07 (``--dbsec-warehouse-id``): the last event of
  every identity, and the events of the baseline's break-glass principals, over ``AUDIT_ACTIVITY_DAYS``.
"""

from __future__ import annotations

import datetime as dt
import re

from .. import connect
from . import section
from .sql import Param, StatementFailed, run_query

# Actions with lasting side effects (a change that outlives the request), by what they change. Reads
# (getTable, getSecret, list*), logins and token logins are left out: they are activity, not changes.
SIDE_EFFECT_ACTIONS = (
    # permissions, ACLs and grants
    "updatePermissions", "updateSharePermissions", "changeClusterAcl", "changeClusterPolicyAcl",
    "changeJobAcl", "changePipelineAcls", "changeWarehouseAcls", "changeDbTokenAcl", "changePasswordAcl",
    "changeDatabricksSqlAcl", "changeDatabricksWorkspaceAcl", "changeServicePrincipalAcls",
    "changeWorkspaceAcl", "changeInstancePoolAcl", "changeRegisteredModelAcl", "changeExperimentAcl",
    "setPermissions", "modifyPermissions", "putAcl", "deleteAcl",
    # admins, users, groups
    "setAdmin", "removeAdmin", "addPrincipalToGroup", "removePrincipalFromGroup", "createGroup", "removeGroup",
    "updateGroup", "add", "updateUser", "deactivateUser", "addPrincipalsToGroup", "removePrincipalsFromGroup",
    # credentials
    "generateDbToken", "revokeDbToken", "createOAuthSecret", "deleteOAuthSecret",
    # secrets
    "putSecret", "deleteSecret", "createScope", "deleteScope",
    # objects created, changed, deleted
    "create", "delete", "edit", "update", "reset", "permanentDelete", "restart", "resize",
    "createTable", "deleteTable", "createCatalog", "deleteCatalog", "updateCatalog", "createSchema",
    "deleteSchema", "createExternalLocation", "deleteExternalLocation", "createStorageCredential",
    "deleteStorageCredential", "createShare", "deleteShare", "createRecipient", "deleteRecipient",
    "workspaceConfEdit", "setSetting", "deleteSetting", "updateMetastore", "updateMetastoreAssignment",
    # code and jobs that run
    "runCommand", "runNow", "submitRun", "repairRun",
)
ACTION_ROW_CAP = 1000  # newest first; a larger history is cut and the answer says so
AUDIT_ACTIVITY_DAYS = 365  # the table keeps a year; covers iam.dormant_days up to 365 and the break-glass history

# request_params keys whose values may hold secrets or code: the summary names the key, never the value
_OMIT_KEY = re.compile(r"(secret|password|passwd|token|credential|value|command|query|statement|sql|"
                       r"definition|content|script|private|cert)", re.I)
_SUMMARY_VALUE_MAX = 120


def request_summary(params: dict | None) -> str:
    """``k=v, k=v`` with sensitive keys as ``k=<omitted>`` and every value redacted and shortened."""
    parts = []
    for k in sorted(params or {}):
        v = params[k]
        if _OMIT_KEY.search(k):
            parts.append(f"{k}=<omitted>")
            continue
        text = connect.redact("" if v is None else str(v))
        if len(text) > _SUMMARY_VALUE_MAX:
            text = text[:_SUMMARY_VALUE_MAX] + "…"
        parts.append(f"{k}={text}")
    return ", ".join(parts)


def _since(days: int, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return (now - dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _in_list(values) -> str:
    # constants of this module, never user input
    return ", ".join("'" + v + "'" for v in values)


PRINCIPAL_ACTIONS_SQL = (
    "SELECT event_time, workspace_id, service_name, action_name, request_params, response.status_code, "
    "response.error_message, source_ip_address, user_identity.email "
    "FROM system.access.audit "
    "WHERE event_time >= :since AND (lower(user_identity.email) = lower(:who) OR user_identity.email = :app_id) "
    f"AND action_name IN ({_in_list(SIDE_EFFECT_ACTIONS)}) "
    "ORDER BY event_time DESC, event_id"
)


def principal_actions(w, warehouse_id: str, *, name: str, application_id: str | None, days: int,
                      workspace_names: dict[str, str] | None = None) -> tuple[list[dict], bool]:
    """One principal's actions with lasting side effects over ``days``, newest first. Returns (records,
    truncated). ``name`` is a userName (matched case-insensitively), ``application_id`` an SP's."""
    res = run_query(w, warehouse_id, PRINCIPAL_ACTIONS_SQL,
                    {"since": Param(_since(days), "TIMESTAMP"), "who": name, "app_id": application_id or name},
                    row_limit=ACTION_ROW_CAP)
    names = workspace_names or {}
    out = []
    for r in res.rows:
        ws_id = str(r["workspace_id"])
        out.append({
            "event_time": r["event_time"],
            "workspace_id": ws_id,
            "workspace_name": "account" if ws_id == "0" else names.get(ws_id),
            "service_name": r["service_name"],
            "action_name": r["action_name"],
            "request_params": request_summary(r["request_params"]),
            "status_code": r["status_code"],
            "error_message": connect.redact(r["error_message"]) if r["error_message"] else None,
            "source_ip_address": r["source_ip_address"],
        })
    return out, res.truncated


# -- the audit_activity section (IAM-06, IAM-07) ---------------------------------------------------

LAST_ACTIVITY_SQL = (
    "SELECT user_identity.email AS identity, max(event_time) AS last_event, count(*) AS events "
    "FROM system.access.audit WHERE event_time >= :since GROUP BY user_identity.email"
)
PRINCIPAL_EVENTS_CAP = 1000


def _principal_events_sql(n: int) -> str:
    markers = ", ".join(f"lower(:p{i})" for i in range(n))
    return ("SELECT event_time, workspace_id, service_name, action_name, response.status_code, source_ip_address, "
            "user_identity.email AS identity FROM system.access.audit "
            f"WHERE event_time >= :since AND lower(user_identity.email) IN ({markers}) "
            "ORDER BY event_time DESC, event_id")


def _audit_names(names, identities: dict) -> dict[str, str]:
    """Baseline name -> the name the audit log uses (userName; an SP's applicationId, also when the
    baseline gives its display name)."""
    sps = identities.get("service_principals") or []
    out = {}
    for n in names:
        sp = next((s for s in sps if n in (s.get("display_name"), s.get("displayName"))), None)
        out[n] = (sp.get("application_id") or sp.get("applicationId")) if sp else n
    return out


class AuditRegionMismatch(StatementFailed):
    """The warehouse's system.access.audit does not hold this workspace's events."""


@section("audit_activity", "workspace", needs=("identities",),
         title="last audit-log activity per identity and the break-glass principals' events (system.access.audit "
               "via --dbsec-warehouse-id)")
def audit_activity(w, ctx):
    opts = ctx.options
    warehouse = opts.get("warehouse_id")
    if not warehouse:
        # nothing to read: the controls say the audit log was not evaluated
        return {"configured": False}
    owner = opts.get("warehouse_workspace")
    wc = ctx.workspace_client(owner) if owner else w
    if wc is not w:
        # system.access.audit is regional: a warehouse of another region's metastore does not see these events
        here, there = w.metastores.summary(), wc.metastores.summary()
        if (here.region, here.cloud) != (there.region, there.cloud):
            raise AuditRegionMismatch(
                f"SQL warehouse {warehouse} of workspace {owner} reads the audit log of region {there.region}; "
                f"this workspace's metastore is in {here.region}: its events are not in that table")
    since = _since(AUDIT_ACTIVITY_DAYS)
    last = run_query(wc, warehouse, LAST_ACTIVITY_SQL, {"since": Param(since, "TIMESTAMP")})
    names = _audit_names(opts.get("audit_principals") or (), ctx.data("identities"))
    events, truncated = [], False
    if names:
        wanted = sorted(set(names.values()))
        params = {"since": Param(since, "TIMESTAMP"), **{f"p{i}": n for i, n in enumerate(wanted)}}
        res = run_query(wc, warehouse, _principal_events_sql(len(wanted)), params, row_limit=PRINCIPAL_EVENTS_CAP)
        events, truncated = res.rows, res.truncated
    return {
        "configured": True,
        "warehouse_id": warehouse,
        "warehouse_workspace": owner,
        "days": AUDIT_ACTIVITY_DAYS,
        "since": since,
        "last_activity": {r["identity"]: {"last_event": r["last_event"], "events": r["events"]}
                          for r in last.rows if r["identity"]},
        "principals": names,  # baseline name -> audit-log name whose events are below
        "principal_events": events,
        "principal_events_truncated": truncated,
    }
