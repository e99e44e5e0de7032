"""The emulator's Statement Execution API, driven by the real SDK over HTTP (tests/tenants/audit_base.yaml)."""

from __future__ import annotations

import json

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import BadRequest, NotFound, PermissionDenied
from databricks.sdk.service.sql import (
    Disposition,
    ExecuteStatementRequestOnWaitTimeout,
    Format,
    StatementParameterListItem,
    StatementState,
)

ALICE = "alice@corp.example.com"
ETL_SP_APP_ID = "7f1c2b9e-0000-4000-8000-00000000a001"


@pytest.fixture
def emu(emulator, tenant):
    return emulator(tenant("audit_base"))


def client(emu, who="auditor@corp.example.com", ws="ws1") -> WorkspaceClient:
    return WorkspaceClient(host=emu.workspace_url(ws), token=emu.token_for(who, ws))


def run(w, statement, *, params=None, warehouse="wh1", **kw):
    items = [StatementParameterListItem(name=k, value=v, type=t) for k, (v, t) in (params or {}).items()]
    return w.statement_execution.execute_statement(statement=statement, warehouse_id=warehouse,
                                                   parameters=items or None, **kw)


def test_struct_and_map_access_with_parameters_over_the_region(emu):
    r = run(client(emu), "SELECT workspace_id, action_name, request_params['securable_full_name'] AS target, "
            "response.status_code, user_identity.email FROM system.access.audit "
            "WHERE user_identity.email = :who ORDER BY event_time DESC", params={"who": (ALICE, "STRING")})
    assert r.status.state == StatementState.SUCCEEDED
    cols = [(c.name, c.type_name.value) for c in r.manifest.schema.columns]
    assert cols == [("workspace_id", "STRING"), ("action_name", "STRING"), ("target", "STRING"),
                    ("status_code", "INT"), ("email", "STRING")]
    # ws1 and ws2 share the us-east-1 metastore; the account-level event (workspace 0) is in every region;
    # the ws-west event is in another region's table
    assert [row[:4] for row in r.result.data_array] == [
        ["1111", "runCommand", None, "200"],
        ["2222", "updatePermissions", "main.sales.orders", "200"],
        ["1111", "getTable", None, "200"],
        ["1111", "generateDbToken", None, "200"],
        ["0", "addPrincipalToGroup", None, "403"],
        ["1111", "putSecret", None, "200"],
        ["1111", "delete", None, "200"],
    ]
    assert all(isinstance(c, str) or c is None for row in r.result.data_array for c in row)


def test_service_principals_are_named_by_application_id_and_timestamps_compare(emu):
    r = run(client(emu), "SELECT action_name, event_time FROM system.access.audit WHERE user_identity.email = :sp "
            "AND event_time >= :since", params={"sp": (ETL_SP_APP_ID, "STRING"), "since": ("2000-01-01T00:00:00Z", "TIMESTAMP")})
    assert [row[0] for row in r.result.data_array] == ["create"]
    assert r.manifest.schema.columns[1].type_name.value == "TIMESTAMP"
    assert r.result.data_array[0][1].endswith("Z")
    r = run(client(emu), "SELECT count(*) AS n FROM system.access.audit WHERE user_identity.email = :who "
            "AND event_time >= current_timestamp() - INTERVAL 30 DAYS", params={"who": (ALICE, "STRING")})
    assert r.result.data_array == [["6"]] and r.manifest.schema.columns[0].type_name.value == "LONG"


@pytest.mark.parametrize("hostile", ["x' OR '1'='1", "'; DROP TABLE audit; --", 'a"b', "o'hara@corp.example.com"])
def test_parameter_values_are_bound_never_spliced(emu, hostile):
    emu.tenant["account"]["audit_log"].append(
        {"event_time": "-1h", "workspace": "ws1", "principal": "o'hara@corp.example.com", "service_name": "jobs",
         "action_name": "create"})
    r = run(client(emu), "SELECT action_name FROM system.access.audit WHERE user_identity.email = :who",
            params={"who": (hostile, "STRING")})
    assert r.status.state == StatementState.SUCCEEDED
    expected = [["create"]] if hostile == "o'hara@corp.example.com" else []
    assert (r.result.data_array if r.result else []) == expected
    assert r.manifest.total_row_count == len(expected)


def test_polling_through_pending_and_running(emu):
    emu.tenant["sql"] = {"pending_polls": 2, "running_polls": 1}
    w = client(emu)
    r = run(w, "SELECT action_name FROM system.access.audit", wait_timeout="5s")
    assert r.status.state == StatementState.PENDING and r.result is None
    states = [w.statement_execution.get_statement(r.statement_id).status.state for _ in range(4)]
    assert states == [StatementState.PENDING, StatementState.PENDING, StatementState.RUNNING, StatementState.SUCCEEDED]
    done = w.statement_execution.get_statement(r.statement_id)
    assert done.manifest.total_row_count == 9  # 10 events, one in another region


def test_wait_timeout_cancel_and_explicit_cancel(emu):
    emu.tenant["sql"] = {"running_polls": 3}
    w = client(emu)
    r = run(w, "SELECT 1 AS one FROM system.access.audit", wait_timeout="5s",
            on_wait_timeout=ExecuteStatementRequestOnWaitTimeout.CANCEL)
    assert r.status.state == StatementState.CANCELED
    r = run(w, "SELECT 1 AS one FROM system.access.audit", wait_timeout="0s")
    assert r.status.state == StatementState.RUNNING
    w.statement_execution.cancel_execution(r.statement_id)
    assert w.statement_execution.get_statement(r.statement_id).status.state == StatementState.CANCELED
    # another principal cannot see (or cancel) the statement
    with pytest.raises(NotFound):
        client(emu, "dave@corp.example.com").statement_execution.get_statement(r.statement_id)


def test_chunked_results_and_row_limit(emu):
    emu.tenant["sql"] = {"chunk_rows": 3}
    w = client(emu)
    r = run(w, "SELECT event_id FROM system.access.audit ORDER BY event_time DESC")
    m = r.manifest
    emu.tenant["account"]["audit_log"].append(
        {"event_time": "-1h", "workspace": "ws1", "principal": "bob@corp.example.com", "service_name": "jobs",
         "action_name": "create"})
    r = run(w, "SELECT event_id FROM system.access.audit ORDER BY event_time DESC")
    m = r.manifest
    assert (m.total_row_count, m.total_chunk_count) == (10, 4)
    assert [(c.chunk_index, c.row_offset, c.row_count) for c in m.chunks] == [(0, 0, 3), (1, 3, 3), (2, 6, 3), (3, 9, 1)]
    rows = list(r.result.data_array)
    nxt = r.result.next_chunk_index
    assert r.result.next_chunk_internal_link == f"/api/2.0/sql/statements/{r.statement_id}/result/chunks/1"
    while nxt is not None:
        chunk = w.statement_execution.get_statement_result_chunk_n(r.statement_id, nxt)
        rows += chunk.data_array
        nxt = chunk.next_chunk_index
    assert len(rows) == 10 and len({row[0] for row in rows}) == 10
    limited = run(w, "SELECT event_id FROM system.access.audit", row_limit=4)
    assert limited.manifest.truncated is True and limited.manifest.total_row_count == 4


def test_warehouse_errors_are_http_errors(emu):
    with pytest.raises(NotFound, match="warehouse nope does not exist"):
        run(client(emu), "SELECT 1 AS x FROM system.access.audit", warehouse="nope")
    with pytest.raises(PermissionDenied, match="CAN_USE"):
        run(client(emu, "bob@corp.example.com"), "SELECT 1 AS x FROM system.access.audit")
    with pytest.raises(BadRequest, match="wait_timeout"):
        run(client(emu), "SELECT 1 AS x FROM system.access.audit", wait_timeout="3s")
    with pytest.raises(BadRequest, match="INLINE disposition supports only the JSON_ARRAY"):
        run(client(emu), "SELECT 1 AS x FROM system.access.audit", disposition=Disposition.INLINE,
            format=Format.ARROW_STREAM)
    with pytest.raises(BadRequest, match="EXTERNAL_LINKS is not emulated"):
        run(client(emu), "SELECT 1 AS x FROM system.access.audit", disposition=Disposition.EXTERNAL_LINKS)


@pytest.mark.parametrize("who,code", [
    ("carol@corp.example.com", "[INSUFFICIENT_PERMISSIONS]"),  # CAN_USE on the warehouse, no SELECT on system.access
    ("dave@corp.example.com", None),  # both, through groups
])
def test_reading_the_system_table_needs_grants(emu, who, code):
    r = run(client(emu, who), "SELECT count(*) AS n FROM system.access.audit")
    if code is None:
        assert r.status.state == StatementState.SUCCEEDED and r.result.data_array == [["9"]]
    else:
        assert r.status.state == StatementState.FAILED
        assert r.status.error.error_code.value == "BAD_REQUEST" and r.status.error.message.startswith(code)
        assert "SELECT" in r.status.error.message and "system.access" in r.status.error.message


def test_system_schema_not_enabled_is_table_not_found(emu):
    r = run(client(emu, ws="ws-west"), "SELECT count(*) AS n FROM system.access.audit", warehouse="whw")
    assert r.status.state == StatementState.FAILED
    assert r.status.error.message.startswith("[TABLE_OR_VIEW_NOT_FOUND]") and "not enabled" in r.status.error.message


@pytest.mark.parametrize("statement,prefix,says", [
    ("DELETE FROM system.access.audit", "[UNSUPPORTED_SQL]", "only read statements"),
    ("SELECT 1 AS x FROM system.access.audit; DROP TABLE system.access.audit", "[PARSE_SYNTAX_ERROR]", "one statement"),
    ("SELECT count(*) / 2 AS half FROM system.access.audit", "[UNSUPPORTED_SQL]", "'/' operator"),
    ("SELECT explode(map_keys(request_params)) FROM system.access.audit", "[UNRESOLVED_ROUTINE]", "explode"),
    ("SELECT * FROM system.access.nope", "[TABLE_OR_VIEW_NOT_FOUND]", "`system`.`access`.`nope`"),
    ("SELECT user_identity.nickname FROM system.access.audit", "[FIELD_NOT_FOUND]", "nickname"),
    ("SELECT request_params[action_name] FROM system.access.audit", "[UNSUPPORTED_SQL]", "string literal key"),
    ("SELECT action_name FROM system.access.audit WHERE user_identity.email = :who", "[UNBOUND_SQL_PARAMETER]", "who"),
    ("SELECT event_time FROM system.access.audit WHERE event_time > current_timestamp() - INTERVAL '1' MONTH",
     "[UNSUPPORTED_SQL]", "INTERVAL"),
    ("SELECT nosuch FROM system.access.audit", "[UNRESOLVED_COLUMN]", "nosuch"),
])
def test_unsupported_or_wrong_sql_fails_loudly(emu, statement, prefix, says):
    r = run(client(emu), statement)
    assert r.status.state == StatementState.FAILED, r
    assert r.status.error.message.startswith(prefix) and says in r.status.error.message
    assert r.manifest is None and r.result is None


def test_like_is_case_sensitive_and_double_quotes_are_strings(emu):
    w = client(emu)
    r = run(w, "SELECT count(*) AS n FROM system.access.audit WHERE action_name LIKE 'RUNCOMMAND'")
    assert r.result.data_array == [["0"]]
    r = run(w, 'SELECT count(*) AS n FROM system.access.audit WHERE action_name = "runCommand"')
    assert r.result.data_array == [["1"]]


def test_structs_come_back_as_json_text(emu):
    r = run(client(emu), "SELECT user_identity, request_params FROM system.access.audit WHERE action_name = 'create' "
            "AND service_name = 'jobs'")
    ident, params = r.result.data_array[0]
    assert json.loads(ident) == {"email": ETL_SP_APP_ID, "subject_name": None}
    assert json.loads(params) == {"name": "nightly"}
    assert [c.type_name.value for c in r.manifest.schema.columns] == ["STRUCT", "MAP"]


def test_request_log_records_the_statement_text(emu):
    run(client(emu), "SELECT 1 AS x FROM system.access.audit")
    posts = [(r.path, r.statement) for r in emu.requests if r.method == "POST"]
    assert posts == [("/api/2.0/sql/statements", "SELECT 1 AS x FROM system.access.audit")]


def test_system_schemas_api_does_not_leak_emulator_grants(emu):
    w = client(emu)
    mid = w.metastores.current().metastore_id
    schemas = [s.as_dict() for s in w.system_schemas.list(mid)]
    assert schemas and all(set(s) <= {"schema", "state"} for s in schemas)


def test_read_only_proof_accepts_queries_and_own_cancels_only(emu):
    from dbsec_helpers import assert_read_only

    emu.tenant["sql"] = {"running_polls": 5}
    w = client(emu)
    r = run(w, "WITH x AS (SELECT action_name FROM system.access.audit) SELECT count(*) AS n FROM x", wait_timeout="0s")
    w.statement_execution.cancel_execution(r.statement_id)
    assert_read_only(emu)
    # a statement that is not a query is caught, even though the emulator refused to run it
    run(w, "DELETE FROM system.access.audit")
    with pytest.raises(AssertionError, match="not one query"):
        assert_read_only(emu)
    emu.clear_requests()
    # cancelling someone else's statement is not ours to do
    with pytest.raises(NotFound):
        client(emu, "dave@corp.example.com").statement_execution.cancel_execution(r.statement_id)
    with pytest.raises(AssertionError, match="changed something"):
        assert_read_only(emu)


def test_timestamp_literals_compare_as_timestamps(emu):
    # a literal with a space instead of 'T' would compare wrongly as text; the engine canonicalises it
    w = client(emu)
    r = run(w, "SELECT count(*) AS n FROM system.access.audit WHERE event_time >= '2000-01-01 00:00:00'")
    assert r.result.data_array == [["9"]]
    r = run(w, "SELECT count(*) AS n FROM system.access.audit WHERE event_time < '2000-01-01 00:00'")
    assert r.result.data_array == [["0"]]
