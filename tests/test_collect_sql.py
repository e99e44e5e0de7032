"""The generic statement runner (collect/sql.py) against the emulator, through the real SDK."""

from __future__ import annotations

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import PermissionDenied

from pytest_dbsec.collect import describe_failure
from pytest_dbsec.collect.sql import Param, StatementFailed, run_query
from pytest_dbsec.connect import CallLog, observe_calls

ALICE = "alice@corp.example.com"


@pytest.fixture
def emu(emulator, tenant):
    return emulator(tenant("audit_base"))


def client(emu, who="auditor@corp.example.com", ws="ws1") -> WorkspaceClient:
    w = WorkspaceClient(host=emu.workspace_url(ws), token=emu.token_for(who, ws))
    assert observe_calls(w)
    return w


Q = ("SELECT event_time, workspace_id, action_name, response.status_code, request_params, user_identity.email "
     "FROM system.access.audit WHERE user_identity.email = :who ORDER BY event_time DESC")


def test_polls_reads_every_chunk_and_maps_types(emu):
    emu.tenant["sql"] = {"pending_polls": 2, "running_polls": 2, "chunk_rows": 2}
    slept = []
    res = run_query(client(emu), "wh1", Q, {"who": ALICE}, sleep=slept.append)
    assert len(slept) == 5 and slept == sorted(slept)  # 2 PENDING + 2 RUNNING polls, then SUCCEEDED; backoff grows
    assert [r["action_name"] for r in res.rows] == ["runCommand", "updatePermissions", "getTable", "generateDbToken",
                                                    "addPrincipalToGroup", "putSecret", "delete"]
    first = res.rows[0]
    assert first["status_code"] == 200 and isinstance(first["status_code"], int)
    assert first["request_params"]["notebookId"] == "42"  # a MAP becomes a dict
    assert first["workspace_id"] == "1111" and first["event_time"].endswith("Z")
    assert res.truncated is False
    chunk_calls = [r for r in emu.requests if "/result/chunks/" in r.path]
    assert len(chunk_calls) == 3  # 7 rows in chunks of 2: chunk 0 inline, 1..3 fetched


@pytest.mark.parametrize("hostile", ["' OR 1=1 --", "x'); DROP TABLE audit; --", "alice@corp.example.com' --"])
def test_hostile_values_stay_values(emu, hostile):
    assert run_query(client(emu), "wh1", Q, {"who": hostile}).rows == []


def test_marker_names_must_be_identifiers(emu):
    with pytest.raises(ValueError, match="identifiers"):
        run_query(client(emu), "wh1", Q, {"who'; DROP": ALICE})
    assert not [r for r in emu.requests if r.method == "POST"]


def test_typed_parameters_and_row_limit(emu):
    res = run_query(client(emu), "wh1", "SELECT action_name FROM system.access.audit WHERE event_time >= :since "
                    "ORDER BY event_time DESC", {"since": Param("2000-01-01T00:00:00Z", "TIMESTAMP")}, row_limit=2)
    assert len(res.rows) == 2 and res.truncated is True


def test_failed_statement_is_a_clear_reason(emu):
    with CallLog() as log, pytest.raises(StatementFailed) as e:
        run_query(client(emu, "carol@corp.example.com"), "wh1", Q, {"who": ALICE})
    text = describe_failure(e.value, log.last)
    assert text.startswith("SQL warehouse wh1: statement FAILED: BAD_REQUEST: [INSUFFICIENT_PERMISSIONS]")
    assert [c["path"] for c in log.calls] == ["/api/2.0/sql/statements"]  # recorded like any call


def test_http_errors_name_the_missing_right(emu):
    with CallLog() as log, pytest.raises(PermissionDenied) as e:
        run_query(client(emu, "bob@corp.example.com"), "wh1", Q, {"who": ALICE})
    assert "CAN_USE on the SQL warehouse" in describe_failure(e.value, log.last)


def test_a_statement_that_never_finishes_is_cancelled_and_reported(emu):
    emu.tenant["sql"] = {"running_polls": 10_000}
    with pytest.raises(StatementFailed, match=r"still RUNNING after 0s; cancelled"):
        run_query(client(emu), "wh1", Q, {"who": ALICE}, timeout_s=0.3, sleep=lambda s: None)
    cancels = [r for r in emu.requests if r.path.endswith("/cancel")]
    assert len(cancels) == 1 and cancels[0].method == "POST" and cancels[0].status == 200
