"""Pacing requests to a Databricks host: a bounded window per host and an adaptive rate per route.

Collection fans out (sections in parallel, per-object calls in parallel inside a section), and
Databricks answers too many requests with 429 and a ``Retry-After``. The SDK honours that header,
but request by request: every thread sleeps, wakes up together and tries again, so a rate-limited
route sees bursts and storms of retries while the others wait for nothing.

So every SDK client of a run sends its requests through one :class:`HostLimiter` per host, installed
as the ``requests`` transport adapter of the client's session (``install``):

* **Window.** At most ``max_in_flight`` requests (the run's ``dbsec_max_workers``) are in flight to
  a host, whichever section or fan-out sends them: nested thread pools do not multiply it.
* **Adaptive rate per route** (AIMD). A route (``/api/2.0/permissions/jobs``, see ``route_of``) is unpaced until
  it answers 429. Then its rate is cut to ``DECREASE`` x the rate it actually sustained, the route
  pauses for the ``Retry-After`` time, and from then on its requests are spaced at that rate, which
  grows by ``INCREASE_PER_S`` requests/s every second until the next 429. A route therefore runs just
  under its limit, and one 429 episode (all the requests already in flight) is one cut, not many.
* **Paced routes first, then one route after another.** A route that has been rate limited is the
  scarce resource: every second it waits for a slot behind unpaced requests is capacity the server
  gives and nobody uses. So a paced request that is due takes the next free slot of the window before
  any unpaced one. The unpaced requests fill the rest of the window route by route in turn, not in
  the order they came: a fan-out of 10,000 column-tag reads must not fill the window while the grants
  route -- rate limited, though nobody knows it before its first 429 -- sends a request now and then
  and so finds its limit late. A freed slot is handed to the waiter it is for, so the others sleep on.
* **Retry within a budget.** A 429 (or a 503 with ``Retry-After``) is retried here, not returned, so
  the SDK only sees it when the budget (the client's ``retry_timeout_seconds``) is spent. The SDK's
  own retry loop has the same deadline, so it then gives up at once with ``TimeoutError`` and the
  section fails closed with the 429 as its reason (``collect.describe_failure``).

Every attempt that is retried here is recorded in the section's call log like any other request.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

MAX_IN_FLIGHT = 8  # concurrent requests per host for the whole run, until a run sets its own (bound)
DECREASE = 0.8  # on a 429, the route's rate becomes this fraction of what it sustained
INCREASE_PER_S = 2.0  # requests/s added to a paced route's rate per second without a 429
MIN_RATE = 0.5  # requests/s: a route is never paced slower than this
MIN_SAMPLES = 8  # successes needed before a 429 to measure the rate a route sustained
RETRY_STATUSES = (429, 503)
DEFAULT_RETRY_AFTER_S = 1.0  # a 429 without Retry-After (the SDK assumes the same)

# path segments that name one object rather than an API: numbers, UUIDs, long hex, dotted names
_ID_SEGMENT = re.compile(r"^(\d+|[0-9a-f-]{16,}|.*\..*)$", re.I)


def route_of(path: str) -> str:
    """The rate-limit key of a request path: its first four segments that are not object ids, ids
    before them kept as ``*``; a permissions API ends at ``permissions`` (object type and id are its
    parameters). ``/api/2.0/permissions/jobs/123`` -> ``/api/2.0/permissions``,
    ``/api/2.0/accounts/<uuid>/scim/v2/Users`` -> ``/api/2.0/accounts/*/scim``."""
    out, named = [], 0
    for i, s in enumerate(s for s in path.split("?", 1)[0].split("/") if s):
        if named == 4:
            break
        if i > 1 and _ID_SEGMENT.match(s):
            out.append("*")
        else:
            out.append(s)
            named += 1
            if s == "permissions":
                break
    return "/" + "/".join(out)


class _Route:
    """Pacing state of one route on one host."""

    def __init__(self, lock: threading.Lock) -> None:
        self.rate: float | None = None  # requests/s; None = not paced (no 429 seen yet)
        self.next_at = 0.0  # monotonic time of the next free slot
        self.paused_until = 0.0  # Retry-After
        self.cut_at = 0.0  # monotonic time of the last decrease
        self.grown_at = 0.0  # monotonic time of the last increase
        self.recent: deque[float] = deque()  # completion times of successes since the last cut
        self.epoch = 0  # counts the cuts: a send time reserved before the last cut is void
        self.waiting = 0  # unpaced requests waiting for a slot that has not been handed to them yet
        self.handed = 0  # slots handed to this route's waiters and not yet taken
        self.turn = threading.Condition(lock)  # where they wait (on the host's lock)


class HostLimiter:
    """The window and the per-route rates of one host, shared by every client of the run."""

    WINDOW_S = 2.0  # how far back the sustained rate is measured

    def __init__(self, max_in_flight: int = MAX_IN_FLIGHT):
        self.max_in_flight = max(1, max_in_flight)
        self._lock = threading.Lock()
        # who gets a freed slot (see module doc): due requests of paced routes first, then the
        # routes with unpaced requests waiting, one after another (insertion order = turn order)
        self._free_paced = threading.Condition(self._lock)
        self._paced_waiting = 0
        self._paced_handed = 0
        self._turns: dict[str, _Route] = {}
        self._routes: dict[str, _Route] = {}
        self.in_flight = 0
        self.peak_in_flight = 0
        self.throttled = 0  # 429/503 answers absorbed (retried) here

    def _route(self, key: str) -> _Route:
        r = self._routes.get(key)
        if r is None:
            r = self._routes[key] = _Route(self._lock)
        return r

    def bound(self, max_in_flight: int) -> None:
        """Set the window (the run's ``dbsec_max_workers``)."""
        with self._lock:
            self.max_in_flight = max(1, max_in_flight)
            self._hand_over()

    def rate(self, path: str) -> float | None:
        """The current pace of a route (None = unpaced); for reports and tests."""
        with self._lock:
            r = self._routes.get(route_of(path))
            return r.rate if r else None

    def wait_turn(self, key: str) -> float:
        """Block until the route may send (pause and pacing), then until the host has a free slot.
        Returns the monotonic send time.

        A paced request reserves its own send time (the route's next slot) and sleeps once until
        then: the requests waiting on a route are queued in time, instead of all waking at every slot
        to find that one of them got it (with dozens of threads per route, that herd cost more CPU
        than the requests). A reservation made before a 429 cut the rate, or that falls inside a
        Retry-After pause, is made again."""
        while True:
            with self._lock:
                r = self._route(key)
                now = time.monotonic()
                start = max(now, r.paused_until)
                epoch = r.epoch
                if r.rate is not None:
                    start = max(start, r.next_at)
                    r.next_at = start + 1.0 / r.rate  # this request's slot is [start, next_at)
                if start <= now:
                    return self._take_slot(key, r, paced=r.rate is not None)
            time.sleep(start - now)
            with self._lock:
                if r.rate is not None and r.epoch == epoch and time.monotonic() >= r.paused_until:
                    return self._take_slot(key, r, paced=True)
            # unpaced (waited out a pause), or the route was cut or paused meanwhile: ask again

    def _take_slot(self, key: str, r: _Route, paced: bool) -> float:
        """With the lock held: take a free slot of the window, or wait until one is handed over."""
        # a slot is never free while someone waits for one (every release hands it over), so a free
        # slot is this request's without jumping anyone's turn
        if self.in_flight < self.max_in_flight:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        elif paced:
            self._paced_waiting += 1
            while not self._paced_handed:
                self._free_paced.wait()
            self._paced_handed -= 1
        else:
            r.waiting += 1
            self._turns.setdefault(key, r)
            while not r.handed:
                r.turn.wait()
            r.handed -= 1
        return time.monotonic()

    def _hand_over(self) -> None:
        """With the lock held: give the free slots to waiting requests (counted as in flight from
        here): due requests of paced routes first, then one per route in turn."""
        while self.in_flight < self.max_in_flight:
            if self._paced_waiting:
                self._paced_waiting -= 1
                self._paced_handed += 1
                self._free_paced.notify()
            elif self._turns:
                key = next(iter(self._turns))
                r = self._turns.pop(key)
                r.waiting -= 1
                r.handed += 1
                r.turn.notify()
                if r.waiting:
                    self._turns[key] = r  # back of the line
            else:
                return
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def done(self, key: str, sent_at: float, status: int, retry_after: float | None) -> None:
        """Release the slot and adapt the route's pace to the answer."""
        with self._lock:
            self.in_flight -= 1
            r = self._route(key)
            now = time.monotonic()
            if status in RETRY_STATUSES:
                self.throttled += 1
                r.paused_until = max(r.paused_until, now + (retry_after if retry_after is not None
                                                              else DEFAULT_RETRY_AFTER_S))
                # requests sent before the last cut are part of the same episode: one cut per episode
                if sent_at >= r.cut_at:
                    while r.recent and r.recent[0] < now - self.WINDOW_S:
                        r.recent.popleft()
                    span = now - r.recent[0] if r.recent else 0.0
                    # too few successes to tell a rate (e.g. a new route whose limit a sibling
                    # used up): only the pause applies, the next 429 will have a measure
                    sustained = len(r.recent) / span if len(r.recent) >= MIN_SAMPLES and span > 0 else None
                    known = [x for x in (r.rate, sustained) if x is not None]
                    if known:
                        r.rate = max(MIN_RATE, DECREASE * min(known))
                        r.cut_at = r.grown_at = now
                        r.recent.clear()
                        r.epoch += 1  # reservations at the old rate are void
                        r.next_at = r.paused_until  # the new pace starts after the pause
            else:
                r.recent.append(now)
                if len(r.recent) > 4096:
                    r.recent.popleft()
                if r.rate is not None:
                    r.rate += INCREASE_PER_S * (now - r.grown_at)
                    r.grown_at = now
            self._hand_over()


_limiters: dict[str, HostLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(host_url: str) -> HostLimiter:
    """The run-wide limiter of a host (``scheme://host:port``)."""
    key = _host_key(host_url)
    with _limiters_lock:
        lim = _limiters.get(key)
        if lim is None:
            lim = _limiters[key] = HostLimiter()
        return lim


def limiters() -> dict[str, HostLimiter]:
    with _limiters_lock:
        return dict(_limiters)


def _host_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _retry_after(response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from Databricks; the default applies


class ThrottledAdapter(HTTPAdapter):
    """A ``requests`` transport that sends through a :class:`HostLimiter` and retries 429/503
    (with ``Retry-After``) until ``budget_s`` is spent."""

    def __init__(self, limiter: HostLimiter, budget_s: float, on_retry=None):
        # the limiter bounds concurrency; the pool only caches connections (created on demand)
        super().__init__(pool_connections=4, pool_maxsize=256, pool_block=False)
        self.limiter = limiter
        self.budget_s = budget_s
        self.on_retry = on_retry  # called with each response retried here (call recording)

    def send(self, request, **kwargs):
        key = route_of(urlsplit(request.url).path)
        deadline = time.monotonic() + self.budget_s
        while True:
            sent_at = self.limiter.wait_turn(key)
            status, retry_after = 0, None
            try:
                response = super().send(request, **kwargs)
                status = response.status_code
                retry_after = _retry_after(response)
            finally:
                self.limiter.done(key, sent_at, status, retry_after)
            retryable = status == 429 or (status == 503 and retry_after is not None)
            wait = retry_after if retry_after is not None else DEFAULT_RETRY_AFTER_S
            if not retryable or time.monotonic() + wait >= deadline:
                return response
            if self.on_retry is not None:
                self.on_retry(response)
            response.close()


def freeze_environment(session: requests.Session, host_url: str) -> None:
    """Read the proxy and CA-bundle environment variables once for the session's one host, not on
    every request.

    With ``trust_env`` on (the default), ``requests`` scans the whole process environment on every
    request (``merge_environment_settings``: ``*_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``,
    ``CURL_CA_BUNDLE``) -- a quarter of the CPU a request costs the collector. A run's environment
    does not change while it runs and an SDK client's session talks to one host, so the answer for
    that host is computed here exactly as ``requests`` would compute it, stored as the session's own
    settings, and the per-request scan is turned off. The session already authenticates every
    request itself (the SDK's ``session.auth``), so ``~/.netrc`` -- the other thing ``trust_env``
    governs -- was never consulted for it."""
    if not session.trust_env:
        return
    env = session.merge_environment_settings(host_url, {}, None, None, None)
    # None, not {}: requests merges the session's proxies and query parameters into every request's,
    # through a runtime-protocol isinstance check that costs ~5% of a request's CPU on Python 3.11;
    # with nothing to merge, None makes it take the request's own (its merge_setting allows for None)
    session.proxies = dict(env["proxies"] or {}) or None
    if not session.params:
        session.params = None
    session.verify = env["verify"]
    session.cert = env["cert"]
    session.trust_env = False


def install(session: requests.Session, host_url: str, budget_s: float, on_retry=None) -> HostLimiter:
    """Send every request of ``session`` to ``host_url`` through the host's limiter."""
    freeze_environment(session, host_url)
    limiter = limiter_for(host_url)
    session.mount(_host_key(host_url) + "/", ThrottledAdapter(limiter, budget_s, on_retry))
    return limiter
