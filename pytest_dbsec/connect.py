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

import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

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
    # A workspace reached with the account's credentials (an account-wide run, see targets.py): ``via``
    # is the account target; the host is ``host`` or, if None, the deployment's URL in the account's cloud.
    via: "Target | None" = None
    deployment_name: str | None = None
    azure_resource_id: str | None = None
    # an account target's resolved Config per (retry, timeout), copied for each of its workspaces: one
    # profile read and host-metadata probe per run, not two per workspace
    _resolved: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def describe(self) -> str:
        bits = [f"{self.kind} {self.name!r}"]
        if self.profile:
            bits.append(f"profile {self.profile!r}")
        if self.host:
            bits.append(f"host {self.host}")
        if self.via is not None:
            bits.append("with the account credentials" + (f" of profile {self.via.profile!r}"
                                                          if self.via.profile else ""))
        return ", ".join(bits)


def _config(target: Target, retry_s: int, http_timeout_s: int) -> Config:
    if target.via is not None:
        return _config_via_account(target, retry_s, http_timeout_s)
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


def _config_via_account(target: Target, retry_s: int, http_timeout_s: int) -> Config:
    """The workspace config the SDK's ``AccountClient.get_workspace_client`` builds -- a copy of the
    account's config with the workspace's host, no account id, the workspace id -- except that the host
    may be given (private link, custom DNS, an emulator) instead of derived from the deployment name."""
    account = target.via._resolved.get((retry_s, http_timeout_s))
    if account is None:
        account = target.via._resolved[(retry_s, http_timeout_s)] = _config(target.via, retry_s, http_timeout_s)
    cfg = account.deep_copy()
    try:
        cfg.host = target.host or cfg.environment.deployment_url(target.deployment_name or "")
        cfg.azure_workspace_resource_id = target.azure_resource_id
        # the SDK does ``config.account_id = None``, which its str-typed attribute stores as 'None' (and the
        # databricks-cli auth would pass on as --account-id None): drop the value instead
        cfg._inner.pop("account_id", None)
        cfg.workspace_id = str(target.workspace_id) if target.workspace_id is not None else None
        cfg.init_auth()
    except ValueError as e:
        raise ConnectError(f"{target.describe()}: {_first_line(e)}") from None
    return cfg


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


class Connected(NamedTuple):
    """What preflight learnt: who we are, the workspace (or account) id, the host the SDK resolved
    (also when the target named none: the environment or the Databricks runtime did) and how it
    authenticated (``pat``, ``oauth-m2m``, ``runtime``, ...)."""

    who: str
    id: int | str | None
    host: str | None
    auth_type: str | None


def preflight(target: Target) -> Connected:
    """Prove the target answers and accepts our credentials. Bounded in time.

    Raises ConnectError with one line for: an unknown profile, an unreachable host, bad credentials.
    """
    with _bounded(target):
        if target.kind == "account":
            a = account_client(target, retry_s=PREFLIGHT_RETRY_S, http_timeout_s=PREFLIGHT_HTTP_TIMEOUT_S)
            # the cheapest account call that needs valid credentials
            list(a.workspaces.list())
            return Connected("account admin", a.config.account_id, a.config.host, a.config.auth_type)
        w = workspace_client(target, retry_s=PREFLIGHT_RETRY_S, http_timeout_s=PREFLIGHT_HTTP_TIMEOUT_S)
        me = w.current_user.me()
        # the id comes from host metadata when the workspace publishes it, else from /Me's header
        workspace_id = w.config.workspace_id or w.get_workspace_id()
        return Connected(me.display_name or me.user_name or "?", workspace_id, w.config.host, w.config.auth_type)


def list_workspaces(target: Target) -> list[dict]:
    """The account's workspaces (wire dicts), bounded in time like ``preflight``, which it replaces
    for the account target of an account-wide run."""
    with _bounded(target):
        a = account_client(target, retry_s=PREFLIGHT_RETRY_S, http_timeout_s=PREFLIGHT_HTTP_TIMEOUT_S)
        return [w.as_dict() for w in a.workspaces.list()]


def workspace_id_at(url: str) -> int | None:
    """The id a workspace host publishes in its metadata (``/.well-known/databricks-config``, no
    credentials needed), or None if it publishes none or does not answer."""
    from databricks.sdk._base_client import _BaseClient
    from databricks.sdk.oauth import get_host_metadata

    client = _BaseClient(retry_timeout_seconds=PREFLIGHT_RETRY_S, http_timeout_seconds=PREFLIGHT_HTTP_TIMEOUT_S)
    try:
        meta = get_host_metadata(url, client=client)
        return int(meta.workspace_id) if meta.workspace_id else None
    except (ValueError, TypeError):
        return None


@contextmanager
def _bounded(target: Target):
    """Turn whatever a bounded first call raises into one ConnectError line."""
    try:
        yield
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


def runtime_host() -> str | None:
    """Inside Databricks (a job or a notebook) the SDK authenticates as the job's own identity through
    its ``runtime`` credentials, which also name the workspace. Return the host the SDK's default
    resolution gives there -- the same resolution the run will use; with nothing else configured it sends
    no request and reads no secret -- so a run can be named after it. None outside Databricks, or when
    nothing resolves (the run's preflight then says why)."""
    if "DATABRICKS_RUNTIME_VERSION" not in os.environ:  # the SDK's own test for "inside Databricks"
        return None
    try:
        return Config(retry_timeout_seconds=PREFLIGHT_RETRY_S, http_timeout_seconds=PREFLIGHT_HTTP_TIMEOUT_S).host
    except (ValueError, DatabricksError):
        return None


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
        call = {"method": req.method, "path": path, "status": response.status_code}
        log.calls.append(call)
        _recorder.last = call  # this thread's own last call (a fan-out's threads share one log)
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
    # the SDK appends its whole config (host, masked token, ...) to auth errors: noise in one line
    return redact(text[0].split(". Config: ")[0] if text else type(e).__name__)
