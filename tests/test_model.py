"""The pure-data parts: control metadata, findings, snapshots, baselines, redaction."""

import gzip
import json

import pytest

from pytest_dbsec.baseline import Baseline, BaselineError
from pytest_dbsec.connect import redact
from pytest_dbsec.findings import Control, ControlDefinitionError, FindingRecorder
from pytest_dbsec.inventory import Inventory, Scope, Section, SnapshotError

GOOD = dict(id="TOK-01", title="t", severity="high", scope="workspace", sections=["tokens"],
            refs={"SAT": ["IA-4"]}, rationale="r", remediation="fix it")


def test_control_metadata_is_validated_and_every_problem_named():
    assert Control.from_marker(GOOD, "x", {"tokens"}).id == "TOK-01"
    bad = {**GOOD, "severity": "urgent", "id": "tok1", "refs": {"PCI": ["1"]}, "extra": 1}
    del bad["remediation"]
    with pytest.raises(ControlDefinitionError) as e:
        Control.from_marker(bad, "checks/x.py::test_x", {"tokens"})
    msg = str(e.value)
    for part in ("checks/x.py::test_x", "missing remediation", "unknown key(s) extra", "'tok1'",
                 "severity 'urgent'", "unknown framework 'PCI'"):
        assert part in msg
    with pytest.raises(ControlDefinitionError, match="unknown data section.*nope"):
        Control.from_marker({**GOOD, "sections": ["nope"]}, "x", {"tokens"})
    # a control written for the single object-ACL section of earlier versions: a deprecated alias for every
    # acls_<type> section, with a warning naming them
    from pytest_dbsec.findings import DeprecatedSectionWarning
    from pytest_dbsec.inventory import ACL_SECTIONS

    with pytest.warns(DeprecatedSectionWarning, match=r"x: data section 'object_acls' is deprecated.*acls_jobs"):
        c = Control.from_marker({**GOOD, "sections": ["tokens", "object_acls", "acls_jobs"]}, "x",
                                {"tokens", *ACL_SECTIONS})
    assert c.sections == ("tokens", *ACL_SECTIONS)
    with pytest.raises(ControlDefinitionError, match="unknown data section.*nope"), \
            pytest.warns(DeprecatedSectionWarning):
        Control.from_marker({**GOOD, "sections": ["object_acls", "nope"]}, "x", {*ACL_SECTIONS})


def test_finding_fingerprint_ignores_display_text():
    c = Control.from_marker(GOOD, "x")
    r = FindingRecorder(c, "prod")
    a = r.fail(resource_type="token", resource_id="t1", resource_name="ci", seen="a", expected="b")
    b = r.fail(resource_type="token", resource_id="t1", resource_name="renamed", seen="c", expected="d")
    other = r.fail(resource_type="token", resource_id="t2", seen="a", expected="b")
    assert a.fingerprint == b.fingerprint != other.fingerprint
    assert FindingRecorder(c, "dev").fail(resource_type="token", resource_id="t1", seen="a",
                                          expected="b").fingerprint != a.fingerprint
    msg = r.failure_message()
    assert msg.startswith("TOK-01 t [high]: 3 findings in prod") and "Remediation: fix it" in msg


def _inventory():
    inv = Inventory(meta={"tool": "pytest-dbsec"})
    inv.workspaces["prod"] = Scope("prod", "workspace", id=1, host="https://h")
    inv.put("prod", Section("tokens", status="ok", data={"token_infos": [{"token_id": "a"}]},
                            calls=[{"method": "GET", "path": "/x", "status": 200}],
                            collected_at="2026-01-01T00:00:00Z"))
    inv.put("prod", Section("uc", status="error", error="GET /y -> 403: PERMISSION_DENIED"))
    return inv


@pytest.mark.parametrize("name", ["snap.json", "snap.json.gz"])
def test_snapshot_round_trip(tmp_path, name):
    inv = _inventory()
    path = inv.save(tmp_path / name)
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    back = Inventory.load(path)
    assert back.to_json() == inv.to_json()
    assert not back.complete and back.errors == [{"scope": "prod", "section": "uc",
                                                  "error": "GET /y -> 403: PERMISSION_DENIED"}]
    assert back.to_json()["meta"]["calls"] == 1


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(format="other"), "snapshot.format"),
    (lambda d: d.update(version=99), "snapshot.version: snapshot version 99"),
    (lambda d: d["workspaces"][0]["sections"]["tokens"].update(status="bogus"),
     "snapshot.workspaces[0].sections.tokens.status"),
    (lambda d: d["workspaces"][0]["sections"]["uc"].pop("error"), "snapshot.workspaces[0].sections.uc.error"),
    (lambda d: d["workspaces"][0].pop("name"), "snapshot.workspaces[0].name"),
])
def test_bad_snapshot_names_the_key(mutate, message):
    data = json.loads(json.dumps(_inventory().to_json()))
    mutate(data)
    with pytest.raises(SnapshotError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Inventory.from_json(data)


def test_unreadable_snapshot_names_file_and_line(tmp_path):
    p = tmp_path / "s.json"
    p.write_text('{\n "format": "pytest-dbsec/snapshot",\n oops\n}')
    with pytest.raises(SnapshotError, match=r"s\.json:3: not valid JSON"):
        Inventory.load(p)
    with pytest.raises(SnapshotError, match="cannot read snapshot"):
        Inventory.load(tmp_path / "missing.json")
    (tmp_path / "g.json.gz").write_bytes(gzip.compress(b"[1]")[:10])
    with pytest.raises(SnapshotError, match="not a readable snapshot"):
        Inventory.load(tmp_path / "g.json.gz")


def test_baseline_extends_and_errors(tmp_path):
    assert Baseline.load("default").get("tokens.max_lifetime_days") == 90
    user = tmp_path / "mine.yaml"
    user.write_text("extends: default\ntokens:\n  max_lifetime_days: 30\n")
    b = Baseline.load(str(user))
    assert b.get("tokens.max_lifetime_days") == 30 and b.get("tokens.warn_expiry_days") == 7
    with pytest.raises(BaselineError, match="key 'tokens.nope' is not set"):
        b.get("tokens.nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tokens:\n  max_lifetime_days: [1\n")
    with pytest.raises(BaselineError, match=r"bad\.yaml:\d+: not valid YAML"):
        Baseline.load(str(bad))
    with pytest.raises(BaselineError, match="no such baseline"):
        Baseline.load("does-not-exist")
    loop = tmp_path / "loop.yaml"
    loop.write_text(f"extends: {loop}\n")
    with pytest.raises(BaselineError, match="cycle"):
        Baseline.load(str(loop))


def test_redact_removes_credentials():
    pat = "dapi" + "0123456789abcdef" * 2
    text = redact(f"Authorization: Bearer {pat} token={pat} password: hunter2 and {pat}-2 seen",
                  known=("hunter2",))
    assert pat not in text and "hunter2" not in text
    assert redact("Config: host=https://x, token=***, auth_type=pat") == "Config: host=https://x, token=***, auth_type=pat"
