"""Collection: read data sections from Databricks through the SDK into an Inventory.

A *section* is a named unit of data (``tokens``, ``workspace_conf``, ``uc`` ...) read by one function
in this package. Sections are fetched only when a selected control needs them, concurrently in a
bounded thread pool, and each records the HTTP calls it made and, if it failed, why.

This module holds the machinery (registry, runner, error mapping); the section functions live in
``workspace.py`` and ``account.py``.
"""

from __future__ import annotations

import time
import threading
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from databricks.sdk.errors import DatabricksError

from .. import connect, throttle
from ..connect import CallLog, ConnectError, Target
from ..inventory import ACCOUNT, ERROR, OK, Inventory, Section, iso, utcnow
from .sql import StatementFailed


@dataclass(frozen=True)
class SectionSpec:
    name: str
    scope: str  # "workspace" | "account"
    func: Callable[..., Any]  # (client, ctx) -> JSON-able data
    needs: tuple[str, ...] = ()  # other sections of the same scope read by func via ctx.data(name)
    title: str = ""
    # a workspace section's account sections, read by func via ctx.account_data(name): one read per run,
    # whichever workspace (or xdist worker) asks first
    account_needs: tuple[str, ...] = ()


SECTIONS: dict[str, SectionSpec] = {}

# Sections of a run read at once, at most (each is a thread mostly waiting for its requests)
MAX_SECTION_THREADS = 256


def section(name: str, scope: str, needs: Iterable[str] = (), title: str = "", account_needs: Iterable[str] = ()):
    """Register a collector function for a data section. ``needs``: sections of the same scope it reads
    (``ctx.data``), collected before it; ``account_needs`` (workspace sections only): account sections it
    reads (``ctx.account_data``), collected once per run on first use and shared by every workspace."""
    account_needs = tuple(account_needs)
    if account_needs and scope != "workspace":
        raise ValueError(f"data section {name!r}: account_needs= is for workspace sections (an {scope} section "
                         f"reads its own scope's sections through needs=)")

    def register(func):
        old = SECTIONS.get(name)
        # the same function registering again (a conftest loaded by a second run in this process) is
        # fine; two different functions claiming one name is a mistake
        if old is not None and (old.func.__module__, old.func.__qualname__) != (func.__module__, func.__qualname__):
            raise ValueError(f"data section {name!r} registered twice")
        SECTIONS[name] = SectionSpec(name, scope, func, tuple(needs), title or (func.__doc__ or "").strip(),
                                     account_needs)
        return func

    return register


def section_scope(name: str) -> str:
    _load_collectors()
    if name not in SECTIONS:
        raise KeyError(name)
    return SECTIONS[name].scope


def known_sections() -> dict[str, SectionSpec]:
    _load_collectors()
    return dict(SECTIONS)


def _load_collectors() -> None:
    """Import every module of this package: each registers its sections (one module per area)."""
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


# -- the one place where an SDK failure becomes a human reason ----------------------------------

# What a credential needs for each API family, said when the API answers 403.
_NEEDS = [
    ("/api/2.0/accounts/", "account admin rights on the account"),
    ("/api/2.0/preview/accounts/", "account admin rights on the account (or the manager role on each identity)"),
    ("/api/2.0/token-management", "workspace admin rights (token management lists every user's tokens)"),
    ("/api/2.0/workspace-conf", "workspace admin rights"),
    ("/api/2.0/settings", "workspace admin rights"),
    ("/api/2.0/ip-access-lists", "workspace admin rights"),
    ("/api/2.0/permissions/authorization", "workspace admin rights"),
    ("/api/2.0/permissions/", "CAN_MANAGE on the object, or workspace admin rights"),
    ("/api/2.0/secrets/acls", "MANAGE on the secret scope, or workspace admin rights"),
    ("/api/2.1/unity-catalog", "metastore admin rights or ownership/BROWSE on the securable"),
    ("/api/2.0/sql/statements", "CAN_USE on the SQL warehouse"),
]


def describe_failure(exc: BaseException, last_call: dict | None, known_secrets: tuple[str, ...] = ()) -> str:
    """Map an exception raised while reading a section to one line a security engineer can act on:
    which endpoint, what status, and what permission is missing."""
    cause = exc
    prefix = ""
    if isinstance(exc, TimeoutError):
        cause = exc.__cause__ or exc
        prefix = "gave up after retries: "
    where = ""
    if last_call:
        where = f"{last_call['method']} {last_call['path']} -> {last_call['status']}: "
    if isinstance(cause, (ConnectError, StatementFailed)):
        # a statement's message already names the warehouse, its state, error code and Databricks' message
        return connect.redact(str(cause), known_secrets)
    if isinstance(cause, DatabricksError):
        code = cause.error_code or type(cause).__name__
        message = (str(cause).strip().splitlines() or [""])[0]
        # the SDK appends its config (host, masked token) to auth errors; that is noise here
        message = message.split(". Config:")[0].split(" Config:")[0]
        text = f"{prefix}{where}{code}: {message}"
        if type(cause).__name__ == "PermissionDenied" or code == "PERMISSION_DENIED":
            path = last_call["path"] if last_call else ""
            need = next((n for p, n in _NEEDS if path.startswith(p)), "more privileges")
            text += f" (the credential needs {need})"
        return connect.redact(text, known_secrets)
    if isinstance(cause, OSError):
        return connect.redact(f"{prefix}{where}cannot reach the host: {cause}", known_secrets)
    return connect.redact(f"{prefix}{where}{type(cause).__name__}: {cause}", known_secrets)


# -- running sections ----------------------------------------------------------------------------


class Context:
    """What a section function may use besides its client: the data of the sections it needs, and
    a bounded fan-out for per-object calls."""

    def __init__(self, runner: "Collector", scope: str, log: CallLog, section: str | None = None):
        self._runner, self._scope, self._log, self._section = runner, scope, log, section

    def data(self, name: str) -> Any:
        sec = self._runner.inventory.scope(self._scope).section(name)
        if sec.status != OK:
            raise SectionDependencyError(name, sec.error or "not collected")
        return sec.data

    @property
    def scope(self) -> str:
        """The name of the scope (workspace name, or "account") this section is read for."""
        return self._scope

    @property
    def options(self) -> Mapping[str, Any]:
        """Run options a section may depend on (e.g. ``warehouse_id``), read-only."""
        return self._runner.options

    def workspace_client(self, name: str):
        """The client of another workspace of the run (e.g. the one that owns the SQL warehouse)."""
        if name not in self._runner.targets:
            raise KeyError(f"no workspace {name!r} in this run")
        return self._runner.client(name)

    def account_client(self):
        """The run's AccountClient, for a workspace section that needs the account's view of its
        workspace (e.g. ADMIN assignments). Without account credentials the section fails, saying so."""
        if ACCOUNT not in self._runner.targets:
            raise AccountCredentialsMissing(
                "no account credentials: pass --databricks-account-profile (this data is only readable "
                "from the account API)")
        return self._runner.client(ACCOUNT)

    def account_data(self, name: str) -> Any:
        """The data of an account section this workspace section declared in ``account_needs`` (e.g. the
        account's identities for ``admin_assignments``). Read once per run, by the first workspace that
        asks, into the account scope (the others wait and share it); under pytest-xdist it comes from
        the cache the workers share, so one worker reads it for all. A failed read fails every section
        that needs it, with its reason."""
        spec = SECTIONS.get(self._section or "")
        if spec is None or name not in spec.account_needs:
            raise ValueError(f"data section {self._section!r} reads the account section {name!r} without "
                             f"declaring it (section(..., account_needs=({name!r},)))")
        if ACCOUNT not in self._runner.targets or self._runner.inventory.account is None:
            raise AccountCredentialsMissing(
                "no account credentials: pass --databricks-account-profile (this data is only readable "
                "from the account API)")
        sec = self._runner._account_section(name, self._scope, self._section)
        if sec.status != OK:
            raise SectionDependencyError(f"{ACCOUNT}/{name}", sec.error or "not collected")
        return sec.data

    def once(self, key: tuple, func: Callable[[], Any]) -> Any:
        """``func()``, computed once per run for ``key`` whichever section asks first (the others wait
        and share the result): the same data is never fetched twice, e.g. the metastore assignment
        that three UC sections start from. A failure is not kept: the next asker tries again and gets
        its own reason. Calls are recorded in the section that made them."""
        return self._runner._once(key, func)

    def fan_out(self, func: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """Call func for each item concurrently (at most max_workers), in order; calls are recorded.

        The items are worked off by the calling thread and up to max_workers - 1 helpers from one pool
        per scope (not a new pool per fan-out: a run has hundreds of fan-outs, and a thread per item and
        fan-out costs CPU in switching that the requests need). The caller always works too, so a
        fan-out never waits for a pool thread to be free, also when the pool's threads are themselves
        inside fan-outs. A helper does one item and then queues up again, and the pool serves the
        sections in turn (``_Helpers``), so its threads go round every section and fan-out that has
        work: a fan-out that started first (10,000 column tags) does not keep them all until it is
        empty while another (the grants of a catalog, on the rate-limited route that decides how long
        the run takes) gets only its caller, and a section with one fan-out (the permissions of every
        job) gets as many turns as one with a fan-out per catalog. After a failure no new item is
        started; the first failing item's error is raised."""
        items = list(items)
        if len(items) <= 1 or self._runner.max_workers <= 1:
            return [func(i) for i in items]
        log = self._log
        n = len(items)
        results: list[Any] = [None] * n
        failed: list[tuple[int, Exception]] = []
        lock = threading.Lock()
        all_done = threading.Condition(lock)
        counts = {"started": 0, "finished": 0}

        def take() -> int | None:
            with lock:
                if failed or counts["started"] >= n:
                    return None
                counts["started"] += 1
                return counts["started"] - 1

        def run(i: int) -> None:
            connect._recorder.last = None
            try:
                results[i] = func(items[i])
            except Exception as e:
                # the shared log's last call may be another thread's: name the one that failed. A
                # failure from a nested fan-out already names it (its item may have run on a helper,
                # and this thread's last call -- a listing, say -- is not the one that failed)
                if getattr(e, "dbsec_call", None) is None:
                    e.dbsec_call = getattr(connect._recorder, "last", None)
                with lock:
                    failed.append((i, e))
            finally:
                with lock:
                    counts["finished"] += 1
                    if counts["finished"] == counts["started"]:
                        all_done.notify_all()

        pool = self._runner._fan_out_pool(self._scope)
        section = self._section or ""  # the pool's turns go round sections (_Helpers)

        def helper() -> None:
            i = take()
            if i is None:
                return
            with _adopt(log):
                run(i)
            with lock:
                more = not failed and counts["started"] < n
            if more:
                pool.submit(section, helper)  # back of the queue: the others' helpers go first

        for _ in range(min(self._runner.max_workers, n) - 1):
            pool.submit(section, helper)
        with _adopt(log):
            while (i := take()) is not None:
                run(i)
        with lock:  # items the helpers started are finished before the results are read
            while counts["finished"] < counts["started"]:
                all_done.wait()
        if failed:
            raise min(failed, key=lambda f: f[0])[1]
        return results


class _Helpers:
    """The helper threads of one scope's fan-outs (``Context.fan_out``), taking work section by section.

    Turns go round the sections, not the fan-outs: a section that reads in many nested fan-outs at
    once (the grants and the column tags, one fan-out per catalog) must not get five times the helpers
    of one that reads in a single fan-out (the permissions of 5,000 jobs, on a rate-limited route of
    its own) -- each route should have requests waiting when the throttle's window hands out a slot.
    Within a section its fan-outs' helpers queue in the order they came. Threads are started on demand
    up to ``size`` and end after ``idle_timeout`` seconds without work, so a process that makes many
    collectors (our test suite, a long-lived service) does not keep every one's threads."""

    def __init__(self, size: int, name: str, idle_timeout: float = 5.0):
        self._size, self._name, self._idle_timeout = max(1, size), name, idle_timeout
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._queues: dict[str, deque] = {}  # section -> its queued helpers; insertion order = turn order
        self._queued = 0  # helpers in all queues
        self._threads = 0  # started and not ended
        self._idle = 0  # threads in _serve's wait
        self._started = 0  # for thread names only

    def submit(self, section: str, fn: Callable[[], None]) -> None:
        with self._lock:
            q = self._queues.get(section)
            if q is None:
                q = self._queues[section] = deque()
            q.append(fn)
            self._queued += 1
            # Every queued helper needs a thread that will look at the queue: an idle one (woken here)
            # or a new one. Counted from the queue, not from who was woken: a thread whose wait timed
            # out just as it was notified still sees the queue before it decides to end.
            if self._idle:
                self._work.notify()
            if self._queued > self._idle and self._threads < self._size:
                self._threads += 1
                self._started += 1
                threading.Thread(target=self._serve, name=f"{self._name}_{self._started - 1}", daemon=True).start()

    def _serve(self) -> None:
        while True:
            with self._lock:
                while not self._queues:
                    self._idle += 1
                    notified = self._work.wait(self._idle_timeout)
                    self._idle -= 1
                    if not notified and not self._queues:  # safe to end: nothing queued needs this thread
                        self._threads -= 1
                        return
                section = next(iter(self._queues))
                q = self._queues.pop(section)
                fn = q.popleft()
                self._queued -= 1
                if q:
                    self._queues[section] = q  # back of the line: the next section's turn
            try:
                fn()  # a helper records its item's failure itself (fan_out's run)
            except BaseException:
                with self._lock:  # a bug, reported by threading's excepthook: the next submit starts a thread
                    self._threads -= 1
                raise


class AccountCredentialsMissing(Exception):
    """A workspace section needs the account API and the run has no account target."""


class SectionDependencyError(Exception):
    def __init__(self, name: str, reason: str):
        super().__init__(f"needs section '{name}', which failed: {reason}")


class _adopt:
    """Make a worker thread record into its section's CallLog."""

    def __init__(self, log: CallLog):
        self.log = log

    def __enter__(self):
        self.prev = getattr(connect._recorder, "log", None)
        connect._recorder.log = self.log

    def __exit__(self, *exc):
        connect._recorder.log = self.prev


class Collector:
    """Fills an Inventory on demand. ``ensure`` fetches what is missing, concurrently."""

    def __init__(self, inventory: Inventory, targets: dict[str, Target], *, max_workers: int = 8,
                 progress: Callable[[str], None] | None = None,
                 client_factory: Callable[[Target], Any] | None = None, options: Mapping[str, Any] | None = None):
        _load_collectors()
        self.options = MappingProxyType(dict(options or {}))
        self.inventory = inventory
        self.targets = targets  # scope name ("account" or workspace name) -> Target
        self.max_workers = max(1, max_workers)
        self.progress = progress or (lambda msg: None)
        self._client_factory = client_factory or _default_client
        self._clients: dict[str, Any] = {}
        self._client_errors: dict[str, ConnectError] = {}
        self._lock = threading.Lock()
        self._shared: dict[tuple, Any] = {}  # Context.once: key -> value
        self._shared_locks: dict[tuple, threading.Lock] = {}
        self._seeded_calls: dict[tuple, list[dict]] = {}  # seed(): calls not yet recorded in a section
        self._section_locks: dict[tuple[str, str], threading.Lock] = {}  # (scope, section) being collected
        self._fan_out_pools: dict[str, _Helpers] = {}  # scope -> the helpers of its fan-outs
        # how an account section a workspace section needs (account_needs) is brought in when absent:
        # shared(scope, name, collect) must leave it in the inventory, calling collect() to read it. The
        # default reads it here; the pytest plugin, under xdist, takes it from the workers' shared cache.
        self.shared_section: Callable[[str, str, Callable[[], Any]], None] = lambda scope, name, collect: collect()
        self._secrets = tuple(t.token for t in targets.values() if t.token)

    def client(self, scope: str):
        with self._lock:
            if scope in self._client_errors:
                raise self._client_errors[scope]
            if scope not in self._clients:
                try:
                    client = self._client_factory(self.targets[scope])
                except ConnectError as e:
                    self._client_errors[scope] = e
                    raise
                # one window per host for the whole run: sections and their fan-outs share it
                host = getattr(getattr(client, "config", None), "host", None)
                if host:
                    throttle.limiter_for(host).bound(self.max_workers)
                self._clients[scope] = client
            return self._clients[scope]

    def _fan_out_pool(self, scope: str) -> "_Helpers":
        with self._lock:
            pool = self._fan_out_pools.get(scope)
            if pool is None:
                # as many helpers as the window: with the fan-outs' own callers working too, every
                # route still has requests waiting when a slot frees (the throttle's turns), and no
                # more threads than that: each extra thread waiting on the window costs CPU at every
                # hand-over (twice the window: ~10% more collector CPU and 1.47-1.64x the benchmark's
                # bound against 1.31-1.42x, docs/benchmark-collection.md)
                pool = self._fan_out_pools[scope] = _Helpers(self.max_workers, f"dbsec-{scope}")
            return pool

    def seed(self, key: tuple, value: Any, calls: list[dict]) -> None:
        """Data read before collection started -- the account's workspace list, read to plan an
        account-wide run -- for the first section that asks ``ctx.once(key)``: it is not read a second
        time, and the calls that read it are recorded in that section (once)."""
        with self._lock:
            self._shared[key] = value
            self._seeded_calls[key] = list(calls)

    def _once(self, key: tuple, func: Callable[[], Any]) -> Any:
        with self._lock:
            lock = self._shared_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._shared:
                self._shared[key] = func()
            seeded = self._seeded_calls.pop(key, None)
            log = getattr(connect._recorder, "log", None)
            if seeded and log is not None:
                log.calls.extend(seeded)
            return self._shared[key]

    def ensure(self, wanted: Iterable[tuple[str, str]]) -> None:
        """Collect each (scope, section) not yet in the inventory, dependencies first."""
        todo = self._closure(wanted)
        if not todo:
            return
        started = time.monotonic()
        for _, name in todo:
            self._depth(name)  # a cycle is a programming error: say so before anything runs
        # A section starts as soon as the sections it needs are in -- not when every section of a
        # shallower "wave" is: a long section (the grants of a big metastore) must not hold back the
        # per-object reads of another that only waits for one quick list. The pool holds max_workers
        # sections per scope, started round-robin over the scopes so no host waits for another's; the
        # requests they send are bounded per host by the throttle's window, whatever the number of
        # sections.
        waiting = {key: {(key[0], d) for d in SECTIONS[key[1]].needs if (key[0], d) in todo} for key in todo}
        n_scopes = len({scope for scope, _ in todo})
        total, done = len(todo), 0
        # max_workers 1 is a strictly sequential run (one section, one request at a time), in this order
        threads = 1 if self.max_workers == 1 else min(self.max_workers * n_scopes, total, MAX_SECTION_THREADS)
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dbsec") as pool:
            running: dict = {}

            def start_ready() -> None:
                ready = sorted(k for k, deps in waiting.items() if not deps)
                rank = {}  # the i-th ready section of each scope before the (i+1)-th of any
                for key in ready:
                    rank[key] = sum(1 for k in rank if k[0] == key[0])
                for key in sorted(ready, key=lambda k: (rank[k], k)):
                    del waiting[key]
                    running[pool.submit(self._collect_one, *key)] = key

            start_ready()
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    scope, name = running.pop(fut)
                    fut.result()  # _collect_one turns every failure into the section's reason
                    for deps in waiting.values():
                        deps.discard((scope, name))
                    done += 1
                    s = self.inventory.scope(scope).section(name)
                    status = "ok" if s.status == OK else f"ERROR: {s.error}"
                    shared = s.data.get("shared_from") if s.status == OK and isinstance(s.data, dict) else None
                    if shared:  # parts of a metastore another workspace of the run read (collect/uc.py)
                        status += f", {len(shared)} part(s) read via {', '.join(sorted(set(shared.values())))}"
                    self.progress(f"[{done}/{total}] {scope}/{name}: {status} "
                                  f"({len(s.calls)} calls, {s.elapsed_s:.1f}s)")
                start_ready()
        calls = [c for sc, n in todo for c in self.inventory.scope(sc).section(n).calls]
        throttled = sum(1 for c in calls if c.get("status") in (429, 503))
        self.progress(f"collected {total} sections, {len(calls)} calls"
                      + (f" ({throttled} answered 429/503 and retried or failed)" if throttled else "")
                      + f" in {time.monotonic() - started:.1f}s")

    def _closure(self, wanted: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        out: set[tuple[str, str]] = set()
        stack = list(wanted)
        while stack:
            scope, name = stack.pop()
            if (scope, name) in out or name not in SECTIONS:
                continue
            if self.inventory.scope(scope).section(name).status != "absent":
                continue
            out.add((scope, name))
            stack.extend((scope, dep) for dep in SECTIONS[name].needs)
        return out

    def _depth(self, name: str, seen: tuple = ()) -> int:
        needs = SECTIONS[name].needs
        if name in seen:
            raise ValueError(f"data sections depend on each other in a cycle: {seen + (name,)}")
        return 0 if not needs else 1 + max(self._depth(n, seen + (name,)) for n in needs)

    def _account_section(self, name: str, for_scope: str, for_section: str | None) -> Section:
        """The account section ``name``, collected now if no one has yet (Context.account_data)."""
        if self.inventory.scope(ACCOUNT).section(name).status == "absent":
            def collect():
                self._collect_one(ACCOUNT, name)
                s = self.inventory.scope(ACCOUNT).section(name)
                self.progress(f"{ACCOUNT}/{name} (for {for_scope}/{for_section}): "
                              f"{'ok' if s.status == OK else f'ERROR: {s.error}'} "
                              f"({len(s.calls)} calls, {s.elapsed_s:.1f}s)")

            self.shared_section(ACCOUNT, name, collect)
        return self.inventory.scope(ACCOUNT).section(name)

    def _collect_one(self, scope: str, name: str) -> None:
        # one collection per (scope, section): a workspace section's account_needs may ask for a section
        # that ensure() is collecting at the same moment; the second asker waits and finds it done
        with self._lock:
            lock = self._section_locks.setdefault((scope, name), threading.Lock())
        with lock:
            if self.inventory.scope(scope).section(name).status == "absent":
                self._read_section(scope, name)

    def _read_section(self, scope: str, name: str) -> None:
        spec = SECTIONS[name]
        sec = Section(name=name, collected_at=iso(utcnow()))
        started = time.monotonic()
        with CallLog() as log:
            try:
                client = self.client(scope)
                sec.data = spec.func(client, Context(self, scope, log, name))
                sec.status = OK
            except Exception as e:  # noqa: BLE001 -- fail closed: every failure becomes a reason
                sec.status = ERROR
                sec.data = None
                if isinstance(e, (SectionDependencyError, AccountCredentialsMissing)):
                    sec.error = str(e)
                else:
                    sec.error = describe_failure(e, getattr(e, "dbsec_call", None) or log.last, self._secrets)
        sec.calls = list(log.calls)
        sec.elapsed_s = time.monotonic() - started
        self.inventory.put(scope, sec)


def _default_client(target: Target):
    if target.kind == "account" or target.name == ACCOUNT:
        return connect.account_client(target)
    return connect.workspace_client(target)
