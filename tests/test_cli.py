"""The `dbsec` command."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from pytest_dbsec.cli import main


def test_bad_tenant_is_a_usage_error_naming_file_and_key(tmp_path, capsys):
    bad = tmp_path / "t.yaml"
    bad.write_text("version: 1\naccount:\n  id: a\n  users:\n    - {userName: a@x.com}\n  groups:\n"
                   "    - {displayName: g, members: [nobody@x.com]}\n")
    assert main(["emulator", "serve", "--tenant", str(bad)]) == 4
    err = capsys.readouterr().err
    assert "t.yaml" in err and "members" in err and "nobody@x.com" in err


@pytest.mark.parametrize("argv", [["emulator", "serve", "--port", "70000"], ["bogus"], ["emulator", "serve", "--port", "x"]])
def test_bad_flags_exit_4(argv, capsys):
    assert main(argv) == 4


def test_serve_prints_endpoints_and_stops_on_interrupt():
    dbsec = shutil.which("dbsec", path=str(__import__("pathlib").Path(sys.executable).parent)) or ""
    cmd = [dbsec] if dbsec else [sys.executable, "-m", "pytest_dbsec.cli"]
    proc = subprocess.Popen(cmd + ["emulator", "serve", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines, deadline = [], time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        out = "".join(lines)
        # the banner tells a user everything needed to point a client at it
        assert "account id  : 8f3c2a71-5b9e-4d10-9c6a-2e7b1f0a4d35" in out
        assert "workspace 'prod'" in out and "workspace 'dev'" in out
        assert "dapi00000000000000000000000000001001" in out  # the demo's (fake) credentials
        url = next(l.split(": ", 1)[1].strip() for l in lines if "account API" in l)
        with urllib.request.urlopen(url + "/.well-known/databricks-config", timeout=5) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_readme_control_table_is_current():
    """The table is generated from the markers; regenerate with `dbsec controls --write README.md`."""
    from pathlib import Path

    from pytest_dbsec.cli import (SECTIONS_END, SECTIONS_START, TABLE_END, TABLE_START, builtin_controls,
                                  controls_markdown, sections_markdown)

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    assert block.strip() == controls_markdown(builtin_controls()).strip(), \
        "README control table is stale: run `dbsec controls --write README.md`"
    block = readme.split(SECTIONS_START, 1)[1].split(SECTIONS_END, 1)[0]
    assert block.strip() == sections_markdown().strip(), \
        "README data-section table is stale: run `dbsec controls --write README.md`"


def test_controls_command_lists_every_builtin_control(capsys):
    import json

    assert main(["controls", "--format", "json"]) == 0
    ids = [c["id"] for c in json.loads(capsys.readouterr().out)]
    assert {"TOK-01", "TOK-02", "TOK-03", "TOK-04"} <= set(ids) and len(ids) == len(set(ids))
    assert main(["controls", "--write", "/nonexistent/README.md"]) == 4
