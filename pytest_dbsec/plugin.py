"""The pytest plugin: options, markers, fixtures and session hooks.

This is the only module that knows pytest's hooks. The flow of one run:

1. ``pytest_configure``: read options, decide the targets (profile / host / environment / demo
   emulator / replayed snapshot), load the baseline; bad input is a UsageError (exit code 4).
   When active, the built-in controls (``pytest_dbsec.checks``) are added to the collection.
2. Collection: every ``dbsec``-marked test is validated (bad metadata is a collection error) and
   parametrized per workspace (or once for the account).
3. Before the first test: preflight each live target (bounded in time), then collect the data
   sections the selected controls declare, concurrently, with progress on stderr.
4. Each control: setup ERRORs if a section it needs could not be read; otherwise it runs against
   the inventory and fails if it recorded findings.
5. ``pytest_sessionfinish``: findings and the snapshot are written, marked incomplete if any data
   was missing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from contextlib import contextmanager
import time
from pathlib import Path
from typing import Any

import pytest

from . import __version__, connect, hooks
from .accepted import AcceptedError, AcceptedSet
from .baseline import Baseline, BaselineError
from .collect import Collector, known_sections, section
from .connect import ConnectError, Target, preflight, runtime_host
from .findings import (ACCEPTED, ATTESTED, ERROR, FAILED, PASSED, SEVERITIES, SKIPPED, WAIVED, Control,
                       ControlDefinitionError, FindingRecorder, Outcome, accepted_status, apply_dispositions,
                       check_attestation, gate, verdict, waiver_statuses)
from .inventory import ACCOUNT, ACL_SECTIONS, ERROR as SECTION_ERROR, LEGACY_ACL_SECTION, OK, Inventory, Scope, \
    SectionUnavailable, SnapshotError, iso, merged_acls, parse_iso, utcnow
from .report import RunReport, write_evidence, write_reports

RUN_KEY = pytest.StashKey["DbsecRun"]()
CONTROL_KEY = pytest.StashKey[Control]()
RECORDER_KEY = pytest.StashKey[FindingRecorder]()
ATTESTATION_KEY = pytest.StashKey[dict]()
FAIL_ON_CHOICES = SEVERITIES + ("none",)
# the areas of the built-in catalog (shared/controls.md)
BUILTIN_AREAS = {"IAM", "TOK", "NET", "UC", "CMP", "SEC", "WS", "LOG", "JOB", "INC"}

# The demo tenant's auditing identity: a workspace admin in each workspace and an account admin.
DEMO_AUDITOR = "dbsec-auditor"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dbsec", "Databricks security compliance (pytest-dbsec)")
    group.addoption("--databricks-profile", metavar="NAME",
                    help="~/.databrickscfg profile of the workspace to audit (resolved by the SDK)")
    group.addoption("--databricks-host", metavar="URL",
                    help="workspace URL to audit; credentials from the environment (DATABRICKS_TOKEN, ...)")
    group.addoption("--databricks-account-profile", metavar="NAME",
                    help="~/.databrickscfg profile for account-level APIs (needs account_id)")
    group.addoption("--dbsec-workspaces", metavar="NAME|ID|GLOB,...",
                    help="with --databricks-account-profile alone: audit only these of the account's workspaces")
    group.addoption("--dbsec-workspace-urls", metavar="URL,URL",
                    help="with --databricks-account-profile alone: the URLs of the account's workspaces (matched "
                         "by workspace id; default: each deployment's URL in the account's cloud)")
    group.addoption("--dbsec", action="store_true",
                    help="audit the workspace configured by DATABRICKS_* environment variables / default profile "
                         "(inside a Databricks job or notebook: the workspace it runs in, as its identity)")
    group.addoption("--dbsec-demo", action="store_true",
                    help="audit the embedded demo workspaces (starts the Databricks emulator in-process)")
    group.addoption("--dbsec-replay", metavar="FILE",
                    help="evaluate a saved snapshot offline: no network")
    group.addoption("--dbsec-snapshot-out", metavar="FILE",
                    help="save what was collected as a snapshot (gzip if FILE ends in .gz)")
    group.addoption("--dbsec-report-dir", metavar="DIR", help="where reports go (default: reports/)")
    group.addoption("--dbsec-max-workers", metavar="N", type=int,
                    help="concurrent API calls per host during collection (default: 8)")
    group.addoption("--dbsec-baseline", metavar="NAME|PATH",
                    help="baseline of thresholds, allowlists, waivers and attestations (default: the shipped 'default')")
    group.addoption("--dbsec-accepted", metavar="FILE",
                    help="accepted findings (from `dbsec baseline accept`): reported, but only new failures fail")
    group.addoption("--dbsec-fail-on", metavar="SEVERITY", choices=FAIL_ON_CHOICES,
                    help="exit 1 only for an open failure at or above this severity "
                         "(critical|high|medium|low|info|none; default: low)")
    group.addoption("--dbsec-allow-errors", action="store_true",
                    help="controls that could not read their data do not fail the run (they are still reported)")
    group.addoption("--dbsec-principal", metavar="NAME",
                    help="post-incident verification: run only the INC controls for this identity (userName, "
                         "service principal applicationId or display name, or group); without it INC is deselected")
    group.addoption("--dbsec-containment-plan", action="store_true",
                    help="with --dbsec-principal: print the ordered steps that remove the access it still has "
                         "(printed, never executed)")
    group.addoption("--dbsec-warehouse-id", metavar="ID",
                    help="SQL warehouse (of the first audited workspace) for reading system.access.audit: "
                         "IAM-06/IAM-07 then judge audit-log activity too")
    group.addoption("--dbsec-uc-via", choices=("rest", "sql"), default=None,
                    help="how Unity Catalog ownership, grants, masks and column tags are read: 'rest' (default; one "
                         "call per securable) or 'sql' (a dozen system.information_schema queries on "
                         "--dbsec-warehouse-id; needs a metastore admin, else the UC controls ERROR)")
    parser.addini("dbsec_report_dir", "where pytest-dbsec writes reports", default="reports")
    parser.addini("dbsec_warehouse_id", "default --dbsec-warehouse-id", default="")
    parser.addini("dbsec_uc_via", "default --dbsec-uc-via (rest or sql)", default="rest")
    parser.addini("dbsec_max_workers", "concurrent API calls per host during collection", default="8")
    parser.addini("dbsec_baseline", "baseline name or path", default="default")
    parser.addini("dbsec_fail_on", "default --dbsec-fail-on", default="low")
    parser.addini("databricks_profile", "default --databricks-profile", default="")
    parser.addini("databricks_account_profile", "default --databricks-account-profile", default="")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


@pytest.hookimpl(tryfirst=True)  # before pytest-html reads its options
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "dbsec(id, title, severity, scope, sections, refs, rationale, remediation, verified_by): "
        "declares a Databricks security control (see pytest_dbsec.findings)",
    )
    if not _is_active(config):
        if config.getoption("dbsec_principal") or config.getoption("dbsec_containment_plan"):
            raise pytest.UsageError("--dbsec-principal/--dbsec-containment-plan need a Databricks target: "
                                    "--databricks-profile/--databricks-account-profile, --dbsec-demo or --dbsec-replay")
        return
    if config.getoption("dbsec_containment_plan") and not config.getoption("dbsec_principal"):
        raise pytest.UsageError("--dbsec-containment-plan needs --dbsec-principal NAME (whose access to remove)")
    config.hook.pytest_dbsec_register_sections(section=section)
    run = DbsecRun.from_config(config)
    config.stash[RUN_KEY] = run
    config.pluginmanager.register(run, "dbsec-run")
    config.add_cleanup(run.close)
    # the built-in suite ships in the wheel; collect it beside whatever the user asked for
    config.args.append(str(builtin_checks_dir()))
    # waived and accepted controls are xfailed: list them in the short summary, never out of sight
    chars = getattr(config.option, "reportchars", None)
    if isinstance(chars, str) and "x" not in chars and "N" not in chars and "a" not in chars and "A" not in chars:
        config.option.reportchars = chars + "x"
    if not run.is_worker and config.pluginmanager.hasplugin("html"):
        from .report import html

        html.configure(config, run.report_dir / "compliance.html", lambda: run.report)


def _opt(config: pytest.Config, name: str, ini: str | None = None) -> Any:
    value = config.getoption(name)
    if value in (None, "", False) and ini:
        value = config.getini(ini) or None
    return value


def _is_active(config: pytest.Config) -> bool:
    return any(_opt(config, n, i) for n, i in (
        ("databricks_profile", "databricks_profile"), ("databricks_host", None),
        ("databricks_account_profile", "databricks_account_profile"), ("dbsec", None),
        ("dbsec_demo", None), ("dbsec_replay", None)))


@functools.cache
def builtin_checks_dir() -> Path:
    import pytest_dbsec.checks as checks

    return Path(checks.__file__).parent


class DbsecRun:
    """Everything one pytest-dbsec run knows: targets, inventory, baseline, outcomes."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.targets: dict[str, Target] = {}  # scope name -> Target
        self.workspace_names: list[str] = []
        self.inventory = Inventory()
        self.collector: Collector | None = None
        self.replay: Path | None = None
        self.emulator = None
        self.outcomes: list[Outcome] = []
        self.selected: set[str] = set()  # nodeids of the controls this run was asked to judge
        self.started = utcnow()
        self.interrupted = False
        self.aborted = False  # a usage error stopped the run before any control ran
        self.source = "live"
        self.max_workers = 8
        self.report_dir = Path("reports")
        self.snapshot_out: Path | None = None
        self.baseline: Baseline | None = None
        self.written: list[Path] = []
        self.accepted: AcceptedSet | None = None
        self.fail_on = "low"
        self.allow_errors = False
        self.known_controls: set[str] = set()
        self.auth_types: dict[str, str] = {}  # scope name -> how the SDK authenticated (pat, runtime, ...)
        self.other_failures = 0  # ordinary (non-control) tests that failed in the same session
        self.report: RunReport | None = None
        # under pytest-xdist, workers run controls and the controller writes the reports
        self.is_worker = hasattr(config, "workerinput")
        self.shared_cache: Path | None = None  # the folder where xdist workers share what they collected
        # account-wide runs: every workspace the account lists, with its URL or why it cannot be audited
        self.account_workspaces: list | None = None
        # the account's workspace list as read to plan the run (wire dicts) and the calls that read it:
        # the account_workspaces section starts from it instead of listing again
        self.workspace_listing: dict | None = None
        self.unavailable: dict[str, str] = {}  # scope name -> why it cannot be read (its controls ERROR)
        self._preflighted: set[str] = set()
        self._needed: set[tuple[str, str]] = set()  # what the selected controls read (xdist: per scope, lazily)
        self._synced: set[str] = set()  # scopes this xdist worker has brought in line with the shared cache
        self._graph = None  # the access graph, built on first use by the INC controls
        self._graph_needed: set[tuple[str, str]] = set()  # what it is read from, for the selected controls

    # -- set-up from options --------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: pytest.Config) -> "DbsecRun":
        run = cls(config)
        profile = _opt(config, "databricks_profile", "databricks_profile")
        host = config.getoption("databricks_host")
        account_profile = _opt(config, "databricks_account_profile", "databricks_account_profile")
        demo = config.getoption("dbsec_demo")
        replay = config.getoption("dbsec_replay")
        from_env = config.getoption("dbsec")

        if replay and (demo or profile or host or account_profile or from_env):
            raise pytest.UsageError("--dbsec-replay evaluates a saved snapshot offline; it cannot be combined "
                                    "with --dbsec-demo, --dbsec, --databricks-profile/-host/-account-profile")
        if replay and config.getoption("dbsec_warehouse_id"):
            raise pytest.UsageError("--dbsec-warehouse-id reads a live SQL warehouse; --dbsec-replay judges the "
                                    "audit_activity the snapshot already holds")
        uc_via = _opt(config, "dbsec_uc_via", "dbsec_uc_via") or "rest"
        if uc_via not in ("rest", "sql"):
            raise pytest.UsageError(f"dbsec_uc_via (ini) must be 'rest' or 'sql', not {uc_via!r}")
        if uc_via == "sql" and replay:
            raise pytest.UsageError("--dbsec-uc-via sql reads a live SQL warehouse; --dbsec-replay judges the "
                                    "uc data the snapshot already holds")
        if uc_via == "sql" and not replay and not _opt(config, "dbsec_warehouse_id", "dbsec_warehouse_id"):
            raise pytest.UsageError("--dbsec-uc-via sql needs --dbsec-warehouse-id (the SQL warehouse that runs the "
                                    "system.information_schema queries)")
        if demo and (profile or host or account_profile or from_env):
            raise pytest.UsageError("--dbsec-demo audits the embedded demo tenant; it cannot be combined with "
                                    "--dbsec, --databricks-profile, --databricks-host or --databricks-account-profile")
        if profile and host:
            raise pytest.UsageError("give either --databricks-profile or --databricks-host, not both")
        account_wide = bool(account_profile) and not (profile or host or from_env)
        for flag in ("dbsec_workspaces", "dbsec_workspace_urls"):
            if config.getoption(flag) is not None and not account_wide:
                raise pytest.UsageError(f"--{flag.replace('_', '-')} chooses among the account's workspaces: use it "
                                        "with --databricks-account-profile alone (not with --databricks-profile, "
                                        "--databricks-host, --dbsec, --dbsec-demo or --dbsec-replay)")
        workers = config.getoption("dbsec_max_workers")
        if workers is None:
            try:
                workers = int(config.getini("dbsec_max_workers"))
            except ValueError:
                raise pytest.UsageError(f"ini option dbsec_max_workers: not a whole number: "
                                        f"{config.getini('dbsec_max_workers')!r}") from None
        if workers < 1 or workers > 256:
            raise pytest.UsageError(f"--dbsec-max-workers: must be between 1 and 256, got {workers}")
        run.max_workers = workers
        run.report_dir = Path(_opt(config, "dbsec_report_dir", "dbsec_report_dir") or "reports")
        snapshot_out = config.getoption("dbsec_snapshot_out")
        run.snapshot_out = Path(snapshot_out) if snapshot_out else None
        if run.snapshot_out and run.snapshot_out.is_dir():
            raise pytest.UsageError(f"--dbsec-snapshot-out {run.snapshot_out}: is a directory; give a file name")
        if not run.is_worker:
            _check_writable_dir("--dbsec-report-dir", run.report_dir)
            if run.snapshot_out:
                _check_writable_dir("--dbsec-snapshot-out", run.snapshot_out.parent, run.snapshot_out)
        # the demo tenant comes with its organisation's declarations (break-glass, elevations, ...)
        default_baseline = "demo" if demo else "default"
        try:
            run.baseline = Baseline.load(config.getoption("dbsec_baseline") or
                                         (None if demo else config.getini("dbsec_baseline")) or default_baseline)
        except BaselineError as e:
            raise pytest.UsageError(f"baseline: {e}") from None
        accepted = config.getoption("dbsec_accepted")
        if accepted:
            try:
                run.accepted = AcceptedSet.load(accepted)
            except AcceptedError as e:
                raise pytest.UsageError(f"--dbsec-accepted: {e}") from None
        run.fail_on = config.getoption("dbsec_fail_on") or config.getini("dbsec_fail_on") or "low"
        if run.fail_on not in FAIL_ON_CHOICES:
            raise pytest.UsageError(f"ini option dbsec_fail_on: {run.fail_on!r} is not one of "
                                    f"{', '.join(FAIL_ON_CHOICES)}")
        run.allow_errors = bool(config.getoption("dbsec_allow_errors"))
        if run.is_worker and config.workerinput.get("dbsec_cache"):
            run.shared_cache = Path(config.workerinput["dbsec_cache"])

        if replay:
            run._setup_replay(Path(replay))
        elif demo:
            run._setup_demo()
        else:
            if profile or host or from_env:
                # inside a Databricks job or notebook, --dbsec audits the workspace the job runs in, as
                # the job's identity; the runtime names that workspace
                name = profile or _host_name(host or os.environ.get("DATABRICKS_HOST", "")
                                             or (runtime_host() if from_env else None) or "") or "default"
                run.targets[name] = Target(name=name, profile=profile, host=host)
                run.workspace_names.append(name)
            if account_profile:
                run.targets[ACCOUNT] = Target(name=ACCOUNT, kind="account", profile=account_profile)
            if account_wide:
                run._setup_account_wide()
        if run.replay is None:
            run.inventory.account = Scope(ACCOUNT, "account", host=None) if ACCOUNT in run.targets else None
            for name in run.workspace_names:
                t = run.targets[name]
                run.inventory.workspaces[name] = Scope(name, "workspace", id=t.workspace_id, host=t.host,
                                                       unread=run.unavailable.get(name))
            run.inventory.meta.update(run._meta())
            # the audit-log section reads these; break-glass names come from the baseline so that their events
            # are fetched (the section records which names it covered)
            options = {"warehouse_id": _opt(config, "dbsec_warehouse_id", "dbsec_warehouse_id"),
                       "warehouse_workspace": run.workspace_names[0] if run.workspace_names else None,
                       "audit_principals": tuple(run.baseline.break_glass.principals),
                       "uc_via": _opt(config, "dbsec_uc_via", "dbsec_uc_via") or "rest"}
            run.collector = Collector(run.inventory, run.targets, max_workers=workers, progress=run.progress,
                                      client_factory=run._client, options=options)
            run.collector.shared_section = run._shared_section
            if run.workspace_listing is not None:
                from .collect.account import WORKSPACE_LIST

                run.collector.seed(WORKSPACE_LIST, run.workspace_listing["workspaces"], run.workspace_listing["calls"])
        return run

    def _setup_replay(self, path: Path) -> None:
        try:
            self.inventory = Inventory.load(path)
        except SnapshotError as e:
            raise pytest.UsageError(f"--dbsec-replay: {e}") from None
        self.replay = path
        self.source = "replay"
        self.workspace_names = list(self.inventory.workspaces)

    def _setup_account_wide(self) -> None:
        """Every workspace of the account (or those --dbsec-workspaces picks), reached with the account's
        credentials. The controller lists them once; xdist workers get the list from it."""
        from .targets import AccountWorkspace, TargetError, parse_urls, plan

        account = self.targets[ACCOUNT]
        if self.is_worker and "dbsec_workspaces" in self.config.workerinput:
            workspaces = [AccountWorkspace.from_json(w) for w in json.loads(self.config.workerinput["dbsec_workspaces"])]
            self.workspace_listing = json.loads(self.config.workerinput["dbsec_workspace_listing"])
        else:
            try:
                urls = parse_urls(self.config.getoption("dbsec_workspace_urls"), "--dbsec-workspace-urls")
                started = time.monotonic()
                with connect.CallLog() as log:
                    listed = connect.list_workspaces(account)  # also proves the account credentials
                self.workspace_listing = {"workspaces": listed, "calls": log.calls}
                self.progress(f"connected to {account.describe()}: {len(listed)} workspaces "
                              f"({time.monotonic() - started:.1f}s)")
                workspaces = plan(listed, self.config.getoption("dbsec_workspaces"), urls, account,
                                  "--dbsec-workspaces", "--dbsec-workspace-urls")
            except TargetError as e:
                raise pytest.UsageError(str(e)) from None
            except ConnectError as e:
                raise pytest.UsageError(f"cannot connect: {e}") from None
            for w in workspaces:
                if w.unavailable:
                    self.progress(f"workspace {w.name}: {w.unavailable}")
        self._preflighted.add(ACCOUNT)
        self.account_workspaces = workspaces
        for w in workspaces:
            self.targets[w.name] = w.target(account)
            self.workspace_names.append(w.name)
            if w.unavailable:
                self.unavailable[w.name] = w.unavailable

    def _setup_demo(self) -> None:
        from .emulator import DEMO_TENANT, Emulator

        self.emulator = Emulator(DEMO_TENANT).start()
        self.source = "demo"
        emu = self.emulator
        for ws in emu.workspaces:
            self.targets[ws["name"]] = Target(name=ws["name"], host=ws["url"], workspace_id=ws["id"],
                                              token=emu.token_for(DEMO_AUDITOR, ws["name"]))
            self.workspace_names.append(ws["name"])
        self.targets[ACCOUNT] = Target(name=ACCOUNT, kind="account", host=emu.account_url,
                                       account_id=emu.account_id, token=emu.token_for(DEMO_AUDITOR))

    def _meta(self) -> dict:
        import databricks.sdk.version as sdk_version

        return {
            "tool": "pytest-dbsec",
            "tool_version": __version__,
            "sdk_version": sdk_version.__version__,
            "source": self.source,
            "started": iso(self.started),
            "targets": {n: {"kind": t.kind, "host": t.host or self._scope_host(n), "profile": t.profile,
                            "auth": self.auth_types.get(n),
                            **({"via": "account"} if t.via is not None else {})}
                        for n, t in self.targets.items()},
        }

    def _scope_host(self, name: str) -> str | None:
        return self.inventory.scope(name).host if self._has_scope(name) else None

    def close(self) -> None:
        if self.shared_cache is not None and not self.is_worker:
            import shutil

            shutil.rmtree(self.shared_cache, ignore_errors=True)
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None

    # -- data ----------------------------------------------------------------------------------

    def progress(self, message: str) -> None:
        """Progress goes to stderr, past pytest's capture, so stdout stays data."""
        if self.config.getoption("verbose") < -1:
            return
        capman = self.config.pluginmanager.getplugin("capturemanager")
        if capman is not None:
            with capman.global_and_fixture_disabled():
                sys.stderr.write(f"dbsec: {message}\n")
                sys.stderr.flush()
        else:
            sys.stderr.write(f"dbsec: {message}\n")

    def prepare(self, items: list[pytest.Item]) -> None:
        """Preflight the live targets and collect every section the selected controls declare."""
        if self.collector is None:
            return
        needed: set[tuple[str, str]] = set()
        for item in items:
            control = item.stash.get(CONTROL_KEY, None)
            target = _target_of(item)
            if control is None or target is None or not self._has_scope(target):
                continue
            needed.update((target, s) for s in control.sections)
            if "access_graph" in getattr(item, "fixturenames", ()):
                builtin = Path(item.path).parent == builtin_checks_dir()
                self._graph_needed |= self._graph_sections(control.id if builtin else None)
        needed |= self._graph_needed
        self._needed = needed
        if not needed:
            return
        if self.shared_cache is None:
            self._collect(needed)
            self._check_principal(items)
        # pytest-xdist: each scope is collected when a worker first runs a control on it (``sync``)

    def sync(self, scopes: set[str]) -> None:
        """xdist worker: bring these scopes in line with the shared cache, collecting only what no worker
        has collected yet, so the inventory is fetched once per run whatever the number of workers. One
        lock per scope: workers collecting different workspaces do not wait for each other."""
        if self.shared_cache is None or self.collector is None:
            return
        for scope in sorted(s for s in scopes - self._synced if self._has_scope(s)):
            with self._cached_scope(scope):
                self._collect({(sc, n) for sc, n in self._needed if sc == scope})
            self._synced.add(scope)

    @contextmanager
    def _cached_scope(self, scope: str):
        """xdist worker: hold the scope's lock, with what other workers cached of it merged into this
        inventory; on exit, the scope as this worker now has it goes back to the cache."""
        path = self.shared_cache / f"{hashlib.sha256(scope.encode()).hexdigest()[:20]}.json"
        with _file_lock(path.with_name(path.name + ".lock")):
            if path.exists():
                for cached in Inventory.load(path).scopes():
                    mine = self.inventory.scope(scope)
                    for sec in cached.sections.values():
                        if mine.section(sec.name).status == "absent":
                            self.inventory.put(scope, sec)
                    mine.id = mine.id if mine.id is not None else cached.id
                    mine.unread = mine.unread or cached.unread
            yield
            mine = self.inventory.scope(scope)
            alone = Inventory(account=mine) if scope == ACCOUNT else Inventory(workspaces={scope: mine})
            alone.save(path)

    def _shared_section(self, scope: str, name: str, collect) -> None:
        """The collector's way to an account section a workspace section needs (``account_needs``: the
        account's identities for ``admin_assignments``). Under xdist: from the cache the workers share,
        read (and cached) under the account scope's lock only if no worker has yet -- so workers running
        different workspaces read it once between them. Otherwise: read here, once per run."""
        if self.shared_cache is None:
            collect()
            return
        with self._cached_scope(scope):
            if self.inventory.scope(scope).section(name).status == "absent":
                collect()

    def _collect(self, needed: set[tuple[str, str]]) -> None:
        missing = {(sc, n) for sc, n in needed if self.inventory.scope(sc).section(n).status == "absent"}
        for scope in sorted({sc for sc, _ in missing} - self._preflighted - set(self.unavailable)):
            target = self.targets[scope]
            started = time.monotonic()
            try:
                connected = preflight(target)
            except ConnectError as e:
                if target.via is None:
                    self.aborted = True
                    raise pytest.UsageError(f"cannot connect: {e}") from None
                # one workspace of an account-wide run: its controls ERROR with the reason, the others run
                from .targets import cannot_connect

                self.unavailable[scope] = self.inventory.scope(scope).unread = cannot_connect(e)
                self.progress(f"workspace {scope}: {self.unavailable[scope]}")
                continue
            self._preflighted.add(scope)
            inv_scope = self.inventory.scope(scope)
            inv_scope.id = _as_int(connected.id)
            # a target without a host (--dbsec: the environment or the Databricks runtime chose it):
            # the reports still say which workspace was read
            inv_scope.host = inv_scope.host or connected.host
            if connected.auth_type:
                self.auth_types[scope] = connected.auth_type
            self.progress(f"connected to {target.describe()}{'' if target.host else f' at {connected.host}'} "
                          f"as {connected.who} ({connected.auth_type} auth, {time.monotonic() - started:.1f}s)")
        self.collector.ensure(sorted(missing))

    def check_targets(self) -> None:
        """Preflight the targets the user named (not the workspaces found through the account, which
        ERROR one by one): a UsageError for the first that fails."""
        for name, target in self.targets.items():
            if target.via is None and name not in self._preflighted:
                try:
                    preflight(target)
                except ConnectError as e:
                    self.aborted = True
                    raise pytest.UsageError(f"cannot connect: {e}") from None

    def _client(self, target: Target):
        """The collector's SDK clients. A scope known to be unreadable fails at once with its reason, so
        each section of it (and each control that needs one) says why."""
        reason = self.unavailable.get(target.name)
        if reason is not None:
            raise ConnectError(reason)
        return connect.account_client(target) if target.kind == "account" else connect.workspace_client(target)

    def _graph_sections(self, control_id: str | None = None) -> set[tuple[str, str]]:
        """The (scope, section) pairs the access graph is read from for one control, for the scopes of
        this run: a built-in INC control reads what its answer rests on (``NEEDS``), so ``-k INC_04``
        reads tokens, not every object ACL; any other control using the ``access_graph`` fixture (a
        user's own) gets every section the graph is built from. A section not read is a gap in the
        graph, which errors only the controls that need it."""
        from .checks.incident import NEEDS
        from .graph.access import ACCOUNT_SECTIONS, NAMING_WORKSPACE_SECTIONS, WORKSPACE_SECTIONS

        wanted = NEEDS.get(control_id) if control_id is not None else None
        if wanted is None:
            wanted = set(ACCOUNT_SECTIONS) | set(WORKSPACE_SECTIONS) | set(NAMING_WORKSPACE_SECTIONS)
        out = {(ACCOUNT, s) for s in wanted if s in ACCOUNT_SECTIONS} if self.inventory.account is not None else set()
        return out | {(ws, s) for ws in self.inventory.workspaces for s in wanted if s not in ACCOUNT_SECTIONS}

    def access_graph(self):
        """The access graph over everything this run can read (built once). A section that cannot be
        read is not raised here: it becomes a gap, and each INC control errors on the gaps its own
        answer depends on (a denied secrets read must not hide the verdict on tokens)."""
        if self._graph is None:
            from .graph.access import AccessGraph

            if self.collector is not None:
                # what the selected controls need (prepare); every graph section if prepare did not run
                self.collector.ensure(sorted(self._graph_needed or self._graph_sections()))
            self._graph = AccessGraph.from_inventory(self.inventory)
        return self._graph

    def _check_principal(self, items: list[pytest.Item]) -> None:
        """An unknown --dbsec-principal is a usage error (exit 4), said before any control runs -- but
        only when the identity data was read: on a partial read the INC controls ERROR instead."""
        principal = self.config.getoption("dbsec_principal")
        if not principal or self.is_worker or not any("access_graph" in getattr(i, "fixturenames", ())
                                                       for i in items):
            return
        from .graph.access import UnknownPrincipal

        graph = self.access_graph()
        try:
            graph.resolve(principal)
        except UnknownPrincipal as e:
            if self.inventory.account is not None and \
                    self.inventory.account.section("account_identities").status == OK:
                self.aborted = True
                raise pytest.UsageError(f"--dbsec-principal: {e.args[0]}") from None

    def check_principal_early(self) -> None:
        """xdist controller: an unknown --dbsec-principal is exit 4 before any worker runs a control, as
        in a single process. Only the account's identities are read (the principal is an account
        identity; without them the INC controls ERROR instead), through the shared cache, so the workers
        find them there and do not read them again -- and a worker running INC-04 alone reads no
        workspace identities, as in a single process."""
        principal = self.config.getoption("dbsec_principal")
        if not principal:
            return
        if self.collector is not None:
            self._needed = {(ACCOUNT, "account_identities")} if self._has_scope(ACCOUNT) else set()
            self.sync({sc for sc, _ in self._needed})
            self._needed = set()
        from .graph.access import AccessGraph, UnknownPrincipal

        try:
            AccessGraph.from_inventory(self.inventory).resolve(principal)
        except UnknownPrincipal as e:
            if self.inventory.account is not None and \
                    self.inventory.account.section("account_identities").status == OK:
                self.aborted = True
                raise pytest.UsageError(f"--dbsec-principal: {e.args[0]}") from None

    def today(self):
        """The date waivers and attestations are judged on: when the data was read, so that a
        replayed snapshot gives the verdicts of its own day."""
        times = [s.collected_at for sc in self.inventory.scopes() for s in sc.sections.values() if s.collected_at]
        return (parse_iso(min(times)) if times else self.started).date()

    def _has_scope(self, name: str) -> bool:
        return name == ACCOUNT and self.inventory.account is not None or name in self.inventory.workspaces

    def require(self, target: str, sections: tuple[str, ...]) -> None:
        """Raise SectionUnavailable unless every section is readable for this target (fail closed)."""
        if not self._has_scope(target):
            reason = ("no account credentials: pass --databricks-account-profile" if target == ACCOUNT
                      else f"workspace {target!r} is not part of this run")
            if self.replay is not None:
                reason = f"the snapshot {self.replay} has no {target!r} scope"
            raise SectionUnavailable(target, ", ".join(sections) or "any", reason)
        if self.collector is not None:
            self.collector.ensure((target, s) for s in sections)
        scope = self.inventory.scope(target)
        for name in sections:
            sec = scope.section(name)
            if sec.status == OK:
                continue
            if sec.status == SECTION_ERROR:
                raise SectionUnavailable(target, name, sec.error or "unknown error")
            reason = "not collected"
            if self.replay is not None:
                reason = f"not in the snapshot {self.replay} (the run that saved it did not collect it)"
            raise SectionUnavailable(target, name, reason)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Hook (the run is registered as a plugin): gather outcomes where reports arrive -- the
        single process, or the xdist controller -- from the JSON the makereport hook attached."""
        data = getattr(report, "dbsec", None)
        if data is not None and not self.is_worker:
            self.outcomes.append(Outcome.from_json(data))
        elif data is None and report.failed and not self.is_worker and report.when == "call":
            self.other_failures += 1

    @property
    def complete(self) -> bool:
        """All data was read and every selected control reached a verdict (not stopped by -x or ^C)."""
        judged = {o.nodeid for o in self.outcomes}
        return (self.inventory.complete and not self.interrupted and self.selected <= judged
                and not any(o.outcome == ERROR for o in self.outcomes))


@contextmanager
def _file_lock(path: Path):
    import fcntl  # POSIX; pytest-xdist sharing is not offered on Windows

    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _as_int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def _check_writable_dir(option: str, folder: Path, given: Path | None = None) -> None:
    """Say before the run, not after it, when the reports could not be written. A folder that does not
    exist yet is created and removed again: that is the real test on any file system (a Unity Catalog
    volume that does not exist, or that the identity may not write, refuses the mkdir), and it leaves
    nothing behind. An existing folder is checked for write access."""
    what = f"{option} {given or folder}"
    missing = []
    existing = folder
    while not existing.exists() and existing != existing.parent:
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise pytest.UsageError(f"{what}: {existing} is not a directory")
    if not missing:
        if not os.access(folder, os.W_OK | os.X_OK):
            raise pytest.UsageError(f"{what}: {folder} is not writable")
        return
    try:
        folder.mkdir(parents=True)
    except OSError as e:
        raise pytest.UsageError(f"{what}: cannot create {e.filename or folder}: {e.strerror or e}") from None
    for d in missing:  # innermost first
        try:
            d.rmdir()
        except OSError:
            break


def _host_name(host: str) -> str:
    from urllib.parse import urlparse

    netloc = urlparse(host if "://" in host else f"https://{host}").netloc
    return netloc.split(".")[0] if netloc else ""


def _target_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "workspace" in callspec.params:
        return callspec.params["workspace"]
    control = item.stash.get(CONTROL_KEY, None)
    if control is not None and control.scope == "account":
        return ACCOUNT
    return None


def _run(config: pytest.Config) -> DbsecRun | None:
    return config.stash.get(RUN_KEY, None)


# -- collection --------------------------------------------------------------------------------


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    """Collect the built-in controls: plain modules (``tokens.py``) in the shipped checks package."""
    if _run(parent.config) is None or file_path.suffix != ".py" or file_path.name == "__init__.py":
        return None
    if file_path.parent == builtin_checks_dir():
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object):
    result = yield
    marks = [m for m in getattr(obj, "pytestmark", []) if getattr(m, "name", None) == "dbsec"]
    in_builtin = getattr(collector, "path", None) is not None and Path(collector.path).parent == builtin_checks_dir()
    if not callable(obj) or not name.startswith("test"):
        return result
    if not marks:
        if in_builtin:
            raise ControlDefinitionError(f"{collector.path.name}::{name}: a built-in check must declare its "
                                         f"control with @pytest.mark.dbsec(...)")
        return result
    control = Control.from_marker(marks[0].kwargs, f"{collector.path.name}::{name}", set(known_sections()))
    expected = "test_" + control.id.replace("-", "_").lower()
    if not name.lower().startswith(expected):
        raise ControlDefinitionError(f"{collector.path.name}::{name}: the test of control {control.id} must be "
                                     f"named {expected}_... (one name everywhere: ID, function, report)")
    items = result if isinstance(result, list) else [result] if result is not None else []
    for item in items:
        if isinstance(item, pytest.Item):
            item.stash[CONTROL_KEY] = control
    run = _run(collector.config)
    if run is not None:
        run.known_controls.add(control.id)
    return result


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    run = _run(metafunc.config)
    if run is None or "workspace" not in metafunc.fixturenames:
        return
    mark = metafunc.definition.get_closest_marker("dbsec")
    if mark is not None and mark.kwargs.get("scope") == "account":
        return
    metafunc.parametrize("workspace", run.workspace_names, indirect=True, ids=run.workspace_names)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """INC controls judge one identity: without --dbsec-principal they are deselected (not skipped, not
    failed), so ordinary runs are unchanged; with it, the other built-in controls are deselected, so
    the run answers only "is this identity contained?". The user's own tests stay selected."""
    if _run(config) is None:
        return
    principal = config.getoption("dbsec_principal")

    def builtin_inc(item) -> bool:
        control = item.stash.get(CONTROL_KEY, None)
        return control is not None and control.id.startswith("INC-") and \
            Path(item.path).parent == builtin_checks_dir()

    def other_builtin(item) -> bool:
        return CONTROL_KEY in item.stash and Path(item.path).parent == builtin_checks_dir() and not builtin_inc(item)

    drop = [i for i in items if (other_builtin(i) if principal else builtin_inc(i))]
    if drop:
        dropped = set(map(id, drop))
        items[:] = [i for i in items if id(i) not in dropped]
        config.hook.pytest_deselected(items=drop)


# -- running -----------------------------------------------------------------------------------


def pytest_collection_finish(session: pytest.Session) -> None:
    run = _run(session.config)
    if run is None:
        return
    # A waiver or override naming a control that does not exist is a typo, not a no-op. Built-in
    # areas are always collected, so an unknown TOK-99 is an error; a user's ORG-02 may live in a file
    # not collected by this run, so it only earns a warning.
    named = {x.control for x in (*run.baseline.waivers, *run.baseline.attestations)} | set(run.baseline.overrides)
    elsewhere = {cid for cid in named - run.known_controls if cid.split("-")[0] not in BUILTIN_AREAS}
    for cid in sorted(elsewhere):
        run.progress(f"baseline names {cid}, which is not among the controls collected in this run")
    try:
        run.baseline.validate_control_ids(run.known_controls | elsewhere)
    except BaselineError as e:
        run.aborted = True
        raise pytest.UsageError(f"baseline: {e}") from None


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session):
    run = _run(session.config)
    if run is not None and not session.config.option.collectonly and session.items:
        run.selected = {i.nodeid for i in session.items if CONTROL_KEY in i.stash}
        run.prepare(session.items)
    elif run is not None and run.shared_cache is not None and not run.is_worker:
        # the xdist controller (it collects nothing itself): a bad profile or host must still be exit 4
        # before the workers start, not an ERROR on every control
        run.check_targets()
        run.check_principal_early()
    return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    run = _run(item.config)
    control = item.stash.get(CONTROL_KEY, None)
    if run is None or control is None:
        return
    override = run.baseline.overrides.get(control.id)
    if override is not None and not override.enabled:
        pytest.skip(f"disabled by the baseline ({override.source}): {override.reason}")
    target = _target_of(item)
    if run.shared_cache is not None:  # an xdist worker: bring in what this control reads first
        scopes = {target} if target is not None else set()
        if "access_graph" in getattr(item, "fixturenames", ()):
            scopes |= {sc.name for sc in run.inventory.scopes()}
        run.sync(scopes)
    if target is not None:
        run.require(target, control.sections)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    result = yield
    run = _run(item.config)
    control = item.stash.get(CONTROL_KEY, None)
    if run is None or control is None:
        return result
    recorder = item.stash.get(RECORDER_KEY, None)
    if recorder is None:
        recorder = item.stash[RECORDER_KEY] = FindingRecorder(control, _target_of(item) or "?")
    today = run.today()
    if control.verified_by == "attestation":
        attestation = check_attestation(control, recorder, run.baseline, today)
        if attestation is not None and not recorder.items:
            item.stash[ATTESTATION_KEY] = attestation
    if not recorder.items:
        return result
    apply_dispositions(recorder.items, run.baseline, run.accepted, today)
    if any(f.open for f in recorder.items):
        pytest.fail(recorder.failure_message(), pytrace=False)
    # every finding is waived or accepted: an expected failure, reported as such, never hidden
    pytest.xfail(f"{verdict(recorder.items)}: {recorder.failure_message()}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    run = _run(item.config)
    control = item.stash.get(CONTROL_KEY, None)
    if run is None or control is None:
        return report
    outcome = _outcome(item, call, report, control, run)
    if outcome is not None:
        # JSON on the report: it travels from xdist workers to the controller, and pytest-html reads it
        report.dbsec = outcome.to_json()
    return report


def _outcome(item, call, report, control: Control, run: DbsecRun) -> Outcome | None:
    target = _target_of(item) or "?"
    recorder = item.stash.get(RECORDER_KEY, None)
    findings = list(recorder.items) if recorder is not None else []
    override = run.baseline.overrides.get(control.id)
    severity = override.severity if override is not None and override.severity else None
    reason = attestation = None
    if call.when == "setup" and report.outcome != "passed":
        outcome = SKIPPED if report.skipped else ERROR
        reason = _reason(call, report)
    elif call.when != "call":
        return None
    elif report.passed:
        attestation = item.stash.get(ATTESTATION_KEY, None)
        outcome = ATTESTED if attestation is not None else PASSED
        if attestation is not None:
            reason = attestation["statement"]
    elif hasattr(report, "wasxfail") and findings:
        outcome = verdict(findings)  # waived or accepted
        assert outcome in (WAIVED, ACCEPTED)
        reason = "; ".join(sorted({f"{f.disposition.kind} ({f.disposition.source})" for f in findings}))
    elif report.skipped:
        outcome, reason = SKIPPED, _reason(call, report)
    elif findings and call.excinfo is not None and call.excinfo.errisinstance(pytest.fail.Exception):
        outcome = FAILED
    else:
        # the control itself broke (a bug, unexpected data): that is not a compliance verdict
        outcome, reason = ERROR, _reason(call, report)
    return Outcome(control=control, target=target, nodeid=item.nodeid, outcome=outcome, findings=findings,
                   reason=reason, duration_s=report.duration, severity=severity, attestation=attestation)


def _reason(call: pytest.CallInfo, report) -> str:
    if call.excinfo is None:
        return str(report.longrepr)[:500] if report.longrepr else ""
    exc = call.excinfo.value
    if isinstance(exc, SectionUnavailable):
        return str(exc)
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return f"{type(exc).__name__}: {exc}"[:500]


# -- pytest-xdist --------------------------------------------------------------------------------


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """Controller: tell each worker where the shared inventory cache lives."""
    run = _run(node.config)
    if run is not None and run.collector is not None:
        if run.shared_cache is None:
            import tempfile

            run.shared_cache = Path(tempfile.mkdtemp(prefix="dbsec-xdist-"))
        node.workerinput["dbsec_cache"] = str(run.shared_cache)
        if run.account_workspaces is not None:  # listed once, by the controller
            node.workerinput["dbsec_workspaces"] = json.dumps([w.to_json() for w in run.account_workspaces])
            node.workerinput["dbsec_workspace_listing"] = json.dumps(run.workspace_listing)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Under ``-n N`` (xdist's default ``load`` distribution), send each workspace's controls to one
    worker, so that workers collect different workspaces side by side instead of waiting for each
    other on the same one. An explicit ``--dist`` other than ``load`` is left alone."""
    run = _run(config)
    if run is None or run.collector is None or config.getvalue("dist") != "load" or len(run.workspace_names) < 2:
        return None
    from xdist.scheduler import LoadScopeScheduling

    class WorkspaceScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            # "checks/tokens.py::test_TOK_01_...[prod]" -> "prod"; account controls and the user's
            # unparametrized tests form one more group
            _, bracket, param = nodeid.rpartition("::")[2].partition("[")
            return param[:-1] if bracket and param.endswith("]") else ""

    return WorkspaceScheduling(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """Controller: take over what a worker selected and collected."""
    run = _run(node.config)
    data = getattr(node, "workeroutput", {}).get("dbsec")
    if run is None or not data:
        return
    payload = json.loads(data)
    run.selected |= set(payload["selected"])
    run.interrupted |= payload["interrupted"]
    run.auth_types.update(payload.get("auth_types", {}))
    worker_inv = Inventory.from_json(payload["inventory"])
    for scope in worker_inv.scopes():
        if run._has_scope(scope.name):
            for sec in scope.sections.values():
                if run.inventory.scope(scope.name).section(sec.name).status == "absent":
                    run.inventory.put(scope.name, sec)
        if run._has_scope(scope.name):
            mine = run.inventory.scope(scope.name)
            mine.id = mine.id if scope.id is None else scope.id
            mine.host = mine.host or scope.host
            mine.unread = mine.unread or scope.unread


# -- the end of the run: reports, the gate, evidence -----------------------------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int):
    run = _run(session.config)
    if run is None or run.aborted or exitstatus == pytest.ExitCode.USAGE_ERROR or session.config.option.collectonly:
        return (yield)  # bad input: nothing half-written
    run.interrupted |= exitstatus == pytest.ExitCode.INTERRUPTED
    if run.is_worker:
        session.config.workeroutput["dbsec"] = json.dumps({
            "selected": sorted(run.selected), "interrupted": run.interrupted, "auth_types": run.auth_types,
            "inventory": run.inventory.to_json()})
        return (yield)
    finished = utcnow()
    snapshot = None
    if run.snapshot_out is not None and run.replay is None:
        run.inventory.meta.update(run._meta())  # now with the hosts the connections resolved
        snapshot = run.inventory.save(run.snapshot_out)
        run.progress(f"snapshot written to {snapshot}")
    today = run.today()
    verdict_ = gate(run.outcomes, run.fail_on, run.allow_errors, run.other_failures)
    baseline = {"name": run.baseline.name, "path": str(run.baseline.path), "sha256": run.baseline.sha256}
    run.report = RunReport(
        meta={**run._meta(), **({"snapshot": run.inventory.meta} if run.replay is not None else {}),
              "finished": iso(finished), "baseline": baseline, "judged_on": today.isoformat(),
              **({"accepted": str(run.accepted.path)} if run.accepted else {})},
        outcomes=run.outcomes,
        complete=run.complete,
        data_errors=run.inventory.errors,
        waivers=waiver_statuses(run.baseline.waivers, run.outcomes, today),
        accepted=accepted_status(run.accepted, run.outcomes),
        gate=verdict_,
    )
    run.written = write_reports(run.report, run.report_dir)
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        session.exitstatus = verdict_["exit_code"]
    try:
        return (yield)  # pytest-html writes compliance.html here
    finally:
        files = run.written + [run.report_dir / "compliance.html"] + ([snapshot] if snapshot else [])
        run.written.append(write_evidence(run.report, run.report_dir, files, baseline))
        run.progress(f"reports written to {run.report_dir}{'' if run.report.complete else ' (INCOMPLETE run)'}")
        try:
            session.config.hook.pytest_dbsec_findings(report=run.report, config=session.config)
        except Exception as e:  # noqa: BLE001 -- a consumer's failure must not change the verdict
            run.progress(f"a pytest_dbsec_findings hook failed: {type(e).__name__}: {e}")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    run = _run(config)
    if run is None or run.report is None or not run.outcomes:
        return
    tr = terminalreporter
    tr.section("dbsec compliance summary")
    data = run.report.to_json()
    width = max(len(s) for s in SEVERITIES)
    shown = [k for k, n in data["summary"].items() if n]
    tr.line(f"{'':{width}}  " + "  ".join(f"{k:>8}" for k in shown))
    for sev in SEVERITIES:
        row = data["by_severity"][sev]
        if any(row[k] for k in shown):
            tr.line(f"{sev:{width}}  " + "  ".join(f"{row[k]:>8}" for k in shown))
    g = data["gate"]
    stale = [w for w in data["waivers"] if w["status"] in ("expired", "stale")]
    if stale:
        tr.line(f"waivers: {sum(w['status'] == 'expired' for w in stale)} expired, "
                f"{sum(w['status'] == 'stale' for w in stale)} stale (matched nothing)", yellow=True)
    if data["accepted"] and data["accepted"]["resolved"]:
        tr.line(f"accepted findings resolved: {len(data['accepted']['resolved'])}", green=True)
    if g["exit_code"]:
        why = [f"{len(g['failing'])} failing at or above {g['fail_on']}"] if g["failing"] else []
        if g["errors"] and not g["allow_errors"]:
            why.append(f"{len(g['errors'])} could not read their data")
        if g["other_failures"]:
            why.append(f"{g['other_failures']} other tests failed")
        tr.line(f"gate: FAIL ({'; '.join(why)})", red=True, bold=True)
    else:
        tr.line(f"gate: PASS (fail-on {g['fail_on']}; {g['below_threshold']} failures below it)", green=True)
    if not run.report.complete:
        tr.line("INCOMPLETE: some data could not be read or not every control ran; see findings.json", red=True)
    if config.getoption("dbsec_containment_plan"):
        _print_containment_plan(tr, run, config.getoption("dbsec_principal"))


def _print_containment_plan(tr, run: DbsecRun, principal: str) -> None:
    """Print (never execute) the steps that remove what the principal can still reach. Built from the
    data this run read -- on the xdist controller, what the workers sent back -- with no new request."""
    from .checks.incident import NEEDS, containment_plan, read_at, workspace_gaps
    from .graph.access import ROLE_ACCOUNT_SECTIONS, AccessGraph, UnknownPrincipal

    tr.section("dbsec containment plan")
    graph = AccessGraph.from_inventory(run.inventory)
    account = run.targets.get(ACCOUNT)
    try:
        plan = containment_plan(graph, principal, read_at(run.inventory), account.account_id if account else None)
    except UnknownPrincipal as e:
        tr.line(f"no plan: {e.args[0]}", red=True)
        return
    p = plan["principal"]
    who = f"{p['name']} ({p['display_name']})" if p["display_name"] and p["display_name"] != p["name"] else p["name"]
    tr.line(f"for {p['kind'].replace('_', ' ')} {who}: printed, never executed; review, then apply in this order")
    # roles on groups and service principals are read only by `dbsec access --escalation-check` (one
    # call per identity): no INC control judges them, so their absence is said as a note, not as missing data
    roles_unread = [g for g in graph.gaps if g.split(": ", 1)[0].split("/")[-1] in ROLE_ACCOUNT_SECTIONS]
    # sections no judged INC control needs were not read on purpose (-k INC_04 reads no ACLs): a note
    judged = {o.control.id for o in run.outcomes} & set(NEEDS)
    needed = set().union(*(NEEDS[c] for c in judged)) if judged else None
    ws_gaps = workspace_gaps(run.inventory)
    unread = {g["workspace"] for g in ws_gaps if g["in_run"]}
    not_asked, missing = [], []
    for g in graph.gaps:
        where = g.split(": ", 1)[0]
        if g in roles_unread or any(g.startswith(f"{ws}/") for ws in unread):
            continue
        if needed is not None and g.endswith(": not collected") and where.split("/")[-1] not in needed:
            not_asked.append(where)
        else:
            missing.append(g)
    missing += [f"workspace {w['workspace']} (status {w['status'] or 'unknown'}) "
                + ("could not be read: " + w["reason"] if w["in_run"] else "is not part of this run")
                for w in ws_gaps]
    if missing:
        tr.line("INCOMPLETE DATA: the plan can only cover what was read; missing: " + "; ".join(missing), red=True)
    if not plan["steps"]:
        tr.line("nothing left to remove: the identity is contained", green=True)
    for n, s in enumerate(plan["steps"], 1):
        tr.line(f"{n:3}. [{s['target']}] {s['action']}")
        tr.line(f"       {s['request']}")
    for note in plan["notes"]:
        tr.line(f"note: {note}")
    if not_asked:
        sections = sorted({w.split("/")[-1] for w in not_asked})
        tr.line(f"note: only the data the selected INC controls need was read; not read: {', '.join(sections)} "
                "(run all seven for a complete plan)")
    if roles_unread:
        tr.line("note: roles on groups and service principals (group manager, service principal user/manager) "
                "were not read; `dbsec access --principal NAME --escalation-check` lists the ones this identity "
                "holds, which deactivating it also closes")


# -- fixtures ----------------------------------------------------------------------------------


class ScopeView:
    """What a control sees of one workspace (or the account): the sections it declared, read-only."""

    def __init__(self, run: DbsecRun, name: str, control: Control | None):
        self._run, self.name, self._control = run, name, control
        scope = run.inventory.scope(name)
        self.kind = scope.kind
        self.id = scope.id
        self.host = scope.host

    def data(self, section: str) -> Any:
        if section == LEGACY_ACL_SECTION:
            # deprecated: every type's ACLs in the shape of the old single section (declaring it in the
            # marker declares every acls_<type> section; see findings.expand_sections)
            missing = [s for s in ACL_SECTIONS if self._control is not None and s not in self._control.sections]
            if missing:
                raise ControlDefinitionError(f"control {self._control.id} reads data section {section!r} but does "
                                             f"not declare it (or {', '.join(missing)}) in its marker's sections=")
            self._run.require(self.name, ACL_SECTIONS)
            scope = self._run.inventory.scope(self.name)
            return merged_acls({s: scope.section(s).data for s in ACL_SECTIONS})
        if self._control is not None and section not in self._control.sections:
            raise ControlDefinitionError(f"control {self._control.id} reads data section {section!r} but does not "
                                         f"declare it in its marker's sections=")
        self._run.require(self.name, (section,))
        return self._run.inventory.scope(self.name).section(section).data

    @property
    def now(self):
        """The time the data was read: controls judge ages against it, so a replay gives the same result."""
        scope = self._run.inventory.scope(self.name)
        sections = self._control.sections if self._control else tuple(scope.sections)
        times = [scope.section(s).collected_at for s in sections if scope.section(s).collected_at]
        return parse_iso(min(times)) if times else utcnow()


def _require_run(request: pytest.FixtureRequest) -> DbsecRun:
    run = _run(request.config)
    if run is None:
        raise pytest.UsageError("no Databricks target: run with --dbsec-demo, --databricks-profile NAME, "
                                "--databricks-host URL, --dbsec or --dbsec-replay FILE")
    return run


@pytest.fixture
def workspace(request: pytest.FixtureRequest) -> ScopeView:
    """The workspace a control is judged on (the test is parametrized over every audited workspace)."""
    run = _require_run(request)
    name = getattr(request, "param", None)
    if name is None:
        raise pytest.UsageError("the 'workspace' fixture is only available to workspace-scoped dbsec controls")
    return ScopeView(run, name, request.node.stash.get(CONTROL_KEY, None))


@pytest.fixture
def account(request: pytest.FixtureRequest) -> ScopeView:
    """The account a control is judged on."""
    run = _require_run(request)
    run.require(ACCOUNT, ())  # a run without account credentials: ERROR with the reason
    return ScopeView(run, ACCOUNT, request.node.stash.get(CONTROL_KEY, None))


@pytest.fixture
def findings(request: pytest.FixtureRequest) -> FindingRecorder:
    """Record what a control found: ``findings.fail(resource_type=..., resource_id=..., seen=..., expected=...)``."""
    control = request.node.stash.get(CONTROL_KEY, None)
    if control is None:
        raise pytest.UsageError("the 'findings' fixture is only available to tests marked @pytest.mark.dbsec")
    recorder = FindingRecorder(control, _target_of(request.node) or "?")
    request.node.stash[RECORDER_KEY] = recorder
    return recorder


@pytest.fixture(scope="session")
def baseline(request: pytest.FixtureRequest) -> Baseline:
    """The baseline (thresholds, allowlists) of this run."""
    return _require_run(request).baseline


@pytest.fixture(scope="session")
def dbsec_inventory(request: pytest.FixtureRequest) -> Inventory:
    """The whole inventory of this run (sections appear as controls need them)."""
    return _require_run(request).inventory


@pytest.fixture(scope="session")
def dbsec_principal(request: pytest.FixtureRequest) -> str:
    """The identity named by --dbsec-principal (the INC controls judge it)."""
    principal = request.config.getoption("dbsec_principal")
    if not principal:
        raise pytest.UsageError("the 'dbsec_principal' fixture needs --dbsec-principal NAME")
    return principal


@pytest.fixture(scope="session")
def access_graph(request: pytest.FixtureRequest):
    """The access graph (pytest_dbsec.graph.access.AccessGraph) over the account and every workspace of
    the run. Its gaps are data that could not be read: a control answering from it must check them."""
    return _require_run(request).access_graph()


@pytest.fixture
def databricks_emulator():
    """Start Databricks REST emulators for a test, moto-style::

        def test_my_check(databricks_emulator):
            emu = databricks_emulator("tenant.yaml")   # or a dict, or nothing for the demo tenant
            w = WorkspaceClient(host=emu.workspace_url("prod"), token=emu.token_for("me@x.com", "prod"))

    Every emulator started through the factory is stopped when the test ends.
    """
    from .emulator import DEMO_TENANT, Emulator

    started = []

    def start(tenant: Any = None, **kwargs):
        emu = Emulator(tenant if tenant is not None else DEMO_TENANT, **kwargs).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()
