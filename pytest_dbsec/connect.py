"""Building databricks-sdk clients: from a profile, a host, the environment, or the demo emulator.

Two things the SDK does not do for us:

* It retries a dead host for 300 s by default (also in the host-metadata probe that every
  ``Config()`` sends). A CLI user with a typo in a host name must hear about it within seconds, so
  ``preflight`` uses a short retry budget and a short HTTP timeout; collection clients get a longer
  budget so that 429/``Retry-After`` is still honoured.
* It sleeps on each 429 request by request, so a fan-out under a rate limit retries in bursts.
  ``pace`` puts every client of a run behind one limiter per host (``throttle.py``).
* It gives no per-request record. We hang a response hook on its HTTP session so every section can
  say which calls it made (the read-only proof and the call counts come from here).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Callable

from databricks.sdk import AccountClient, WorkspaceClient
from databricks.sdk.config import Config
from databricks.sdk.errors import DatabricksError

from . import __version__

PREFLIGHT_RETRY_S = 5  # dead host / 5xx: give up after this, so bad input fails "within seconds"
PREFLIGHT_HTTP_TIMEOUT_S = 5
COLLECT_RETRY_S = 120  # 429 with Retry-After: the SDK keeps retrying within this budget
COLLECT_HTTP_TIMEOUT_S = 60


class ConnectError(Exception):
    """One clear line: which target, and what is wrong with it (profile, host, credentials)."""


@dataclass(frozen=True)
class Target:
    """Where one workspace (or the account) is, and how to authenticate. Never printed with secrets."""

    name: str  # workspace display name, or "account"
    kind: str = "workspace"  # "workspace" | "account"
    profile: str | None = None
    host: str | None = None
    account_id: str | None = None
    workspace_id: int | None = None
    token: str | None = field(default=None, repr=False)  # only for the demo emulator / explicit use
    config_file: str | None = None

    def describe(self) -> str:
        bits = [f"{self.kind} {self.name!r}"]
        if self.profile:
            bits.append(f"profile {self.profile!r}")
        if self.host:
            bits.append(f"host {self.host}")
        return ", ".join(bits)


def _config(target: Target, retry_s: int, http_timeout_s: int) -> Config:
    kwargs: dict = dict(
        retry_timeout_seconds=retry_s,
        http_timeout_seconds=http_timeout_s,
        product="pytest-dbsec",
        product_version=__version__,
    )
    if target.profile:
        kwargs["profile"] = target.profile
    if target.config_file:
        kwargs["config_file"] = target.config_file
    if target.host:
        kwargs["host"] = target.host
    if target.account_id:
        kwargs["account_id"] = target.account_id
    if target.token:
        # an explicit PAT (the demo): pin the auth type so stray DATABRICKS_CLIENT_ID etc. in the
        # user's environment cannot turn this into "more than one authorization method".
        kwargs["token"] = target.token
        kwargs["auth_type"] = "pat"
    try:
        return Config(**kwargs)
    except ValueError as e:
        raise ConnectError(f"{target.describe()}: {_first_line(e)}") from None
    except DatabricksError as e:
        raise ConnectError(f"{target.describe()}: {_first_line(e)}") from None


def workspace_client(target: Target, *, retry_s: int = COLLECT_RETRY_S,
                     http_timeout_s: int = COLLECT_HTTP_TIMEOUT_S) -> WorkspaceClient:
    client = WorkspaceClient(config=_config(target, retry_s, http_timeout_s))
    observe_calls(client)
    pace(client, retry_s)
    return client


def account_client(target: Target, *, retry_s: int = COLLECT_RETRY_S,
                   http_timeout_s: int = COLLECT_HTTP_TIMEOUT_S) -> AccountClient:
    cfg = _config(target, retry_s, http_timeout_s)
    if not cfg.account_id:
        raise ConnectError(f"{target.describe()}: no account_id (set it in the profile or DATABRICKS_ACCOUNT_ID)")
    client = AccountClient(config=cfg)
    observe_calls(client)
    pace(client, retry_s)
    return client


def preflight(target: Target) -> tuple[str, int | str | None]:
    """Prove the target answers and accepts our credentials; return (who we are, workspace or
    account id). Bounded in time.

    Raises ConnectError with one line for: an unknown profile, an unreachable host, bad credentials.
    """
    try:
        if target.kind == "account":
            a = account_client(target, retry_s=PREFLIGHT_RETRY_S, http_timeout_s=PREFLIGHT_HTTP_TIMEOUT_S)
            # the cheapest account call that needs valid credentials
            list(a.workspaces.list())
            return "account admin", a.config.account_id
        w = workspace_client(target, retry_s=PREFLIGHT_RETRY_S, http_timeout_s=PREFLIGHT_HTTP_TIMEOUT_S)
        me = w.current_user.me()
        # the id comes from host metadata when the workspace publishes it, else from /Me's header
        workspace_id = w.config.workspace_id or w.get_workspace_id()
        return me.display_name or me.user_name or "?", workspace_id
    except ConnectError:
        raise
    except TimeoutError as e:
        cause = e.__cause__
        if cause is not None and not isinstance(cause, DatabricksError):
            raise ConnectError(f"{target.describe()}: host does not answer (gave up after "
                               f"{PREFLIGHT_RETRY_S}s: {_first_line(cause)})") from None
        raise ConnectError(f"{target.describe()}: host keeps failing: {_first_line(cause or e)}") from None
    except DatabricksError as e:
        status = getattr(e, "error_code", None) or type(e).__name__
        if type(e).__name__ in ("Unauthenticated", "PermissionDenied") or status in (
                "UNAUTHENTICATED", "PERMISSION_DENIED", "INVALID_TOKEN"):
            raise ConnectError(f"{target.describe()}: credentials rejected ({status}): "
                               f"{_first_line(e)}") from None
        raise ConnectError(f"{target.describe()}: {status}: {_first_line(e)}") from None
    except ValueError as e:
        raise ConnectError(f"{target.describe()}: {_first_line(e)}") from None
    except OSError as e:  # requests.ConnectionError and friends, outside the SDK's retry loop
        raise ConnectError(f"{target.describe()}: host does not answer: {_first_line(e)}") from None


# -- call recording -------------------------------------------------------------------------------

_recorder = threading.local()


class CallLog:
    """Collects the HTTP requests made on this thread while it is active (see ``recording``)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __enter__(self) -> "CallLog":
        self._prev = getattr(_recorder, "log", None)
        _recorder.log = self
        return self

    def __exit__(self, *exc) -> None:
        _recorder.log = self._prev

    @property
    def last(self) -> dict | None:
        return self.calls[-1] if self.calls else None


def _on_response(response, *args, **kwargs):
    log: CallLog | None = getattr(_recorder, "log", None)
    if log is not None:
        req = response.request
        path = req.path_url.split("?", 1)[0]
        log.calls.append({"method": req.method, "path": path, "status": response.status_code})
    return response


def observe_calls(client) -> bool:
    """Attach the response hook to the SDK's HTTP session. The session is private to the SDK, so
    this is best effort: if a future SDK moves it, calls simply go unrecorded (said in the report)."""
    session = _session(client)
    if session is None or not hasattr(session, "hooks"):
        return False
    hooks: list[Callable] = session.hooks.setdefault("response", [])
    if _on_response not in hooks:
        hooks.append(_on_response)
    return True


def pace(client, retry_s: float) -> bool:
    """Send the client's requests to its host through the run-wide per-host limiter (throttle.py):
    a bounded window per host, adaptive pacing per route, 429/Retry-After retried within retry_s
    (the SDK's own retry deadline is the same, so it gives up as soon as the limiter does)."""
    from . import throttle

    session = _session(client)
    host = getattr(getattr(client, "config", None), "host", None)
    if session is None or not host:
        return False
    throttle.install(session, host, retry_s, on_retry=_on_response)
    return True


def _session(client):
    return getattr(getattr(getattr(client, "api_client", None), "_api_client", None), "_session", None)


# -- secrets never leave ------------------------------------------------------------------------

# (pattern, replacement): whole-value patterns become ***, key=value pairs keep the key.
_SECRET_PATTERNS = [
    (re.compile(r"dapi[0-9a-f]{32}(-\d+)?", re.I), "***"),  # Databricks PAT
    (re.compile(r"dose[0-9a-f]{32}", re.I), "***"),  # Databricks OAuth secret
    (re.compile(r"(?i)\b(bearer\s+)[^\s'\"]+"), r"\1***"),
    (re.compile(r"(?i)\b(token|secret|password|client_secret)(\s*[=:]\s*)(?!\*\*\*)[^\s,;'\")]+"), r"\1\2***"),
]


def redact(text: str, known: tuple[str, ...] = ()) -> str:
    """Remove credential-looking material from text bound for a report, log or error."""
    for value in known:
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _first_line(e: BaseException | str) -> str:
    text = str(e).strip().splitlines()
    return redact(text[0] if text else type(e).__name__)
