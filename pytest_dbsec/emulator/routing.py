"""Routes, request context, errors and paging helpers shared by the route modules.

Route modules declare handlers with :func:`route`; a handler takes a :class:`Ctx` and returns a JSON-able
value (served as 200) or a :class:`Response`, or raises :class:`ApiError`. The server does the rest:
authentication, admin checks, method checks, faults and the request log.
"""

from __future__ import annotations

import base64
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

# Admin requirement of a route.
PUBLIC = "public"  # no authentication at all (/.well-known/databricks-config)
ANYONE = "anyone"  # any authenticated principal of this listener
WS_ADMIN = "workspace-admin"
ACCOUNT_ADMIN = "account-admin"


class ApiError(Exception):
    def __init__(self, status: int, error_code: str, message: str, headers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error_code": self.error_code, "message": self.message, "details": []}


def not_found(message: str, code: str = "RESOURCE_DOES_NOT_EXIST") -> ApiError:
    return ApiError(404, code, message)


def bad_request(message: str, code: str = "INVALID_PARAMETER_VALUE") -> ApiError:
    return ApiError(400, code, message)


class Response:
    def __init__(self, status: int = 200, body: Any = None, headers: Optional[Dict[str, str]] = None, raw: Optional[bytes] = None):
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.raw = raw  # a non-JSON body (workspace export with direct_download)


class Route:
    def __init__(self, methods: Tuple[str, ...], pattern: str, handler: Callable, access: str):
        self.methods = methods
        self.pattern = pattern
        self.handler = handler
        self.access = access
        rx = re.sub(r"\{(\w+):path\}", r"(?P<\1>.+)", pattern)
        rx = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", rx)
        self.regex = re.compile("^" + rx + "$")


class RouteTable:
    def __init__(self):
        self.routes: List[Route] = []

    def route(self, pattern: str, access: str = ANYONE, methods: Tuple[str, ...] = ("GET",)):
        def deco(fn):
            self.routes.append(Route(methods, pattern, fn, access))
            return fn

        return deco

    def match(self, path: str):
        for r in self.routes:
            m = r.regex.match(path)
            if m:
                return r, m.groupdict()
        return None, None

    def extend(self, other: "RouteTable") -> None:
        self.routes.extend(other.routes)


class Ctx:
    """Everything a handler needs for one request."""

    def __init__(self, *, emulator, state, target, method, path, query, params, body, principal):
        self.emulator = emulator
        self.state = state  # server._State: tenant, directory, workspace views
        self.tenant = state.tenant
        self.account = state.tenant["account"]
        self.target = target  # "account" or a workspace name
        self.method = method
        self.path = path
        self.query: Dict[str, List[str]] = query
        self.params: Dict[str, str] = params
        self.body = body
        self.principal = principal
        self.ws = state.workspaces.get(target) if target != "account" else None
        self.view = state.view(target) if self.ws is not None else None
        self.paging = state.tenant.get("paging") or {}
        self.response_headers: Dict[str, str] = {}

    # Query helpers. Repeated keys keep all values; scalar accessors take the last one.
    def q(self, name: str, default: Optional[str] = None) -> Optional[str]:
        v = self.query.get(name)
        return v[-1] if v else default

    def qlist(self, name: str) -> List[str]:
        out: List[str] = []
        for v in self.query.get(name, []):
            out.extend(x for x in v.split(",") if x)
        return out

    def qint(self, name: str, default: Optional[int] = None, minimum: Optional[int] = None) -> Optional[int]:
        v = self.q(name)
        if v is None or v == "":
            return default
        try:
            n = int(v)
        except ValueError:
            raise bad_request(f"Invalid value for '{name}': {v!r} is not an integer")
        if minimum is not None and n < minimum:
            raise bad_request(f"Invalid value for '{name}': must be at least {minimum}")
        return n

    def qbool(self, name: str, default: bool = False) -> bool:
        v = self.q(name)
        if v is None:
            return default
        # The SDK sends top-level booleans as true/false and nested ones as True/False.
        return v.strip().lower() in ("true", "1", "yes")

    def require(self, name: str) -> str:
        v = self.q(name)
        if v is None or v == "":
            raise bad_request(f"Missing required field: {name}")
        return v

    # Paging caps from the tenant.
    @property
    def default_page(self) -> int:
        return int(self.paging.get("default_page", 50))

    @property
    def max_page(self) -> int:
        return int(self.paging.get("max_page", 1000))


# ----------------------------------------------------------------------------------------- paging


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"emu-offset:{offset}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> int:
    try:
        pad = "=" * (-len(token) % 4)
        text = base64.urlsafe_b64decode(token + pad).decode()
        if not text.startswith("emu-offset:"):
            raise ValueError
        n = int(text.split(":", 1)[1])
        if n < 0:
            raise ValueError
        return n
    except (ValueError, UnicodeDecodeError):
        raise bad_request(f"Invalid page token: {token!r}")


def token_page(items: list, size: int, token: Optional[str]) -> Tuple[list, Optional[str]]:
    """One page and the next page token (None on the last page, so SDK loops end)."""
    start = _decode_token(token) if token else 0
    size = max(1, size)
    page = items[start : start + size]
    nxt = start + size
    return page, (_encode_token(nxt) if nxt < len(items) else None)


def paged(ctx: Ctx, items: list, key: str, *, size_param: str, token_param: str = "page_token", default: Optional[int] = None,
          render: Optional[Callable[[Any], Any]] = None) -> dict:
    """Serve ``items`` under ``key`` with page-size/page-token paging.

    With no size (or 0, "server's choice") the page is ``default`` or the tenant's ``paging.default_page``;
    an explicit size is capped by ``paging.max_page``. ``render``, if given, turns each item of the page
    into its wire form (only the page's items: a list of thousands is served page by page).
    """
    size = ctx.qint(size_param, minimum=0)
    if not size:
        size = default if default else ctx.default_page
    size = min(size, ctx.max_page)
    page, nxt = token_page(items, size, ctx.q(token_param))
    out: Dict[str, Any] = {key: [render(i) for i in page] if render else page}
    if nxt:
        out["next_page_token"] = nxt
    return out


def uc_paged(ctx: Ctx, items: list, key: str, render: Optional[Callable[[Any], Any]] = None) -> dict:
    """UC lists: no max_results = everything at once (legacy); otherwise ``paged`` (0 = server page,
    n = min(n, cap)), which renders only the page's items."""
    if ctx.qint("max_results", minimum=0) is None and not ctx.q("page_token"):
        return {key: [render(i) for i in items] if render else items}
    return paged(ctx, items, key, size_param="max_results", render=render)
