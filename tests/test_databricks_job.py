"""Running the suite inside Databricks: as a job's own identity (the SDK's runtime auth), through the
wheel entry point a python_wheel_task calls, with reports on a Unity Catalog volume.

Inside Databricks the SDK authenticates with its ``runtime`` credentials strategy: when
DATABRICKS_RUNTIME_VERSION is set it imports ``databricks.sdk.runtime``, which imports the runtime's
own ``dbruntime`` package. These tests put a small ``dbruntime`` on PYTHONPATH that provides exactly
what the SDK imports from it, pointing at the emulator, so the real SDK code path authenticates
-- no profile, no token in the environment.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from dbsec_helpers import outcome
from pytest_dbsec.inventory import write_atomic

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "docs" / "bundle" / "databricks.yml"
AUDITOR = "dbsec-auditor"  # the tokens tenant's auditing service principal: the job's run_as


def fake_dbruntime(where: Path, variant: str) -> Path:
    """A ``dbruntime`` package as the SDK (0.156) imports it:

    * ``dbruntime.UserNamespaceInitializer.getOrCreate().get_namespace_globals()``: present on a classic
      runtime; without it the SDK builds an OSS ``dbutils`` that authenticates on import (and fails);
    * ``dbruntime.sdk_credential_provider.init_runtime_native_unified() -> (host, account_id,
      workspace_id, header_factory)`` on newer runtimes, ``init_runtime_native_auth() -> (host,
      header_factory)`` on older ones. The header factory is called for every request.
    """
    pkg = where / variant / "dbruntime"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        class UserNamespaceInitializer:
            @classmethod
            def getOrCreate(cls):
                return cls()

            def get_namespace_globals(self):
                return {}
        """))
    common = textwrap.dedent("""
        import os

        def _headers():
            return {"Authorization": "Bearer " + os.environ["FAKE_RUNTIME_TOKEN"]}
        """)
    if variant == "unified":
        body = textwrap.dedent("""
            def init_runtime_native_unified():
                return os.environ["FAKE_RUNTIME_HOST"], None, os.environ["FAKE_RUNTIME_WORKSPACE_ID"], _headers
            """)
    else:
        body = textwrap.dedent("""
            def init_runtime_native_auth():
                return os.environ["FAKE_RUNTIME_HOST"], _headers
            """)
    (pkg / "sdk_credential_provider.py").write_text(common + body)
    return pkg.parent


@pytest.fixture
def job_env(tmp_path, monkeypatch):
    """The environment of a Databricks job run as the auditor: a runtime, no profile, no token."""

    def make(emu, variant: str = "native", principal: str = AUDITOR) -> dict:
        ws = emu.workspaces[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")}
        empty = tmp_path / "empty.databrickscfg"
        empty.write_text("")
        env.update({
            "DATABRICKS_RUNTIME_VERSION": "15.4",
            "DATABRICKS_CONFIG_FILE": str(empty),  # and no ~/.databrickscfg profile to fall back on
            "PYTHONPATH": os.pathsep.join([str(fake_dbruntime(tmp_path / "rt", variant)), str(ROOT / "tests")]),
            "FAKE_RUNTIME_HOST": ws["url"],
            "FAKE_RUNTIME_WORKSPACE_ID": str(ws["id"]),
            "FAKE_RUNTIME_TOKEN": emu.token_for(principal, ws["name"]),
        })
        return env

    return make


def _run(cmd: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("variant", ["native", "unified"])
def test_dbsec_inside_a_job_authenticates_as_the_jobs_identity(emulator, tenant, job_env, tmp_path, variant):
    t = tenant("tokens")
    t["account"]["workspaces"][0]["tokens"].append(
        {"token_id": "tok-forever", "owner": "alice@corp.example.com", "comment": "never expires",
         "creation_time": "-5d", "expiry_time": None})
    emu = emulator(t)
    env = job_env(emu, variant)
    proc = _run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--dbsec", "-k", "TOK",
                 "--dbsec-report-dir", "out", "--dbsec-snapshot-out", "out/snapshot.json.gz"], env, tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # the never-expiring token
    url = emu.workspaces[0]["url"]
    assert f"at {url} as {AUDITOR} (runtime auth" in proc.stderr

    # every request came from the job's identity, and only read
    assert emu.requests and {r.principal for r in emu.requests} == {
        next(p["applicationId"] for p in t["account"]["service_principals"] if p["displayName"] == AUDITOR)}
    assert {r.method for r in emu.requests} == {"GET"}

    report = json.loads((tmp_path / "out" / "findings.json").read_text())
    # the workspace is named and recorded after the host the runtime gave, not "default"
    (name, target), = report["run"]["targets"].items()
    assert target["host"] == url and target["profile"] is None and name != "default"
    assert target["auth"] == "runtime"
    assert outcome(report, "TOK-01", name) == "failed"
    assert {f["resource_id"] for r in report["results"] if r["control_id"] == "TOK-01"
            for f in r["findings"]} == {"tok-forever"}
    for f in ("compliance.html", "findings.csv", "junit.xml", "evidence.json", "snapshot.json.gz"):
        assert (tmp_path / "out" / f).is_file(), f
    assert emu.token_for(AUDITOR, emu.workspaces[0]["name"]) not in proc.stdout + proc.stderr


def test_the_workspace_id_comes_from_one_org_id_header(emulator, tenant):
    """The older runtime provider names no workspace id, and host metadata is not read when the host
    comes from the runtime: the SDK then takes the id from /Me's X-Databricks-Org-Id header."""
    from databricks.sdk import WorkspaceClient

    emu = emulator(tenant("tokens"))
    ws = emu.workspaces[0]
    w = WorkspaceClient(host=ws["url"], token=emu.token_for(AUDITOR, ws["name"]), auth_type="pat")
    # what WorkspaceClient.get_workspace_id() does when its config has no workspace id
    response = w.api_client.do("GET", "/api/2.0/preview/scim/v2/Me", response_headers=["X-Databricks-Org-Id"])
    assert int(response["X-Databricks-Org-Id"]) == ws["id"]


def test_outside_databricks_dbsec_without_credentials_is_a_usage_error(tmp_path, job_env, emulator, tenant):
    env = job_env(emulator(tenant("tokens")))
    del env["DATABRICKS_RUNTIME_VERSION"]  # the fake runtime is importable, but this is not a runtime
    proc = _run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--dbsec", "-k", "TOK_01",
                 "--dbsec-report-dir", "out"], env, tmp_path)
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "cannot connect" in proc.stderr and not (tmp_path / "out").exists()


def _entry_point_call(package: str, entry_point: str, params: list[str]) -> list[str]:
    """What Databricks does for a python_wheel_task: look the entry point up by name in the package's
    metadata, put the parameters in sys.argv, call it (and ignore what it returns)."""
    code = textwrap.dedent(f"""
        import sys
        from importlib import metadata
        sys.argv = [{package!r}] + {params!r}
        eps = [ep for ep in metadata.distribution({package!r}).entry_points if ep.name == {entry_point!r}]
        if not eps:
            raise ImportError("entry point {entry_point} not found")
        eps[0].load()()
        """)
    return [sys.executable, "-c", code]


def _bundle() -> dict:
    return yaml.safe_load(BUNDLE.read_text())


def _bundle_task() -> dict:
    (job,) = _bundle()["resources"]["jobs"].values()
    (task,) = [t for t in job["tasks"] if "python_wheel_task" in t]
    return task["python_wheel_task"]


def _bundle_parameters(volume: Path, **selection) -> list[str]:
    """The task's parameters as Databricks would pass them: bundle variables at their defaults (the
    report volume moved under `volume`), dynamic value references filled in, `-k` replaced if asked."""
    defaults = {k: v.get("default") for k, v in _bundle()["variables"].items()}
    out = []
    for p in _bundle_task()["parameters"]:
        p = p.replace("${var.report_volume}", str(volume / defaults["report_volume"].lstrip("/")))
        for name, value in defaults.items():
            p = p.replace("${var.%s}" % name, str(value))
        p = p.replace("{{job.start_time.iso_date}}", "2026-11-22").replace("{{job.run_id}}", "550315892394120")
        out.append(p)
    if "k" in selection:
        out[out.index("-k") + 1] = selection["k"]
    return out


@pytest.mark.parametrize("clean", [True, False])
def test_wheel_entry_point_runs_the_suite_and_fails_the_task_on_a_failing_gate(
        emulator, tenant, job_env, tmp_path, clean):
    t = tenant("tokens")
    if not clean:  # a high-severity failure: the bundle gates on --dbsec-fail-on high
        t["account"]["workspaces"][0]["tokens"].append(
            {"token_id": "tok-forever", "owner": "alice@corp.example.com", "comment": "never expires",
             "creation_time": "-5d", "expiry_time": None})
    emu = emulator(t)
    wheel = _bundle_task()
    params = _bundle_parameters(tmp_path, k="TOK")  # the bundle's own parameters, on the token controls
    reports = Path(params[params.index("--dbsec-report-dir") + 1])
    assert reports.is_relative_to(tmp_path / "Volumes") and not reports.exists()
    proc = _run(_entry_point_call(wheel["package_name"], wheel["entry_point"], params), job_env(emu), tmp_path)
    # the exit code reaches Databricks as the process status (a raised SystemExit), not a return value
    assert proc.returncode == (0 if clean else 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith(f"dbsec run: exit code {0 if clean else 1}; reports in {reports.resolve()}: ")
    for f in ("compliance.html", "evidence.json", "findings.csv", "findings.json", "junit.xml", "snapshot.json.gz"):
        assert f in last and (reports / f).is_file(), f
    report = json.loads((reports / "findings.json").read_text())
    (name, target), = report["run"]["targets"].items()
    assert target["host"] == emu.workspaces[0]["url"]
    assert report["gate"]["fail_on"] == "high"
    assert {r["control_id"] for r in report["results"]} == {f"TOK-0{i}" for i in range(1, 10)}
    assert outcome(report, "TOK-01", name) == ("passed" if clean else "failed")
    # only the built-in suite ran: the working directory was neither searched nor given a cache
    assert not (tmp_path / ".pytest_cache").exists()


def test_the_example_bundle_names_what_the_package_has(pytester):
    """docs/bundle/databricks.yml cannot rot: its package, entry point, artifact and options exist."""
    import importlib
    import re

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    bundle = _bundle()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wheel = _bundle_task()
    assert wheel["package_name"] == project["name"]
    module, func = project["scripts"][wheel["entry_point"]].split(":")
    assert callable(getattr(importlib.import_module(module), func))

    # the wheel is built from this project and installed on the job's compute
    artifact, = bundle["artifacts"].values()
    assert artifact["type"] == "whl" and (BUNDLE.parent / artifact["path"]).resolve() == ROOT
    (job,) = bundle["resources"]["jobs"].values()
    (task,) = job["tasks"]
    assert [lib["whl"] for lib in task["libraries"]] == [f"{artifact['path']}/dist/*.whl"]
    assert "--wheel-dir dist" in artifact["build"]
    assert task["job_cluster_key"] in {c["job_cluster_key"] for c in job["job_clusters"]}

    # every option is one pytest (with the plugin) knows
    options = [p for p in wheel["parameters"] if p.startswith("-")]
    assert "--dbsec-report-dir" in options
    help_text = pytester.runpytest("--help").stdout.str()
    for opt in options:
        assert re.search(rf"(^|[\s,]){re.escape(opt)}([=\s,]|$)", help_text, re.M), opt
    # the report folder is on a Unity Catalog volume, one per run
    report_dir = wheel["parameters"][wheel["parameters"].index("--dbsec-report-dir") + 1]
    assert report_dir.startswith("${var.report_volume}/") and "{{job.run_id}}" in report_dir
    assert bundle["variables"]["report_volume"]["default"].startswith("/Volumes/")
    # the identity and the schedule
    assert set(bundle["run_as"]) == {"service_principal_name"}
    assert job["schedule"]["quartz_cron_expression"] and job["schedule"]["timezone_id"]


def test_the_bundle_deselects_exactly_the_controls_a_workspace_identity_cannot_judge(audit, tenant):
    """A job's identity reaches its workspace only. The controls that then ERROR for want of account
    credentials are the ones the example bundle deselects -- no more (nothing hidden), no fewer."""
    import re

    t = tenant("tokens")
    result, report = audit(t, account=False)  # every control, as a workspace identity
    assert report is not None, result.stdout.str()
    need_account = {r["control_id"] for r in report["results"]
                    if r["outcome"] == "error" and "no account credentials" in (r["reason"] or "")}
    params = _bundle_task()["parameters"]
    deselected = {m.replace("_", "-") for m in re.findall(r"[A-Z]+_\d+", params[params.index("-k") + 1])}
    assert need_account and deselected == need_account


def test_dbsec_run_usage_error_writes_nothing(tmp_path):
    proc = _run([sys.executable, "-m", "pytest_dbsec.cli", "run", "--dbsec-demo", "--dbsec-fail-on", "bogus",
                 "--dbsec-report-dir", str(tmp_path / "out")], dict(os.environ), tmp_path)
    assert proc.returncode == 4
    assert proc.stdout.strip().splitlines()[-1] == "dbsec run: exit code 4; no reports written"
    assert not (tmp_path / "out").exists()


# -- reports on a Unity Catalog volume ---------------------------------------------------------------


@pytest.fixture
def volume(tmp_path, monkeypatch):
    """A folder that behaves like a Unity Catalog volume's FUSE mount (/Volumes/...): files are written
    start to finish, but rename fails with ENOSYS (as reported for /Volumes) and chmod with EPERM.
    ``volume.refuse`` says which of the two are refused; ``volume.refused`` records each refusal."""
    from types import SimpleNamespace

    root = tmp_path / "Volumes" / "main" / "security" / "evidence"
    root.mkdir(parents=True)
    vol = SimpleNamespace(root=root, refuse={"rename", "chmod"}, refused=[])
    real_replace, real_rename, real_chmod = os.replace, os.rename, os.chmod

    def inside(p) -> bool:
        return Path(os.fspath(p)).resolve().is_relative_to(root)

    def refusing(op, real, code, text):
        def call(path, *args, **kwargs):
            paths = [path] + [a for a in args[:1] if op == "rename"]
            if op in vol.refuse and any(not isinstance(p, int) and inside(p) for p in paths):
                vol.refused.append((op, os.fspath(path)))
                raise OSError(code, text, os.fspath(path))
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "replace", refusing("rename", real_replace, errno.ENOSYS, "Function not implemented"))
    monkeypatch.setattr(os, "rename", refusing("rename", real_rename, errno.ENOSYS, "Function not implemented"))
    monkeypatch.setattr(os, "chmod", refusing("chmod", real_chmod, errno.EPERM, "Operation not permitted"))
    # a volume is created in Unity Catalog, never by mkdir under its schema's folder
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):
        if Path(os.fspath(path)).resolve().parent == root.parent:
            raise OSError(errno.EPERM, "Operation not permitted", os.fspath(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    return vol


@pytest.mark.parametrize("refuse", [{"rename"}, {"chmod"}])
def test_write_atomic_falls_back_to_one_sequential_write_on_a_volume(volume, refuse):
    volume.refuse = refuse
    target = volume.root / "reports" / "findings.json"
    write_atomic(target, "old")
    write_atomic(target, '{"new": true}')
    assert target.read_text() == '{"new": true}'
    assert {op for op, _ in volume.refused} == refuse, "the simulated volume refused the atomic route"
    assert [p.name for p in target.parent.iterdir()] == ["findings.json"], "no temp file is left behind"


def test_write_atomic_does_not_hide_other_errors(tmp_path, monkeypatch):
    target = tmp_path / "reports" / "findings.json"
    target.parent.mkdir()
    target.write_text("old")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError) as e:
        write_atomic(target, "new")
    assert e.value.errno == errno.ENOSPC
    assert target.read_text() == "old" and [p.name for p in target.parent.iterdir()] == ["findings.json"]


def test_reports_and_snapshot_on_a_volume(pytester, volume):
    out = volume.root / "dbsec" / "2026-11-22"
    result = pytester.runpytest("-p", "no:cacheprovider", "--dbsec-demo", "-k", "TOK",
                                "--dbsec-report-dir", str(out), "--dbsec-snapshot-out", str(out / "snapshot.json.gz"))
    assert result.ret == 1  # the demo tenant's bad tokens
    assert volume.refused, "the simulated volume refused the atomic route"
    assert sorted(p.name for p in out.iterdir()) == [
        "compliance.html", "evidence.json", "findings.csv", "findings.json", "junit.xml", "snapshot.json.gz"]
    report = json.loads((out / "findings.json").read_text())
    assert report["complete"] is True and report["results"]
    from pytest_dbsec.inventory import Inventory
    from pytest_dbsec.report import verify_evidence

    assert Inventory.load(out / "snapshot.json.gz").workspaces
    assert verify_evidence(out / "evidence.json") == []


def test_a_report_folder_that_cannot_be_created_is_bad_input_said_before_the_run(pytester, volume):
    typo = volume.root.parent / "evidnce" / "2026-11-22"  # a volume that does not exist
    result = pytester.runpytest("-p", "no:cacheprovider", "--dbsec-demo", "-k", "TOK_01",
                                "--dbsec-report-dir", str(typo))
    assert result.ret == 4
    assert f"--dbsec-report-dir {typo}: cannot create {typo.parent}: Operation not permitted" in result.stderr.str()
    assert not typo.parent.exists() and "test_TOK_01" not in result.stdout.str()


def test_a_report_folder_under_a_file_is_bad_input(pytester):
    (pytester.path / "notes.txt").write_text("")
    result = pytester.runpytest("-p", "no:cacheprovider", "--dbsec-demo", "-k", "TOK_01",
                                "--dbsec-snapshot-out", "notes.txt/snap.json")
    assert result.ret == 4
    assert "--dbsec-snapshot-out notes.txt/snap.json: notes.txt is not a directory" in result.stderr.str()
    assert sorted(p.name for p in pytester.path.iterdir()) == ["notes.txt"]
