"""Helpers shared by our tests (importable: tests/ is on sys.path under pytest's default import mode)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest


def outcome_of(report: dict, control: str, target: str | None = None) -> dict:
    """The result of one control (on one target) in a findings.json report."""
    return next(r for r in report["results"] if r["control_id"] == control and target in (None, r["target"]))


def ids(report: dict, control: str, target: str = "ws1") -> set[str]:
    """The resource ids a control found on a target."""
    return {f["resource_id"] for f in outcome_of(report, control, target)["findings"]}


def outcome(report: dict, control: str, target: str = "ws1") -> str:
    return outcome_of(report, control, target)["outcome"]


def chromium() -> str:
    """Debian's headless Chromium. Missing: skipped locally, a failure under CI (which installs it)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI") == "true":
        pytest.fail("Chromium is not installed; CI must install it (apt-get install -y chromium)")
    pytest.skip("Chromium is not installed (apt-get install -y chromium)")


def render_in_chromium(browser: str, page: Path, tmp: Path, budget_ms: int = 3000) -> tuple[str, str]:
    """The DOM after the page's own script ran, and the browser's log (console messages included)."""
    try:
        proc = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
             f"--virtual-time-budget={budget_ms}", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        # a page that opens a dialog (an injected alert()) keeps headless Chromium waiting
        pytest.fail(f"Chromium did not finish rendering {page.name} within 30 s (a dialog opened by injected script?)")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


_READ_STATEMENT = re.compile(r"\s*(SELECT|WITH)\b", re.IGNORECASE)
_CANCEL = re.compile(r"/api/2\.0/sql/statements/([^/]+)/cancel")


def assert_read_only(emu) -> None:
    """The tool only read: every request is a GET, except statement execution of a single SELECT/WITH
    (the SQL warehouse path) and the cancel of a statement the same principal submitted."""
    submitted = {sid: st.principal.name for sid, st in emu.statements.by_id.items()}
    for r in emu.requests:
        if r.method == "GET":
            continue
        if r.method == "POST" and r.path == "/api/2.0/sql/statements":
            text = (r.statement or "").strip().rstrip(";")
            assert _READ_STATEMENT.match(text) and ";" not in text, f"a statement that is not one query: {r.statement!r}"
            continue
        m = _CANCEL.fullmatch(r.path)
        if r.method == "POST" and m and submitted.get(m.group(1)) == r.principal:
            continue
        raise AssertionError(f"the tool changed something: {r.method} {r.path} -> {r.status}")
