"""The ``dbsec`` command: tools around the pytest suite.

    dbsec emulator serve [--tenant FILE] [--port N]       run the Databricks REST emulator
    dbsec baseline accept --from findings.json -o FILE    accept today's open findings
    dbsec diff OLD.json NEW.json [--output text|json]     what changed between two runs
    dbsec verify reports/evidence.json                    check report files against their manifest
    dbsec controls [--format markdown|json] [--write README.md]   the built-in control catalog
    dbsec access (--principal P | --resource R | --group G | --compare A B) SOURCE [--output json|csv|text|html]
                                                          what an identity can reach, and through what
    dbsec run [PYTEST_ARGS...]                           the built-in suite, unattended (a Databricks job, cron)

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

from .graph.access import (ACCOUNT_SECTIONS, CORE_WORKSPACE_SECTIONS, NAMING_WORKSPACE_SECTIONS,
                           OBJECT_WORKSPACE_SECTIONS, ROLE_ACCOUNT_SECTIONS, WORKSPACE_SECTIONS)

USAGE_ERROR = 4


class InputError(Exception):
    """Bad input: one line naming the file and what is wrong with it."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dbsec", description="pytest-dbsec tools")
    sub = p.add_subparsers(dest="command", required=True)

    # parsed by pytest itself (see run_suite); listed here for --help
    sub.add_parser("run", help="run the built-in suite with these pytest arguments (default target: --dbsec)",
                   add_help=False)

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

    acc = sub.add_parser("access", help="incident response: what a principal can reach, who reaches a resource")
    # the question; exactly one, checked in _access so the error is one line naming the flags
    acc.add_argument("--principal", metavar="NAME", help="user name, SP application id or display name, or group")
    acc.add_argument("--resource", metavar="SECURABLE", help="catalog, schema, table, ... : who can reach it")
    acc.add_argument("--group", metavar="NAME", help="a group: its members and what it reaches")
    acc.add_argument("--compare", nargs=2, metavar=("A", "B"), help="what A reaches that B does not, and back")
    # where the data comes from
    acc.add_argument("--databricks-profile", metavar="PROFILE", action="append", default=[],
                     help="~/.databrickscfg profile of a workspace (repeatable)")
    acc.add_argument("--databricks-account-profile", metavar="PROFILE", help="profile for the account APIs")
    acc.add_argument("--workspace-urls", metavar="URL,URL",
                     help="workspace hosts; credentials from the environment (DATABRICKS_TOKEN, ...). With "
                          "--databricks-account-profile alone: the URLs of the account's workspaces, reached "
                          "with the account credentials")
    acc.add_argument("--workspaces", metavar="NAME|ID|GLOB,...",
                     help="with --databricks-account-profile alone: only these of the account's workspaces")
    acc.add_argument("--snapshot", metavar="FILE", help="answer offline from a saved snapshot (no network)")
    acc.add_argument("--demo", action="store_true", help="answer from the embedded demo tenant")
    # what to read and show
    acc.add_argument("--scan-workspace-objects", action="store_true",
                     help="also read object ACLs, jobs/pipelines (run_as) and secret scopes")
    acc.add_argument("--workspace-object-types", metavar="TYPE,TYPE",
                     help="with --scan-workspace-objects: keep only these object types (jobs,pipelines,secrets,...)")
    acc.add_argument("--escalation-check", action="store_true",
                     help="report what the principal can turn into more access")
    acc.add_argument("--sql-warehouse-id", metavar="ID",
                     help="cross-reference system.access.audit through this SQL warehouse (of the first workspace "
                          "given): the principal's recent actions with lasting side effects")
    acc.add_argument("--audit-days", type=int, default=90, metavar="N",
                     help="with --sql-warehouse-id: how many days of audit log to read (default 90, at most 365)")
    acc.add_argument("--expand-inherited", action="store_true",
                     help="list a catalog or schema grant on every schema and table inheriting it, however "
                          "many (default: only up to 1000 per grant; above, the grant says how many it covers)")
    acc.add_argument("--output", choices=("json", "csv", "text", "html"), default="text")
    acc.add_argument("--max-workers", type=int, default=8, help="concurrent API calls per host (default 8)")
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
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:
        return run_suite(argv[1:])
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
        if args.command == "access":
            return _access(args)
    except InputError as e:
        print(f"dbsec: {e}", file=sys.stderr)
        return USAGE_ERROR
    return USAGE_ERROR


# -- dbsec run: the suite as a Databricks job ---------------------------------------------------------

# options that choose what to audit; without one, `dbsec run` audits what the environment authenticates
# to (--dbsec): inside a Databricks job, the job's workspace as the job's own identity
TARGET_OPTIONS = ("--dbsec", "--dbsec-demo", "--dbsec-replay", "--databricks-profile", "--databricks-host",
                  "--databricks-account-profile")


def run_suite(args: list[str]) -> int:
    """``dbsec run [--] [PYTEST_ARGS...]``: run the built-in controls (plus any test paths given) with
    pytest, return pytest's exit code, and say on stdout where the reports went. Made for unattended
    runs: no pytest cache is written, and the current directory is not searched for tests."""
    import pytest

    from .plugin import RUN_KEY, builtin_checks_dir

    args = list(args[1:] if args[:1] == ["--"] else args)
    if not any(a == o or a.startswith(o + "=") for a in args for o in TARGET_OPTIONS):
        args.insert(0, "--dbsec")
    found: dict = {}

    class Reports:  # the plugin's own hook: called once every report is written
        def pytest_dbsec_findings(self, report, config):
            run = config.stash[RUN_KEY]
            found["dir"] = run.report_dir
            found["files"] = [p for p in run.written + [run.report_dir / "compliance.html"] if p.exists()]
            if run.snapshot_out is not None and run.snapshot_out.exists():
                found["files"].append(run.snapshot_out)

    # the built-in suite given explicitly, so that pytest does not search the working directory (in a job,
    # the driver's) when no path is given; the plugin adds it too, and pytest collects a path once
    code = int(pytest.main(["-p", "no:cacheprovider", *args, str(builtin_checks_dir())], plugins=[Reports()]))
    if "dir" in found:
        where = Path(found["dir"]).resolve()
        names = sorted(str(p.resolve().relative_to(where)) if p.resolve().is_relative_to(where) else str(p)
                       for p in found["files"])
        print(f"dbsec run: exit code {code}; reports in {where}: {', '.join(names)}", flush=True)
    else:
        print(f"dbsec run: exit code {code}; no reports written", flush=True)
    return code


def run_main() -> None:
    """The ``dbsec-run`` entry point, for a Databricks ``python_wheel_task``: the task's parameters are
    pytest arguments (as for ``dbsec run``). Databricks calls an entry point and ignores what it returns,
    so a non-zero exit code is raised (SystemExit): the task fails when the gate fails."""
    code = run_suite(sys.argv[1:])
    if code:
        raise SystemExit(code)


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


# -- dbsec access -------------------------------------------------------------------------------

# The access graph's object sections are read only on --scan-workspace-objects: they cost one call
# per object (thousands on a large workspace), and most incident questions start with "which groups,
# workspaces and data" before "which jobs".


def _access(args) -> int:
    from .report import access as report

    questions = [f for f, v in (("--principal", args.principal), ("--resource", args.resource),
                                ("--group", args.group), ("--compare", args.compare)) if v]
    if len(questions) != 1:
        raise InputError("access: give exactly one of --principal, --resource, --group, --compare"
                         + (f" (got {' and '.join(questions)})" if questions else ""))
    live = bool(args.databricks_profile or args.databricks_account_profile or args.workspace_urls)
    sources = [f for f, v in (("--snapshot", args.snapshot), ("--demo", args.demo),
                              ("--databricks-profile/--databricks-account-profile/--workspace-urls", live)) if v]
    if len(sources) != 1:
        raise InputError("access: give one data source: --snapshot FILE, --demo, or --databricks-profile/"
                         "--databricks-account-profile/--workspace-urls" +
                         (f" (got {' and '.join(sources)})" if sources else ""))
    types = None
    if args.workspace_object_types is not None:
        if not args.scan_workspace_objects:
            raise InputError("access: --workspace-object-types filters the object scan; add --scan-workspace-objects")
        types = {t.strip() for t in args.workspace_object_types.split(",") if t.strip()}
        bad = sorted(types - set(report.OBJECT_TYPES))
        if bad or not types:
            raise InputError(f"access: --workspace-object-types: unknown type {', '.join(bad) or '(empty)'} "
                             f"(known: {', '.join(report.OBJECT_TYPES)})")
    if not 1 <= args.max_workers <= 256:
        raise InputError(f"access: --max-workers: must be between 1 and 256, got {args.max_workers}")
    if args.sql_warehouse_id is not None:
        if not args.principal:
            raise InputError("access: --sql-warehouse-id cross-references one principal's actions; use it with --principal")
        if args.snapshot:
            raise InputError("access: --sql-warehouse-id queries a live warehouse; it cannot be used with --snapshot")
        if not args.sql_warehouse_id.strip():
            raise InputError("access: --sql-warehouse-id: empty warehouse id")
    if not 1 <= args.audit_days <= 365:
        # system.access.audit keeps a year of events
        raise InputError(f"access: --audit-days: must be between 1 and 365, got {args.audit_days}")

    if args.workspaces is not None and not (args.databricks_account_profile and not args.databricks_profile):
        raise InputError("access: --workspaces chooses among the account's workspaces: use it with "
                         "--databricks-account-profile alone")

    ws_sections = CORE_WORKSPACE_SECTIONS + (
        _object_sections(types, args.escalation_check) if args.scan_workspace_objects else ())
    # roles on groups/SPs cost one call per identity and only feed escalation findings
    acc_sections = ACCOUNT_SECTIONS + (ROLE_ACCOUNT_SECTIONS if args.escalation_check else ())
    session: dict = {}
    try:
        return _access_answer(args, ws_sections, acc_sections, types, session)
    finally:
        if session.get("emulator") is not None:
            session["emulator"].stop()


def _object_sections(types: set[str] | None, escalation_check: bool) -> tuple[str, ...]:
    """The workspace sections --scan-workspace-objects reads: all of them, or with
    --workspace-object-types only those the asked types need (each ACL type costs a call per object)."""
    if types is None:
        return OBJECT_WORKSPACE_SECTIONS + NAMING_WORKSPACE_SECTIONS
    from .collect.workspace import ACL_OBJECTS
    from .inventory import acl_section

    names: list[str] = []
    for obj_type, list_section, *_ in ACL_OBJECTS:
        if obj_type in types:
            names += [acl_section(obj_type), list_section]  # the list names the objects (and has run_as)
    if types & {"directories", "notebooks", "files", "repos"}:
        names.append("workspace_acls")
        if escalation_check:
            names.append("jobs")  # editing the code a job runs is running as the job's identity
    if "authorization" in types:
        names.append("authorization_acls")
    if "secrets" in types:
        names.append("secrets")
    return tuple(dict.fromkeys(names))


def _access_answer(args, ws_sections, acc_sections, types, session) -> int:
    from .graph.access import INHERIT_EXPAND_LIMIT, AccessGraph, UnknownPrincipal, UnknownResource
    from .report import access as report

    inventory = _access_inventory(args, ws_sections, acc_sections, session)
    # the same restriction for every source: a snapshot answers exactly what a live run would
    inventory, skipped = _restrict(inventory, set(ws_sections) | set(acc_sections))
    graph = AccessGraph.from_inventory(inventory)
    # a section left out on purpose is not a gap; everything else the graph missed is
    gaps = [g for g in graph.gaps if g.split(": ", 1)[0] not in skipped]
    errors = report.error_records(gaps)

    def blast(name: str) -> dict:
        answer = graph.blast_radius(name, expand_inherited=None if args.expand_inherited else INHERIT_EXPAND_LIMIT)
        if not args.escalation_check:
            answer["escalation_findings"] = []
        return report.filter_object_types(answer, types)

    try:
        if args.principal or args.group:
            doc = blast(args.principal or args.group)
            mode = "principal"
            if args.group:
                if doc["principal"]["kind"] != "group":
                    raise InputError(f"access: --group {args.group!r} is a {doc['principal']['kind']}, "
                                     "not a group (use --principal)")
                mode = "group"
                doc["members"] = [
                    {"principal": m, "kind": graph.principals[m].kind if m in graph.principals else "unknown",
                     "chain": chain} for m, chain in sorted(graph.account_closure.members(doc["principal"]["name"])
                                                             .items())]
        elif args.resource:
            mode = "resource"
            typ, full = graph.find_securable(args.resource)
            doc = {"resource": {"securable_type": typ, "full_name": full},
                   "principals": graph.who_can_reach(args.resource)}
        else:
            mode = "compare"
            a, b = blast(args.compare[0]), blast(args.compare[1])
            only_a, only_b = report.compare(a, b)
            doc = {"a": {"principal": a["principal"]}, "b": {"principal": b["principal"]},
                   "only_a": only_a, "only_b": only_b}
    except UnknownPrincipal as e:
        # an empty answer for a typo would read as "this identity reaches nothing": refuse instead
        raise InputError(f"access: unknown principal: {e.args[0]}") from None
    except UnknownResource as e:
        raise InputError(f"access: unknown resource: {e.args[0]}") from None

    if mode == "principal":
        doc["audit_log"], doc["audit_actions"], audit_error = _audit_actions(args, doc["principal"], inventory, session)
        if audit_error is not None:
            errors.append(audit_error)

    doc = {"format": report.ACCESS_FORMAT, "version": report.ACCESS_VERSION, "mode": mode, **doc,
           "errors": errors, "complete": not errors,
           "scanned_workspace_objects": bool(args.scan_workspace_objects),
           "escalation_check": bool(args.escalation_check),
           "workspace_object_types": sorted(types) if types is not None else None,
           "workspaces": sorted(inventory.workspaces)}
    sys.stdout.write(report.render(doc, args.output))
    sys.stdout.flush()
    if errors:
        print(f"dbsec: WARNING: INCOMPLETE ANSWER: {len(errors)} part(s) of the tenant could not be read; "
              "access may be missing from this answer: "
              + "; ".join(f"{e['scope']}{'/' + e['section'] if e['section'] else ''}" for e in errors),
              file=sys.stderr)
    audit = doc.get("audit_log") or {}
    if audit.get("truncated"):
        print(f"dbsec: WARNING: the audit log holds more than {audit['row_cap']} matching actions; only the newest "
              f"{audit['row_cap']} are listed (narrow --audit-days)", file=sys.stderr)
    if mode == "principal" and not audit.get("queried") and audit.get("error") is None:
        print("dbsec: note: the audit log was not queried (add --sql-warehouse-id)", file=sys.stderr)
    if not args.scan_workspace_objects and mode != "resource":
        print("dbsec: note: workspace object ACLs, run_as and secret scopes were not read "
              "(add --scan-workspace-objects)", file=sys.stderr)
    return 0


def _restrict(inventory, keep: set[str]):
    """A copy holding only the sections in ``keep``; returns it and the "scope/section" names left out
    on purpose, so that they are not reported as gaps."""
    from .inventory import Inventory, Scope

    out = Inventory(meta=dict(inventory.meta))
    skipped: set[str] = set()  # "scope/section", the form the graph's gap lines start with

    def copy(sc):
        new = Scope(sc.name, sc.kind, id=sc.id, host=sc.host)
        for name, sec in sc.sections.items():
            if name in keep:
                new.sections[name] = sec
        return new

    if inventory.account is not None:
        out.account = copy(inventory.account)
    for name, sc in inventory.workspaces.items():
        out.workspaces[name] = copy(sc)
    for sc in out.scopes():
        for name in ACCOUNT_SECTIONS + ROLE_ACCOUNT_SECTIONS if sc.kind == "account" else WORKSPACE_SECTIONS:
            if name not in keep:
                skipped.add(f"{sc.name}/{name}")
    return out, skipped


def _audit_actions(args, principal: dict, inventory, session) -> tuple[dict, list[dict], dict | None]:
    """(audit_log summary, audit_actions[], an errors[] record or None) for principal mode."""
    from .collect import describe_failure
    from .collect.audit import ACTION_ROW_CAP, SIDE_EFFECT_ACTIONS, principal_actions
    from .connect import CallLog

    if args.sql_warehouse_id is None:
        return {"queried": False, "reason": "not queried: pass --sql-warehouse-id to read system.access.audit"}, [], None
    ws_name = session.get("warehouse_workspace")
    meta = {"queried": True, "warehouse_id": args.sql_warehouse_id, "workspace_name": ws_name,
            "days": args.audit_days, "row_cap": ACTION_ROW_CAP, "actions": list(SIDE_EFFECT_ACTIONS),
            "truncated": False, "error": None}
    if principal["kind"] == "group":
        meta.update(queried=False, reason="a group does not act: the audit log names users and service principals")
        return meta, [], None
    collector = session.get("collector")
    _progress(f"querying system.access.audit through SQL warehouse {args.sql_warehouse_id} ({ws_name})")
    with CallLog() as log:
        try:
            if collector is None or ws_name is None:
                raise RuntimeError("no workspace to run the query in")
            w = collector.client(ws_name)
            names = {str(sc.id): name for name, sc in inventory.workspaces.items() if sc.id is not None}
            is_sp = principal["kind"] in ("service_principal", "sp")
            records, truncated = principal_actions(
                w, args.sql_warehouse_id, name=principal["name"],
                application_id=principal["name"] if is_sp else None, days=args.audit_days, workspace_names=names)
        except Exception as e:  # noqa: BLE001 -- fail closed: the reason goes to errors[]
            reason = describe_failure(e, log.last, collector._secrets if collector else ())
            meta["error"] = reason
            return meta, [], {"scope": ws_name or "workspace", "section": "audit_log", "message": reason}
    meta["truncated"] = truncated
    meta["calls"] = len(log.calls)
    return meta, records, None


def _access_inventory(args, ws_sections, acc_sections, session):
    """The inventory to answer from: a snapshot as is, or freshly collected (demo or live). ``session``
    receives what a later warehouse query needs: the emulator to stop, the collector, the first workspace."""
    from .inventory import ACCOUNT, OK, Inventory, Scope, SnapshotError

    if args.snapshot:
        try:
            return Inventory.load(args.snapshot)
        except SnapshotError as e:
            raise InputError(f"access: --snapshot {e}") from None
    from .collect import Collector
    from .connect import ConnectError, Target, preflight

    targets: dict[str, Target] = {}
    if args.demo:
        from .emulator import DEMO_TENANT, Emulator

        # the same identity the pytest plugin's --dbsec-demo audits as
        emulator = session["emulator"] = Emulator(DEMO_TENANT).start()
        for ws in emulator.workspaces:
            targets[ws["name"]] = Target(ws["name"], host=ws["url"], workspace_id=ws["id"],
                                         token=emulator.token_for("dbsec-auditor", ws["name"]))
        targets[ACCOUNT] = Target(ACCOUNT, kind="account", host=emulator.account_url,
                                  account_id=emulator.account_id, token=emulator.token_for("dbsec-auditor"))
    elif args.databricks_account_profile and not args.databricks_profile:
        return _account_wide_inventory(args, ws_sections, acc_sections, session)
    else:
        for profile in args.databricks_profile:
            targets[profile] = Target(profile, profile=profile)
        for url in _urls(args):
            targets[_host_label(url)] = Target(_host_label(url), host=url)
        if args.databricks_account_profile:
            targets[ACCOUNT] = Target(ACCOUNT, kind="account", profile=args.databricks_account_profile)
    inv = Inventory(meta={"tool": "dbsec access"})
    ids = {}
    for name, target in targets.items():
        # one bounded check per target, so a typo in a profile or host is exit 4 within seconds,
        # not a report full of errors
        _progress(f"checking {target.describe()}")
        try:
            ids[name] = preflight(target)[1]
        except ConnectError as e:
            raise InputError(f"access: {e}") from None
    collector = None
    names: dict[str, str] = {}
    if ACCOUNT in targets:
        inv.account = Scope(ACCOUNT, "account", id=ids.get(ACCOUNT))
        collector = Collector(inv, {ACCOUNT: targets[ACCOUNT]}, max_workers=args.max_workers, progress=_progress)
        collector.ensure([(ACCOUNT, s) for s in acc_sections])
        sec = inv.account.section("account_workspaces")
        if sec.status == OK:
            names = {str(w.get("workspace_id")): w.get("workspace_name")
                     for w in (sec.data or {}).get("workspaces") or [] if w.get("workspace_name")}
    # name each workspace as the account does: the graph joins account assignments to workspaces
    # by name, and a profile name ("prod") is rarely the workspace name ("corp-prod-us-east-1")
    named: dict[str, Target] = {ACCOUNT: targets[ACCOUNT]} if ACCOUNT in targets else {}
    for name, target in targets.items():
        if name == ACCOUNT:
            continue
        ws_name = names.get(str(ids.get(name)), name)
        if ws_name in named:
            raise InputError(f"access: {target.describe()} is the same workspace as another target ({ws_name})")
        named[ws_name] = target
        inv.workspaces[ws_name] = Scope(ws_name, "workspace", id=target.workspace_id or ids.get(name),
                                        host=target.host)
    wanted = [(ws, s) for ws in inv.workspaces for s in ws_sections]
    session["collector"] = Collector(inv, named, max_workers=args.max_workers, progress=_progress)
    session["collector"].ensure(wanted)
    # the warehouse belongs to the first workspace given (demo: prod)
    session["warehouse_workspace"] = next((n for n in named if n != ACCOUNT), None)
    return inv


def _urls(args) -> list[str]:
    from .targets import TargetError, parse_urls

    try:
        return parse_urls(args.workspace_urls, "access: --workspace-urls")
    except TargetError as e:
        raise InputError(str(e)) from None


def _account_wide_inventory(args, ws_sections, acc_sections, session):
    """Every workspace of the account (or those --workspaces picks), reached with the account's
    credentials, as an account-wide pytest run does (pytest_dbsec/targets.py). A workspace that cannot
    be read is a gap in the answer, said on stderr, not a reason to give no answer."""
    import dataclasses

    from .collect import Collector
    from .collect.account import WORKSPACE_LIST
    from .connect import CallLog, ConnectError, Target, account_client, list_workspaces, preflight, workspace_client
    from .inventory import ACCOUNT, Inventory, Scope
    from .targets import TargetError, cannot_connect, plan

    urls = _urls(args)
    account = Target(ACCOUNT, kind="account", profile=args.databricks_account_profile)
    _progress(f"listing the workspaces of {account.describe()}")
    try:
        with CallLog() as listing:
            listed = list_workspaces(account)
        workspaces = plan(listed, args.workspaces, urls, account, "access: --workspaces", "access: --workspace-urls")
    except ConnectError as e:
        raise InputError(f"access: {e}") from None
    except TargetError as e:
        raise InputError(str(e)) from None
    inv = Inventory(meta={"tool": "dbsec access"})
    inv.account = Scope(ACCOUNT, "account")
    targets: dict[str, Target] = {ACCOUNT: account}
    unavailable: dict[str, str] = {}
    for w in workspaces:
        targets[w.name] = target = w.target(account)
        inv.workspaces[w.name] = Scope(w.name, "workspace", id=w.id, host=w.url)
        if w.unavailable is None:
            _progress(f"checking {target.describe()}")
            try:
                preflight(target)
            except ConnectError as e:
                w = dataclasses.replace(w, unavailable=cannot_connect(e))
        if w.unavailable is not None:
            unavailable[w.name] = w.unavailable
            _progress(f"workspace {w.name}: {w.unavailable}")

    def client(target: Target):
        if target.name in unavailable:
            raise ConnectError(unavailable[target.name])
        return account_client(target) if target.kind == "account" else workspace_client(target)

    wanted = [(ACCOUNT, s) for s in acc_sections] + [(ws, s) for ws in inv.workspaces for s in ws_sections]
    session["collector"] = Collector(inv, targets, max_workers=args.max_workers, progress=_progress,
                                     client_factory=client)
    session["collector"].seed(WORKSPACE_LIST, listed, listing.calls)  # listed once: the section starts from it
    session["collector"].ensure(wanted)
    # the warehouse belongs to the first workspace of the account that can be read
    session["warehouse_workspace"] = next((n for n in inv.workspaces if n not in unavailable), None)
    return inv


def _host_label(url: str) -> str:
    from urllib.parse import urlparse

    netloc = urlparse(url if "://" in url else f"https://{url}").netloc
    return netloc or url


def _progress(message: str) -> None:
    print(f"dbsec: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
