"""The ``dbsec`` command: tools around the pytest suite.

    dbsec emulator serve [--tenant FILE] [--port N]       run the Databricks REST emulator
    dbsec baseline accept --from findings.json -o FILE    accept today's open findings
    dbsec diff OLD.json NEW.json [--output text|json]     what changed between two runs
    dbsec verify reports/evidence.json                    check report files against their manifest
    dbsec controls [--format markdown|json] [--write README.md]   the built-in control catalog

Data goes to stdout, messages to stderr. Exit codes: 0 ok; 1 a result that should stop a pipeline
(``diff``: new findings; ``verify``: a file changed or is missing); 4 bad input (as pytest's usage
error), with nothing written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

USAGE_ERROR = 4


class InputError(Exception):
    """Bad input: one line naming the file and what is wrong with it."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dbsec", description="pytest-dbsec tools")
    sub = p.add_subparsers(dest="command", required=True)

    emu = sub.add_parser("emulator", help="the Databricks REST emulator")
    emu_sub = emu.add_subparsers(dest="emulator_command", required=True)
    serve = emu_sub.add_parser("serve", help="serve a tenant over HTTP until interrupted")
    serve.add_argument("--tenant", metavar="FILE", help="tenant YAML (default: the shipped demo tenant)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0,
                       help="account API port; workspaces get their own ports (default: any free port)")

    base = sub.add_parser("baseline", help="baseline tools")
    base_sub = base.add_subparsers(dest="baseline_command", required=True)
    accept = base_sub.add_parser("accept", help="record today's open findings as accepted")
    accept.add_argument("--from", dest="source", metavar="FINDINGS_JSON", required=True,
                        help="a findings.json written by a run")
    accept.add_argument("-o", "--output", metavar="FILE", required=True, help="accepted-findings YAML to write")

    diff = sub.add_parser("diff", help="compare two findings.json files")
    diff.add_argument("old", metavar="OLD.json")
    diff.add_argument("new", metavar="NEW.json")
    diff.add_argument("--output", choices=("text", "json"), default="text")

    verify = sub.add_parser("verify", help="verify report files against an evidence.json manifest")
    verify.add_argument("manifest", metavar="EVIDENCE_JSON")

    controls = sub.add_parser("controls", help="list the built-in controls from their metadata")
    controls.add_argument("--format", choices=("markdown", "json"), default="markdown")
    controls.add_argument("--write", metavar="FILE",
                          help="replace the control and data-section tables (between their markers) in FILE")
    return p


TABLE_START, TABLE_END = "<!-- controls:start -->", "<!-- controls:end -->"
SECTIONS_START, SECTIONS_END = "<!-- sections:start -->", "<!-- sections:end -->"


def sections_markdown() -> str:
    """The data sections, from the collector registry (workspace ones first)."""
    from .collect import known_sections

    lines = ["| Section | Scope | What |", "|---|---|---|"]
    for name, spec in sorted(known_sections().items(), key=lambda x: (x[1].scope != "workspace", x[0])):
        lines.append(f"| `{name}` | {spec.scope} | {spec.title} |")
    return "\n".join(lines) + "\n"


def _replace_block(text: str, start: str, end: str, body: str, path) -> str:
    if start not in text or end not in text:
        raise InputError(f"{path}: no {start} ... {end} block to replace")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}{end}{tail}"


def builtin_controls() -> list:
    """Every built-in control, read from its marker (the one place metadata is declared)."""
    import importlib
    import pkgutil

    import pytest_dbsec.checks as checks
    from .findings import Control

    out = []
    for mod in pkgutil.iter_modules(checks.__path__):
        module = importlib.import_module(f"{checks.__name__}.{mod.name}")
        for name, obj in vars(module).items():
            for mark in getattr(obj, "pytestmark", []):
                if name.startswith("test") and getattr(mark, "name", None) == "dbsec":
                    out.append(Control.from_marker(mark.kwargs, f"{mod.name}.py::{name}"))
    area_order = ["IAM", "TOK", "NET", "UC", "CMP", "SEC", "WS", "LOG", "JOB", "INC"]
    return sorted(out, key=lambda c: (area_order.index(c.id.split("-")[0]) if c.id.split("-")[0] in area_order
                                      else 99, c.id))


def controls_markdown(controls) -> str:
    lines = ["| ID | Title | Severity | Scope | Frameworks |", "|---|---|---|---|---|"]
    for c in controls:
        refs = "; ".join(f"{fw} {', '.join(items)}" if items else fw for fw, items in c.refs.items())
        title = c.title.replace("|", "\\|")
        lines.append(f"| {c.id} | {title} | {c.severity} | {c.scope} | {refs.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def _controls(args) -> int:
    controls = builtin_controls()
    if args.format == "json":
        print(json.dumps([c.to_json() for c in controls], indent=2))
        return 0
    table = controls_markdown(controls)
    if not args.write:
        print(table, end="")
        return 0
    path = Path(args.write)
    try:
        text = path.read_text()
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    text = _replace_block(text, TABLE_START, TABLE_END, table, path)
    text = _replace_block(text, SECTIONS_START, SECTIONS_END, sections_markdown(), path)
    path.write_text(text)
    print(f"dbsec: {len(controls)} controls written to {path}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad flags; we promise 4 for bad input
        return USAGE_ERROR if e.code not in (0, None) else 0
    try:
        if args.command == "emulator":
            return _serve(args)
        if args.command == "baseline":
            return _accept(args)
        if args.command == "diff":
            return _diff(args)
        if args.command == "verify":
            return _verify(args)
        if args.command == "controls":
            return _controls(args)
    except InputError as e:
        print(f"dbsec: {e}", file=sys.stderr)
        return USAGE_ERROR
    return USAGE_ERROR


def _serve(args) -> int:
    from .emulator import DEMO_TENANT, TenantError, serve

    tenant = Path(args.tenant) if args.tenant else DEMO_TENANT
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: not a port number")
    try:
        serve(tenant, args.host, args.port)
    except TenantError as e:
        raise InputError(str(e)) from None
    except OSError as e:
        raise InputError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    except KeyboardInterrupt:
        pass
    return 0


def load_findings(path: str | Path) -> dict:
    """A findings.json written by pytest-dbsec, or InputError naming the file and the problem."""
    from .report import FINDINGS_FORMAT, FINDINGS_VERSION

    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    if not isinstance(doc, dict) or doc.get("format") != FINDINGS_FORMAT:
        raise InputError(f"{path}: format: not a pytest-dbsec findings.json (expected {FINDINGS_FORMAT!r})")
    if doc.get("version") != FINDINGS_VERSION:
        raise InputError(f"{path}: version: {doc.get('version')!r} is not supported (expected {FINDINGS_VERSION})")
    if not isinstance(doc.get("results"), list):
        raise InputError(f"{path}: results: expected a list")
    return doc


def _accept(args) -> int:
    from .accepted import AcceptedError, accepted_from_findings, load_doc, merge, write_accepted

    doc = load_findings(args.source)
    out = Path(args.output)
    if out.is_dir():
        raise InputError(f"{out}: is a directory; give a file name")
    try:
        accepted = accepted_from_findings(doc, dt.date.today())
        if out.exists():
            # keep the original acceptance dates; drop what has since been fixed
            accepted = merge(load_doc(out), accepted, prune=True)
        write_accepted(accepted, out)
    except AcceptedError as e:
        raise InputError(str(e)) from None
    n = len(accepted["accepted"])
    print(f"dbsec: {out} now accepts {n} finding{'s' if n != 1 else ''}", file=sys.stderr)
    return 0


def _open_findings(doc: dict) -> dict[str, dict]:
    out = {}
    for r in doc["results"]:
        for f in r.get("findings", []):
            d = f.get("disposition")
            if d is None or not d.get("active", True):
                out[f["fingerprint"]] = {"control_id": r["control_id"], "target": r["target"],
                                         "severity": r["severity"], **{k: f.get(k) for k in (
                                             "resource_type", "resource_id", "resource_name", "seen")}}
    return out


def diff_findings(old: dict, new: dict) -> dict:
    """New and resolved open findings (by fingerprint), and controls whose outcome changed."""
    old_f, new_f = _open_findings(old), _open_findings(new)
    old_o = {(r["control_id"], r["target"]): r["outcome"] for r in old["results"]}
    new_o = {(r["control_id"], r["target"]): r["outcome"] for r in new["results"]}
    return {
        "new": [{"fingerprint": k, **v} for k, v in sorted(new_f.items()) if k not in old_f],
        "resolved": [{"fingerprint": k, **v} for k, v in sorted(old_f.items()) if k not in new_f],
        "changed": [{"control_id": c, "target": t, "old": old_o.get((c, t)), "new": new_o.get((c, t))}
                    for c, t in sorted(set(old_o) | set(new_o)) if old_o.get((c, t)) != new_o.get((c, t))],
    }


def _diff(args) -> int:
    result = diff_findings(load_findings(args.old), load_findings(args.new))
    if args.output == "json":
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        for key, title in (("new", "New findings"), ("resolved", "Resolved findings")):
            print(f"{title}: {len(result[key])}")
            for f in result[key]:
                print(f"  {f['control_id']} [{f['severity']}] {f['target']}: {f['resource_type']} "
                      f"{f['resource_id']} ({f['resource_name']}): {f['seen']}")
        print(f"Changed outcomes: {len(result['changed'])}")
        for c in result["changed"]:
            print(f"  {c['control_id']} {c['target']}: {c['old'] or '-'} -> {c['new'] or '-'}")
    return 1 if result["new"] else 0


def _verify(args) -> int:
    from .report import verify_evidence

    manifest = Path(args.manifest)
    try:
        problems = verify_evidence(manifest)
    except OSError as e:
        raise InputError(f"{manifest}: cannot read: {e.strerror or e}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(f"{manifest}: not a readable evidence manifest: {e}") from None
    for p in problems:
        print(p)
    if not problems:
        print(f"{manifest}: all files intact", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
