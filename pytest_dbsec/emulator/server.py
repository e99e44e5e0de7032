"""The HTTP side: listeners, authentication, fault injection and the request log.

One listener serves the account API; each workspace gets a listener (port) of its own, as each
workspace has its own host in the cloud. Workspace routes are not served on the account listener and
vice versa. Every request is logged, including rejected ones, so tests can prove a tool only read.
"""

from __future__ import annotations

import fnmatch
import json
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional, Union
from urllib.parse import parse_qs, unquote, urlsplit

from . import information_schema, routes_account, routes_uc, routes_workspace, sql
from .identity import Directory, Principal, WorkspaceView
from .routing import ACCOUNT_ADMIN, PUBLIC, WS_ADMIN, ApiError, Ctx, Response, RouteTable
from .tenant import Tenant, TenantError, load_tenant, normalize

# The SDK retries any error whose message contains certain phrases (databricks-api.md §2); default
# messages here avoid all of them so that only 429/503 are retried.
_DEFAULT_FAULT = {
    400: ("BAD_REQUEST", "Injected fault: bad request."),
    401: ("UNAUTHENTICATED", "Injected fault: credential was not accepted."),
    403: ("PERMISSION_DENIED", "Injected fault: permission denied."),
    404: ("RESOURCE_DOES_NOT_EXIST", "Injected fault: resource does not exist."),
    429: ("REQUEST_LIMIT_EXCEEDED", "Injected fault: request rate limit exceeded for this route."),
    500: ("INTERNAL_ERROR", "Injected fault: internal server error."),
    502: ("BAD_GATEWAY", "Injected fault: bad gateway."),
    503: ("TEMPORARILY_UNAVAILABLE", "Injected fault: the service is temporarily unavailable."),
    504: ("DEADLINE_EXCEEDED", "Injected fault: deadline exceeded."),
}

WORKSPACE_ROUTES = RouteTable()
WORKSPACE_ROUTES.extend(routes_workspace.ROUTES)
WORKSPACE_ROUTES.extend(routes_uc.ROUTES)
WORKSPACE_ROUTES.extend(sql.ROUTES)
information_schema.install()  # system.information_schema.* for the SQL engine
ACCOUNT_ROUTES = RouteTable()
ACCOUNT_ROUTES.extend(routes_account.ROUTES)


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict  # name -> str, or a list of str when the name was repeated
    status: int
    target: str  # "account" or a workspace name
    principal: Optional[str]  # userName / applicationId of the caller when the token was known
    time: float = 0.0  # time.time() when the request arrived
    duration_ms: float = 0.0
    statement: Optional[str] = None  # the SQL text of a statement-execution POST, so tests can prove it only read


@dataclass
class Fault:
    method: str
    glob: str
    status: Optional[int] = None
    retry_after: Optional[int] = None
    latency_ms: int = 0
    times: Optional[int] = None
    error_code: Optional[str] = None
    message: Optional[str] = None
    rate_limit_per_s: Optional[float] = None
    target: Optional[str] = None
    fired: int = 0
    _tokens: float = field(default=0.0, repr=False)
    _last: float = field(default=0.0, repr=False)

    def matches(self, method: str, path: str, target: str) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.target is not None and self.target != target:
            return False
        if self.method not in ("*", method):
            return False
        return fnmatch.fnmatchcase(path, self.glob)

    def take_token(self) -> bool:
        """Token bucket: capacity = rate (at least 1), refilled continuously."""
        rate = float(self.rate_limit_per_s)
        cap = max(1.0, rate)
        now = time.monotonic()
        if self._last == 0.0:
            self._tokens = cap
        else:
            self._tokens = min(cap, self._tokens + (now - self._last) * rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class _State:
    """Derived, read-only view of one version of the tenant."""

    def __init__(self, tenant: Tenant):
        self.tenant = tenant
        acct = tenant["account"]

        def err(path, msg):
            raise TenantError(msg, path=tuple(path), source=tenant.source)

        self.directory = Directory(acct, err)
        self.workspaces: Dict[str, dict] = {ws["name"]: ws for ws in acct.get("workspaces") or []}
        self._views: Dict[str, WorkspaceView] = {}
        self._indexes: Dict[tuple, dict] = {}  # see index()
        self._lock = threading.Lock()
        self.credentials: Dict[str, dict] = {c["token"]: c for c in tenant.get("credentials") or []}

    def view(self, ws_name: str) -> WorkspaceView:
        with self._lock:
            v = self._views.get(ws_name)
            if v is None:
                ws = self.workspaces[ws_name]
                idx = self.tenant["account"]["workspaces"].index(ws)
                v = self._views[ws_name] = WorkspaceView(self.directory, ws, ("account", "workspaces", idx))
            return v

    def index(self, key: tuple, build: Callable[[], dict]) -> dict:
        """A lookup table derived from this version of the tenant, built on first use: handlers find
        one object among thousands (a job's ACL, a table's grants) by key instead of scanning lists.
        A tenant edit makes a new _State, so an index never outlives the data it was built from."""
        with self._lock:
            found = self._indexes.get(key)
        if found is None:
            found = build()
            with self._lock:
                found = self._indexes.setdefault(key, found)
        return found

    def principal_of(self, cred: dict) -> Optional[Principal]:
        found = [p for p in self.directory.lookup(cred["principal"]) if p.kind in ("user", "sp")]
        return found[0] if len(found) == 1 else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, emulator: "Emulator", target: str):
        self.emulator = emulator
        self.target = target
        self.connections: set = set()
        self.conn_lock = threading.Lock()
        super().__init__(addr, handler)

    def process_request(self, request, client_address):
        with self.conn_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.conn_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        # a client that exits drops its keep-alive connections (reset, broken pipe): that is how
        # connections end, not an error worth a traceback on stderr
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        # Keep-alive connections would otherwise keep serving after stop().
        with self.conn_lock:
            conns = list(self.connections)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _RequestHeaders:
    """A request's headers: names case-insensitive, the first value of a repeated name wins (as
    ``email.message.Message.get``, what http.server would have given)."""

    __slots__ = ("_first",)

    def __init__(self, items: List[tuple]):
        self._first: Dict[str, str] = {}
        for name, value in items:
            self._first.setdefault(name.lower(), value)

    def get(self, name: str, default=None):
        return self._first.get(name.lower(), default)

    def __getitem__(self, name: str):
        return self._first.get(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first


_MAX_HEADER_LINE, _MAX_HEADERS = 65536, 100  # http.client's limits


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's requests session expects
    server_version = "dbsec-emulator"
    sys_version = ""
    timeout = 60
    # http.server's own answers (send_error) write headers and body separately; without TCP_NODELAY,
    # Nagle plus delayed ACKs would add ~40 ms to such a keep-alive request.
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr access log
        pass

    def parse_request(self) -> bool:
        """The request line and headers, as http.server reads them, without its header parser: that
        goes through the email package and was ~40% of the emulator's CPU per request, CPU a benchmark's
        collector shares the machine with. HTTP/1.0 and 1.1 only (an HTTP/0.9 request line is a 400);
        http.server's limits and error answers (400 bad request line, 505 HTTP/2+, 431 header line too
        long or too many headers)."""
        self.command = None
        self.request_version = self.default_request_version
        self.close_connection = True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if not words:
            return False
        version = words[-1]
        if len(words) != 3 or version not in ("HTTP/1.0", "HTTP/1.1"):
            self.request_version = "HTTP/1.0"  # an answer with a status line (HTTP/0.9 has none), then close
            major = version[5:].split(".")[0] if version.startswith("HTTP/") else ""
            if len(words) == 3 and major.isdigit() and int(major) >= 2:
                self.send_error(505, f"Invalid HTTP version ({version[5:]})")
            else:
                self.send_error(400, f"Bad request syntax ({self.requestline!r})")
            return False
        self.command, self.path, self.request_version = words
        self.close_connection = version != "HTTP/1.1"
        if self.path.startswith("//"):  # as http.server: never a scheme-relative URL (open redirect)
            self.path = "/" + self.path.lstrip("/")
        items: List[tuple] = []
        while True:
            line = self.rfile.readline(_MAX_HEADER_LINE + 1)
            if len(line) > _MAX_HEADER_LINE:
                self.send_error(431, "Line too long")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            if len(items) >= _MAX_HEADERS:
                self.send_error(431, "Too many headers")
                return False
            text = line.decode("iso-8859-1").rstrip("\r\n")
            if text[:1] in (" ", "\t") and items:  # an obsolete folded line continues the last value
                name, value = items[-1]
                items[-1] = (name, f"{value} {text.strip()}")
                continue
            name, colon, value = text.partition(":")
            if not colon or not name or name != name.strip():
                self.send_error(400, f"Bad header line ({text[:100]!r})")
                return False
            items.append((name, value.strip()))
        self.headers = _RequestHeaders(items)
        conntype = self.headers.get("Connection", "").lower()
        if conntype == "close":
            self.close_connection = True
        elif conntype == "keep-alive":
            self.close_connection = False
        if self.headers.get("Expect", "").lower() == "100-continue" and version == "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_HEAD(self):
        self._handle("HEAD")

    def do_OPTIONS(self):
        self._handle("OPTIONS")

    def _handle(self, method: str) -> None:
        server: _Server = self.server  # type: ignore[assignment]
        emu = server.emulator
        started = time.time()
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        principal_name = None
        emu._enter(server.target)  # left in _send, once the answer is ready to go out
        try:
            resp, principal_name = emu._dispatch(server.target, method, path, query, body, self.headers)
        except Exception as e:  # a bug in a handler: answer, log, and keep serving
            traceback.print_exc(file=sys.stderr)
            resp = Response(500, {"error_code": "INTERNAL_ERROR", "message": f"emulator failure: {type(e).__name__}: {e}", "details": []})
        # Log before answering: once the client has its answer, the record must already be visible.
        emu._record(
            RequestRecord(
                method=method,
                path=path,
                query={k: (v[0] if len(v) == 1 else list(v)) for k, v in query.items()},
                status=resp.status,
                target=server.target,
                principal=principal_name,
                time=started,
                duration_ms=(time.time() - started) * 1000.0,
                statement=_statement_text(method, path, body),
            )
        )
        self._in_flight = True
        try:
            self._send(resp, method, server.target, emu)
        finally:
            if self._in_flight:  # the answer failed before it went out
                self._in_flight = False
                emu._leave(server.target)

    def _send(self, resp: Response, method: str, target: str, emu: "Emulator") -> None:
        if resp.raw is not None:
            data = resp.raw
            ctype = resp.headers.pop("Content-Type", "application/octet-stream")
        else:
            data = json.dumps(resp.body if resp.body is not None else {}).encode()
            ctype = "application/json"
        # The status line and headers are written with the body in one write (http.server's
        # send_response/send_header/end_headers cost a quarter of the emulator's CPU per request).
        head = [f"{self.protocol_version} {resp.status} {_REASONS.get(resp.status, '')}",
                f"Server: {self.server_version}", f"Date: {_http_date()}",
                f"Content-Type: {ctype}", f"Content-Length: {len(data)}"]
        if target != "account":
            ws = emu._workspace_by_name(target)
            if ws is not None:
                head.append(f"X-Databricks-Org-Id: {ws['id']}")
        for k, v in resp.headers.items():
            head.append(f"{k}: {v}")
            if k.lower() == "connection" and str(v).lower() == "close":
                self.close_connection = True
        out = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1", "strict")
        # no longer in flight before the client can see any of the answer: a client that sends its
        # next request on receipt must not be counted twice
        self._in_flight = False
        emu._leave(target)
        self.wfile.write(out if method == "HEAD" else out + data)


_REASONS = {s.value: s.phrase for s in HTTPStatus}
_date_cache: tuple = (0, "")


def _http_date() -> str:
    """The Date header's value (RFC 7231 IMF-fixdate), formatted once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


class Emulator:
    """A Databricks account and its workspaces, served over HTTP on loopback ports.

    ``Emulator(tenant_or_path_or_dict, host="127.0.0.1", port=0)``: ``port`` is the account listener's
    port (0 = ephemeral). Workspace listeners take ``port+1, port+2, ...`` when a port is given, else
    ephemeral ports.
    """

    def __init__(self, tenant: Union[str, "Tenant", dict, object], host: str = "127.0.0.1", port: int = 0,
                 live_edits: bool = True):
        self.tenant: Tenant = load_tenant(tenant)
        # live_edits: notice a test editing emu.tenant between requests (costs one serialisation of the
        # tenant per request); a benchmark serving a huge, fixed tenant turns it off (refresh() still works)
        self.live_edits = live_edits
        self.host = host
        self.port = port
        self.requests: List[RequestRecord] = []
        # requests being served, per listener ("account" or a workspace name), and the most at once
        # since the last clear_requests(): how a test sees a client's concurrency per host
        self._in_flight: Dict[str, int] = {}
        self.peak_in_flight: Dict[str, int] = {}
        self._log_lock = threading.Lock()
        self._fault_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._faults: List[Fault] = []
        self.statements = sql.Statements()  # SQL statements submitted to any workspace
        self._servers: Dict[str, _Server] = {}
        self._threads: List[threading.Thread] = []
        self._state: Optional[_State] = None
        self._snapshot: Optional[str] = None
        self._state_error: Optional[TenantError] = None
        for f in self.tenant.get("faults") or []:
            self.add_fault(**f)
        self._refresh_state()

    # ------------------------------------------------------------------------------- lifecycle
    def start(self) -> "Emulator":
        if self._servers:
            return self
        try:
            self._listen("account", self.port)
            for i, ws in enumerate(self.tenant["account"]["workspaces"]):
                self._listen(ws["name"], self.port + 1 + i if self.port else 0)
        except OSError:
            self.stop()
            raise
        return self

    def _listen(self, target: str, port: int) -> None:
        srv = _Server((self.host, port), _Handler, self, target)
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, name=f"dbsec-emulator-{target}", daemon=True)
        t.start()
        self._servers[target] = srv
        self._threads.append(t)

    def stop(self) -> None:
        servers, self._servers = self._servers, {}
        for srv in servers.values():
            srv.shutdown()
            srv.close_connections()
            srv.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----------------------------------------------------------------------------- addresses
    def _url(self, target: str) -> str:
        srv = self._servers.get(target)
        if srv is None:
            raise RuntimeError("the emulator is not running: call start() first")
        host, port = srv.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def account_url(self) -> str:
        return self._url("account")

    @property
    def account_id(self) -> str:
        return str(self.tenant["account"]["id"])

    @property
    def workspaces(self) -> List[dict]:
        out = []
        for ws in self.tenant["account"]["workspaces"]:
            url = self._url(ws["name"]) if ws["name"] in self._servers else None
            out.append({"name": ws["name"], "id": ws["id"], "url": url})
        return out

    def workspace_url(self, name: str) -> str:
        if self._workspace_by_name(name) is None:
            raise KeyError(f"no workspace named {name!r}")
        return self._url(name)

    def token_for(self, principal: str, workspace: Optional[str] = None) -> str:
        """A bearer token declared in the tenant for ``principal`` (userName, applicationId or SP
        displayName); ``workspace=None`` asks for an account-scoped one. KeyError if there is none."""
        state = self._fresh_state()
        wanted = [p for p in state.directory.lookup(principal) if p.kind in ("user", "sp")]
        for cred in self.tenant.get("credentials") or []:
            p = state.principal_of(cred)
            if p is None or p not in wanted:
                continue
            if workspace is None and cred.get("account"):
                return cred["token"]
            if workspace is not None and cred.get("workspace") == workspace:
                return cred["token"]
        where = "account" if workspace is None else f"workspace {workspace!r}"
        raise KeyError(f"no credential for {principal!r} on the {where} in the tenant")

    # ---------------------------------------------------------------------------- request log
    def _enter(self, target: str) -> None:
        with self._log_lock:
            n = self._in_flight[target] = self._in_flight.get(target, 0) + 1
            self.peak_in_flight[target] = max(self.peak_in_flight.get(target, 0), n)

    def _leave(self, target: str) -> None:
        with self._log_lock:
            self._in_flight[target] -= 1

    def _record(self, rec: RequestRecord) -> None:
        with self._log_lock:
            self.requests.append(rec)

    def clear_requests(self) -> None:
        with self._log_lock:
            self.requests.clear()
            self.peak_in_flight.clear()

    # --------------------------------------------------------------------------------- faults
    def add_fault(
        self,
        route: str,
        *,
        status: Optional[int] = None,
        retry_after: Optional[int] = None,
        latency_ms: int = 0,
        times: Optional[int] = None,
        error_code: Optional[str] = None,
        message: Optional[str] = None,
        rate_limit_per_s: Optional[float] = None,
        target: Optional[str] = None,
    ) -> Fault:
        """Inject a fault on ``route`` = "METHOD /path/glob" (fnmatch; METHOD may be ``*``)."""
        parts = route.split(None, 1)
        if len(parts) == 1:
            method, glob = "*", parts[0]
        else:
            method, glob = parts[0].upper(), parts[1]
        if rate_limit_per_s is not None and rate_limit_per_s <= 0:
            raise ValueError("rate_limit_per_s must be positive")
        f = Fault(
            method=method,
            glob=glob,
            status=status,
            retry_after=retry_after,
            latency_ms=latency_ms or 0,
            times=times,
            error_code=error_code,
            message=message,
            rate_limit_per_s=rate_limit_per_s,
            target=target,
        )
        with self._fault_lock:
            self._faults.append(f)
        return f

    def clear_faults(self) -> None:
        with self._fault_lock:
            self._faults.clear()

    def _apply_faults(self, method: str, path: str, target: str) -> Optional[Response]:
        """Faults in the order added. Latency accumulates; the first status/rate-limit answer wins."""
        sleep_ms = 0
        answer: Optional[Response] = None
        with self._fault_lock:
            for f in self._faults:
                if not f.matches(method, path, target):
                    continue
                if f.rate_limit_per_s is not None:
                    if f.take_token():
                        continue
                    f.fired += 1
                    retry = f.retry_after if f.retry_after is not None else 1
                    answer = _fault_response(429, f.error_code, f.message or "Injected fault: route rate limit exceeded.", retry)
                    break
                f.fired += 1
                sleep_ms += f.latency_ms
                if f.status is not None:
                    answer = _fault_response(f.status, f.error_code, f.message, f.retry_after)
                    break
        if sleep_ms:
            time.sleep(sleep_ms / 1000.0)
        return answer

    # ---------------------------------------------------------------------------------- state
    def refresh(self) -> None:
        """Re-validate ``emu.tenant`` now (it is also re-checked on each request when it changed)."""
        with self._state_lock:
            self._snapshot = None
            self._state = None
        self._fresh_state()

    def _refresh_state(self) -> None:
        self._state = _State(self.tenant)
        self._snapshot = json.dumps(self.tenant, default=str)

    def _fresh_state(self) -> _State:
        # A test may edit emu.tenant between runs. Serialising it is cheap (C json) and tells us whether
        # to re-normalise (new relative times, new objects without ids) and rebuild the derived views.
        if not self.live_edits and self._state is not None:
            return self._state
        with self._state_lock:
            snap = json.dumps(self.tenant, default=str)
            if snap != self._snapshot or self._state is None:
                normalize(self.tenant, source=self.tenant.source)
                self._refresh_state()
            assert self._state is not None
            return self._state

    def _workspace_by_name(self, name: str) -> Optional[dict]:
        for ws in self.tenant["account"]["workspaces"]:
            if ws["name"] == name:
                return ws
        return None

    # ------------------------------------------------------------------------------- dispatch
    def _dispatch(self, target, method, path, query, body, headers):
        """Return (Response, principal name or None) for one request."""
        try:
            state = self._fresh_state()
        except TenantError as e:
            return Response(500, {"error_code": "INTERNAL_ERROR", "message": f"emulator tenant is invalid: {e}", "details": []}), None

        if target != "account" and target not in state.workspaces:
            return _error(404, "ENDPOINT_NOT_FOUND", f"Workspace {target!r} is no longer in the tenant."), None
        cred, principal = self._authenticate(state, headers)
        principal_name = principal.name if principal is not None else None

        fault = self._apply_faults(method, path, target)
        if fault is not None:
            return fault, principal_name

        table = ACCOUNT_ROUTES if target == "account" else WORKSPACE_ROUTES
        route, params = table.match(path)
        if route is None:
            other = WORKSPACE_ROUTES if target == "account" else ACCOUNT_ROUTES
            hint = ""
            if other.match(path)[0] is not None:
                hint = " (this is a " + ("workspace" if target == "account" else "account") + " API; use the other host)"
            return _error(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'{hint}"), principal_name

        if route.access != PUBLIC:
            denied = self._check_credential(state, target, cred, principal, headers)
            if denied is not None:
                return denied, principal_name
        if method not in route.methods:
            return (
                Response(
                    405,
                    {"error_code": "BAD_REQUEST", "message": f"Method {method} is not supported by the emulator for {path} (read-only: {', '.join(route.methods)} only)", "details": []},
                    {"Allow": ", ".join(route.methods)},
                ),
                principal_name,
            )
        ctx = Ctx(
            emulator=self,
            state=state,
            target=target,
            method=method,
            path=path,
            query=query,
            params=params,
            body=body,
            principal=principal,
        )
        try:
            if route.access == WS_ADMIN and not ctx.view.is_admin(principal):
                raise ApiError(403, "PERMISSION_DENIED", f"Only workspace admins can call {path}. {principal.name} is not an admin of workspace {target!r}.")
            if route.access == ACCOUNT_ADMIN and not state.directory.is_account_admin(principal):
                raise ApiError(403, "PERMISSION_DENIED", f"Only account admins can call the account API. {principal.name} is not an account admin.")
            result = route.handler(ctx)
        except ApiError as e:
            return Response(e.status, e.body(), e.headers), principal_name
        if not isinstance(result, Response):
            result = Response(200, result)
        result.headers = {**ctx.response_headers, **result.headers}
        return result, principal_name

    def _authenticate(self, state: _State, headers):
        auth = headers.get("Authorization") or ""
        if not auth.lower().startswith("bearer "):
            return None, None
        cred = state.credentials.get(auth[7:].strip())
        if cred is None:
            return None, None
        return cred, state.principal_of(cred)

    def _check_credential(self, state: _State, target: str, cred, principal, headers) -> Optional[Response]:
        if not headers.get("Authorization"):
            return _error(401, "UNAUTHENTICATED", "No credentials supplied: send 'Authorization: Bearer <token>'.")
        if cred is None or principal is None:
            return _error(401, "UNAUTHENTICATED", "Invalid access token.")
        if target == "account":
            if not cred.get("account"):
                return _error(401, "UNAUTHENTICATED", "Invalid access token: this token is not valid for the account API.")
        elif cred.get("workspace") != target and not cred.get("account"):
            # An account-level token (OAuth M2M of an account service principal) also authenticates on
            # the workspaces the principal is assigned to (checked below); a workspace token only on its own.
            return _error(401, "UNAUTHENTICATED", f"Invalid access token: this token is not valid for workspace {target!r}.")
        if not principal.active:
            return _error(401, "UNAUTHENTICATED", f"Invalid access token: {principal.name} is deactivated.")
        if target != "account" and not state.view(target).is_member(principal):
            return _error(401, "UNAUTHENTICATED", f"The credential of {principal.name} is not valid in workspace {target!r}: the principal is not a member of it.")
        return None


def _statement_text(method: str, path: str, body: bytes) -> Optional[str]:
    if method != "POST" or path != "/api/2.0/sql/statements":
        return None
    try:
        text = json.loads(body or b"{}").get("statement")
    except (ValueError, AttributeError):
        return None
    return text if isinstance(text, str) else None


def _error(status: int, code: str, message: str, headers=None) -> Response:
    return Response(status, {"error_code": code, "message": message, "details": []}, headers or {})


def _fault_response(status: int, error_code, message, retry_after) -> Response:
    code, msg = _DEFAULT_FAULT.get(status, ("INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST", f"Injected fault: HTTP {status}."))
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = str(int(retry_after))
    elif status in (429, 503):
        headers["Retry-After"] = "0"
    return _error(status, error_code or code, message or msg, headers)


def serve(tenant_path, host: str = "127.0.0.1", port: int = 0, out=None) -> None:
    """Run the emulator in the foreground for a CLI; print where everything is; block until Ctrl-C."""
    out = out or sys.stdout
    emu = Emulator(tenant_path, host=host, port=port).start()
    try:
        print(f"Databricks emulator ({emu.tenant.source or 'tenant'})", file=out)
        print(f"  account API : {emu.account_url}", file=out)
        print(f"  account id  : {emu.account_id}", file=out)
        for ws in emu.workspaces:
            print(f"  workspace {ws['name']!r} (id {ws['id']}): {ws['url']}", file=out)
        creds = emu.tenant.get("credentials") or []
        if creds:
            print("  credentials (emulator-only fake tokens):", file=out)
            for c in creds:
                scope = "account" if c.get("account") else f"workspace {c['workspace']}"
                print(f"    {c['principal']:<45} {scope:<22} {c['token']}", file=out)
        print("Press Ctrl-C to stop.", file=out)
        out.flush()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
