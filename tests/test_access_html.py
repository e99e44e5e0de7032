"""`dbsec access --output html`: the access map page.

Answers come from the emulator of tests/tenants/graph_base.yaml (the hand-worked graph of
tests/test_graph_access.py), and from a copy of it where a group and a job carry hostile names.
The pages are opened in a real headless Chromium (skipped locally without one, a failure under
CI=true): it must render them with no console error, and no injected element may come alive.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from dbsec_helpers import chromium, render_in_chromium
import yaml

from pytest_dbsec.cli import main
from pytest_dbsec.report.access import render
from pytest_dbsec.report.access_html import COLLAPSE_AFTER

TENANTS = Path(__file__).parent / "tenants"
ALICE, CAROL, DAVE = (f"{n}@corp.example.com" for n in ("alice", "carol", "dave"))
EVIL_GROUP = '<script>document.title="pwned-g"</script><pwn-g></pwn-g>'
EVIL_JOB = '"><img src=x onerror=alert(1)><pwn-j></pwn-j>'


def _rename(node, old: str, new: str):
    """The tenant with every occurrence of ``old`` (names, ACL keys like ``jobs/NAME``) renamed."""
    if isinstance(node, dict):
        return {_rename(k, old, new): _rename(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_rename(v, old, new) for v in node]
    return node.replace(old, new) if isinstance(node, str) else node


@pytest.fixture
def run(databricks_emulator, access_profiles, capsys):
    """``run(tenant, *args)`` -> (rc, stdout, stderr) of ``dbsec access`` through profiles ws1 + account."""

    def go(tenant: dict, *args):
        emu = databricks_emulator(tenant)
        rc = main(["access", *args, *access_profiles(emu)])
        out, err = capsys.readouterr()
        for secret in (emu.token_for("dbsec-auditor", "ws1"), emu.token_for("dbsec-auditor")):
            assert secret not in out  # no credential value on the page
        return rc, out, err

    return go


@pytest.fixture(scope="module")
def base() -> dict:
    return yaml.safe_load((TENANTS / "graph_base.yaml").read_text())


@pytest.fixture(scope="module")
def hostile(base) -> dict:
    return _rename(_rename(base, "data-engineers", EVIL_GROUP), "Nightly ETL", EVIL_JOB)


def _self_contained(page: str) -> None:
    """Nothing on the page can load anything: no script, no URL-bearing attribute, no CSS url()."""
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower() and "<img" not in page.lower()
    tags = re.findall(r"<[^<>]*>", page)  # escaped names have no raw "<": these are the real tags
    assert not [t for t in tags if re.search(r"\b(src|href|action|srcset|on\w+)\s*=", t, re.I)]
    assert "url(" not in page and "@import" not in page
    assert "http://" not in page and "https://" not in page


def _text(page: str) -> str:
    """The page's visible text, tags dropped, entities kept: enough to check a chain's order."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


# -- content ------------------------------------------------------------------------------------


def test_alice_page_shows_the_hand_worked_chain(run, base):
    rc, page, err = run(base, "--principal", ALICE, "--scan-workspace-objects", "--escalation-check",
                        "--output", "html")
    assert rc == 0, err
    _self_contained(page)
    assert f"<title>Access of {ALICE}</title>" in page
    assert "INCOMPLETE" not in page and "Complete:" in page
    text = _text(page)
    # the boxes nest as the chain runs: alice → data-engineers → all-data-team → SELECT ... (inherited)
    i = page.index('<span class="name">data-engineers</span>')
    j = page.index('<span class="name">all-data-team</span>', i)
    k = page.index("on table main.sales.orders <span class=\"inh\">(inherited from catalog main)</span>", j)
    assert page.index(f'<span class="name">{ALICE}</span>') < i < j < k
    # the schema data-engineers owns sits in the data-engineers box, before all-data-team's box opens
    assert "OWNER</span> on schema main.sales" in page[i:j]
    assert "USER</span> on workspace ws1" in page
    assert "IS_OWNER</span> on jobs Nightly ETL" in page and "CAN_ATTACH_TO</span> on clusters shared-etl" in page
    # escalations, highlighted by severity, with their chain
    assert "run_as_takeover" in text and "job Nightly ETL (ws1)" in text
    assert re.search(r'class="tag sev-(critical|high)">(CRITICAL|HIGH)</span><b>all_privileges</b> catalog finance',
                     page)
    # the credential: id and expiry, never a value
    assert "Credentials (ids and expiry only)" in page and "<td>pat</td>" in page


def test_resource_page_is_the_reverse_map(run, base):
    rc, page, err = run(base, "--resource", "main", "--output", "html")
    assert rc == 0, err
    _self_contained(page)
    assert "<title>Who can reach catalog main</title>" in page
    # resource → SELECT → all-data-team → data-engineers → alice
    s = page.index('<span class="priv">SELECT</span>')
    a = page.index('<span class="name">all-data-team</span>', s)
    d = page.index('<span class="name">data-engineers</span>', a)
    assert page.index(f"<b>{ALICE}</b>", d) > d
    assert f"<b>{CAROL}</b>" in page[a:]  # a direct member of all-data-team
    o = page.index('<span class="priv">OWNER</span>')
    assert page.index(f"<b>{DAVE}</b>", o) > o


def test_incomplete_answer_has_a_banner_and_large_lists_fold():
    doc = {"format": "pytest-dbsec/access", "version": 1, "mode": "resource",
           "resource": {"securable_type": "CATALOG", "full_name": "main"},
           "principals": [{"principal": f"u{n}@x", "principal_kind": "user", "display_name": None,
                           "everyone": True, "securable_type": "CATALOG", "full_name": "main",
                           "privilege": "BROWSE", "via": [f"u{n}@x", "account users"], "inherited_from": None,
                           "ownership": False} for n in range(COLLAPSE_AFTER + 5)],
           "errors": [{"scope": "ws1", "section": "uc", "message": "403 <denied>"}], "complete": False}
    page = render(doc, "html")
    _self_contained(page)
    assert "INCOMPLETE ANSWER" in page and "ws1/uc: 403 &lt;denied&gt;" in page
    # the `account users` box with 30 members starts closed, and its member list is folded
    assert '<details class="box"><summary><span class="name">account users</span>' in page
    assert f"({COLLAPSE_AFTER + 5}, folded)" in page


def test_group_and_compare_modes_render(run, base):
    rc, page, _ = run(base, "--group", "data-engineers", "--output", "html")
    assert rc == 0 and "Members (" in page and "data-engineers" in page
    _self_contained(page)
    rc, page, _ = run(base, "--compare", ALICE, CAROL, "--output", "html")
    assert rc == 0 and f"{ALICE} reaches, and {CAROL} does not" in page
    _self_contained(page)


# -- hostile names and a real browser -----------------------------------------------------------


def test_hostile_names_are_text_in_chromium_and_the_page_renders_cleanly(run, hostile, tmp_path):
    browser = chromium()
    pages = {}
    rc, pages["principal"], err = run(hostile, "--principal", ALICE, "--scan-workspace-objects",
                                      "--escalation-check", "--output", "html")
    assert rc == 0, err
    rc, pages["resource"], err = run(hostile, "--resource", "main", "--output", "html")
    assert rc == 0, err
    for mode, page in pages.items():
        path = tmp_path / f"{mode}.html"
        path.write_text(page, encoding="utf-8")
        dom, log = render_in_chromium(browser, path, tmp_path, budget_ms=2000)
        assert "</html>" in dom and "<h1>" in dom, mode  # it rendered
        # no element from a payload came alive; the name is there, as text
        assert "<pwn-g" not in dom and "<pwn-j" not in dom and "<script" not in dom, mode
        assert not re.search(r"<img[^>]*onerror", dom), mode
        assert "pwned-g" not in dom.split("</title>")[0], mode  # the title was not rewritten
        assert "&lt;script&gt;document.title=" in dom, mode
        console = [line for line in log.splitlines() if "CONSOLE" in line]
        assert not [line for line in console if "Uncaught" in line or "Error" in line], console
        # nothing was fetched: Chromium logs a blocked or failed load of a URL
        assert not re.search(r"https?://", "\n".join(console)), console
        _self_contained(page)  # the payloads are on the page only as escaped text
        assert html.escape(EVIL_GROUP, quote=True) in page, mode
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in pages["principal"]
