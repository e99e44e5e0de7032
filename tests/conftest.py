"""Shared fixtures for our own tests: a clean environment, emulator tenants, SDK profiles."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

TENANTS = Path(__file__).parent / "tenants"


@pytest.fixture(autouse=True)
def clean_databricks_env(monkeypatch, tmp_path):
    """Nothing from the developer's own Databricks setup may leak into a test."""
    for name in list(os.environ):
        if name.startswith(("DATABRICKS_", "ARM_")) or name == "GOOGLE_CREDENTIALS":
            monkeypatch.delenv(name)
    # the SDK falls back to ~/.databrickscfg; point it at an empty file
    empty = tmp_path / "empty.databrickscfg"
    empty.write_text("")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(empty))


@pytest.fixture
def tenant():
    """A fresh copy of a test tenant by name: ``tenant("tokens")``."""

    def load(name: str) -> dict:
        return copy.deepcopy(yaml.safe_load((TENANTS / f"{name}.yaml").read_text()))

    return load


@pytest.fixture
def profile(monkeypatch, tmp_path):
    """Write a ~/.databrickscfg with one profile for an emulator workspace; return the profile name."""
    cfg = tmp_path / "databrickscfg"

    def make(emu, workspace: str, principal: str = "dbsec-auditor", name: str = "emu") -> str:
        with cfg.open("a") as f:
            f.write(f"[{name}]\nhost = {emu.workspace_url(workspace)}\ntoken = {emu.token_for(principal, workspace)}\n\n")
        monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(cfg))
        return name

    return make


@pytest.fixture
def access_profiles(monkeypatch, tmp_path):
    """Write a config file with a workspace profile ``ws1`` and an ``account`` profile for an emulator (as
    ``dbsec access`` is usually run); return the command-line flags that select them."""

    def make(emu, principal: str = "dbsec-auditor", account_principal: str | None = None) -> list[str]:
        cfg = tmp_path / f"access-{len(list(tmp_path.glob('access-*')))}.databrickscfg"
        cfg.write_text(f"[ws1]\nhost = {emu.workspace_url('ws1')}\ntoken = {emu.token_for(principal, 'ws1')}\n\n"
                       f"[account]\nhost = {emu.account_url}\naccount_id = {emu.account_id}\n"
                       f"token = {emu.token_for(account_principal or principal)}\n")
        monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(cfg))
        return ["--databricks-profile", "ws1", "--databricks-account-profile", "account"]

    return make


@pytest.fixture
def emulator(databricks_emulator):
    """Start an emulator for a tenant dict or file (stopped after the test)."""
    return databricks_emulator


@pytest.fixture
def audit(pytester, databricks_emulator, monkeypatch, tmp_path):
    """Run the suite against a tenant through real ~/.databrickscfg profiles; return (result, report).

        result, report = audit(tenant_dict, "-k", "IAM_03")                 # workspace + account profiles
        result, report = audit(tenant_dict, principal="alice@corp.example.com")  # a non-admin credential

    The workspace target is named after the tenant's first workspace; the emulator is `audit.emu`."""
    import json

    def run(tenant: dict, *args, principal: str = "dbsec-auditor", account: bool = True, emu=None):
        emu = emu or databricks_emulator(tenant)
        run.emu = emu
        cfg = tmp_path / "audit.databrickscfg"
        lines = []
        for ws in emu.workspaces:
            lines += [f"[{ws['name']}]", f"host = {ws['url']}", f"token = {emu.token_for(principal, ws['name'])}", ""]
        if account:
            lines += ["[account]", f"host = {emu.account_url}", f"account_id = {emu.account_id}",
                      f"token = {emu.token_for(principal)}", ""]
        cfg.write_text("\n".join(lines))
        monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(cfg))
        first = emu.workspaces[0]["name"]
        opts = ["-p", "no:cacheprovider", "--dbsec-report-dir", "out", "--databricks-profile", first]
        if account:
            opts += ["--databricks-account-profile", "account"]
        result = pytester.runpytest(*opts, *args)
        path = pytester.path / "out" / "findings.json"
        return result, (json.loads(path.read_text()) if path.exists() else None)

    return run



@pytest.fixture
def judge_for(audit, pytester, tenant, emulator):
    """A runner for one area's purpose-built tenant::

        judge = judge_for("cmp_base", ["-k", "CMP_0 or CMP_1"])
        report, emu = judge(edit, *pytest_args, baseline={...}, faults=[(route, kw)], principal=...)

    `edit(tenant, first_workspace)` changes the tenant before the emulator starts; `baseline` is merged
    over `default`; the selection applies when no pytest args are given."""
    import yaml

    def make(base: str, default_selection: list[str]):
        def run(edit=None, *args, baseline=None, faults=(), principal="dbsec-auditor"):
            t = tenant(base)
            if edit is not None:
                edit(t, t["account"]["workspaces"][0])
            opts = list(args) or list(default_selection)
            if baseline is not None:
                (pytester.path / f"{base}-baseline.yaml").write_text(
                    yaml.safe_dump({"extends": "default", **baseline}))
                opts += ["--dbsec-baseline", f"{base}-baseline.yaml"]
            emu = emulator(t)
            for route, kw in faults:
                emu.add_fault(route, **kw)
            result, report = audit(t, *opts, principal=principal, account=False, emu=emu)
            assert report is not None, result.stdout.str()
            return report, emu

        return run

    return make
