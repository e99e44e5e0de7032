"""Which workspaces a run audits, and how each one is reached.

An account-wide run starts from the account: it lists the account's workspaces (one call), keeps those
``--dbsec-workspaces`` selects, and reaches each with the account's own credentials, the way
databricks-sdk's ``AccountClient.get_workspace_client`` does (``connect.Target.via``). The host is the
workspace's deployment URL in the account's cloud, or the URL given for it in a URL list
(``--dbsec-workspace-urls``, ``dbsec access --workspace-urls``): private link, custom DNS, or an
emulator with one port per workspace. A URL is matched to its workspace by id, which a workspace
publishes in its host metadata without credentials (or, failing that, in the header of an
authenticated call).

A workspace that cannot be audited -- not RUNNING, or no URL for it in the list -- stays in the run with
the reason: its controls ERROR, the others run. Bad input (a malformed URL, a filter that matches no
workspace, a URL that is not a workspace of the account) is a TargetError: one line, exit code 4.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass
from typing import Callable, Iterable
from urllib.parse import urlsplit

from .connect import ConnectError, Target, preflight, workspace_id_at
from .inventory import ACCOUNT

RUNNING = "RUNNING"


class TargetError(ValueError):
    """Bad input about targets: one line naming the flag and the value."""


@dataclass(frozen=True)
class AccountWorkspace:
    """One workspace as the account lists it, and how this run reaches it."""

    id: int
    name: str
    deployment_name: str | None = None
    status: str | None = None
    status_message: str | None = None
    azure_resource_id: str | None = None
    url: str | None = None  # given in a URL list; None = the deployment's URL in the account's cloud
    unavailable: str | None = None  # why it cannot be audited (its controls ERROR with this)

    @classmethod
    def from_wire(cls, ws: dict) -> "AccountWorkspace":
        from databricks.sdk import azure
        from databricks.sdk.service.provisioning import Workspace

        return cls(id=int(ws["workspace_id"]), name=str(ws.get("workspace_name") or ws["workspace_id"]),
                   deployment_name=ws.get("deployment_name"), status=ws.get("workspace_status"),
                   status_message=ws.get("workspace_status_message"),
                   azure_resource_id=azure.get_azure_resource_id(Workspace.from_dict(ws)))

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> "AccountWorkspace":
        return cls(**obj)

    def target(self, account: Target) -> Target:
        return Target(name=self.name, host=self.url, workspace_id=self.id, via=account,
                      deployment_name=self.deployment_name, azure_resource_id=self.azure_resource_id)


def parse_urls(text: str | None, flag: str) -> list[str]:
    """``URL,URL,...`` -> normalised URLs (``https://`` when no scheme). Malformed or repeated: TargetError."""
    out: list[str] = []
    for raw in (text or "").split(","):
        raw = raw.strip()
        if not raw:
            continue
        url = raw if "://" in raw else f"https://{raw}"
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
        except ValueError as e:
            raise TargetError(f"{flag}: {raw!r} is not a URL ({e})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") \
                or parts.query or parts.fragment:
            raise TargetError(f"{flag}: {raw!r} is not a workspace URL (expected https://HOST[:PORT])")
        url = f"{parts.scheme}://{parts.netloc}"
        if url in out:
            raise TargetError(f"{flag}: {raw!r} is given twice")
        out.append(url)
    if text is not None and not out:
        raise TargetError(f"{flag}: no URL given")
    return out


def select(workspaces: list[AccountWorkspace], patterns: str | None, flag: str) -> list[AccountWorkspace]:
    """The workspaces a ``name,id,glob`` list picks (all when None). A pattern matching none: TargetError
    (a typo must not shrink an audit without a word)."""
    if patterns is None:
        return list(workspaces)
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    if not wanted:
        raise TargetError(f"{flag}: no workspace name, id or pattern given")
    chosen: set[int] = set()
    for pattern in wanted:
        hits = {w.id for w in workspaces if pattern == str(w.id) or fnmatch.fnmatchcase(w.name, pattern)}
        if not hits:
            names = ", ".join(sorted(w.name for w in workspaces)) or "none"
            raise TargetError(f"{flag}: {pattern!r} matches no workspace of the account (it has: {names})")
        chosen |= hits
    return [w for w in workspaces if w.id in chosen]


def match_urls(urls: Iterable[str], workspaces: list[AccountWorkspace], account: Target | None,
               flag: str, workspace_id_of: Callable[[str], int | None] | None = None) -> dict[int, str]:
    """Which account workspace each URL is: {workspace id: URL}. A host named after a deployment
    (``corp-prod.cloud.databricks.com``, ``corp-prod.privatelink.example.com``) is that workspace, without
    a call -- so a workspace that is down can still be named; otherwise the id comes from the host's
    metadata (no credentials), else from an authenticated call with the account's credentials. A URL
    that cannot be matched, or whose workspace the account does not list, is a TargetError."""
    by_id = {w.id: w for w in workspaces}
    probe = workspace_id_of or workspace_id_at
    out: dict[int, str] = {}
    for url in urls:
        host = urlsplit(url).hostname or ""
        wid = next((w.id for w in workspaces if w.deployment_name and
                    (host == w.deployment_name or host.startswith(f"{w.deployment_name}."))), None)
        if wid is None:
            wid = probe(url)
        if wid is None and account is not None:
            try:
                wid = int(preflight(Target(name=url, host=url, via=account))[1])
            except (ConnectError, TypeError, ValueError) as e:
                raise TargetError(f"{flag}: {url}: cannot tell which workspace it is: {e}") from None
        if wid is None:
            raise TargetError(f"{flag}: {url}: cannot tell which workspace it is (no workspace id in its metadata)")
        if wid not in by_id:
            raise TargetError(f"{flag}: {url} is workspace {wid}, which the account does not list")
        if wid in out:
            raise TargetError(f"{flag}: {url} and {out[wid]} are the same workspace ({by_id[wid].name})")
        out[wid] = url
    return out


def plan(listed: list[dict], patterns: str | None, urls: list[str], account: Target,
         filter_flag: str, urls_flag: str) -> list[AccountWorkspace]:
    """The workspaces an account-wide run audits, in the account's order, each with its URL or the
    reason it cannot be audited."""
    workspaces = [AccountWorkspace.from_wire(w) for w in listed]
    names = [w.name for w in workspaces]
    # test ids, reports and the access graph name workspaces by name: keep every name unique, and apart
    # from the account's own scope name
    workspaces = [w if names.count(w.name) == 1 and w.name != ACCOUNT else _renamed(w, f"{w.name} ({w.id})")
                  for w in workspaces]
    chosen = select(workspaces, patterns, filter_flag)
    if not chosen:
        raise TargetError("the account lists no workspace to audit")
    url_of = match_urls(urls, workspaces, account, urls_flag) if urls else {}
    out = []
    for w in chosen:
        reason = None
        if w.status and w.status != RUNNING:
            reason = (f"workspace {w.name!r} is not running (status {w.status}"
                      + (f": {w.status_message}" if w.status_message else "") + "); it cannot be audited until it is")
        elif urls and w.id not in url_of:
            reason = f"workspace {w.name!r} has no URL in {urls_flag} (give one to audit it)"
        out.append(_renamed(w, w.name, url=url_of.get(w.id), unavailable=reason))
    return out


def cannot_connect(e: ConnectError) -> str:
    """Why a workspace of an account-wide run cannot be read, from its failed preflight."""
    hint = " (the account's principal must be assigned to the workspace)" if "credentials rejected" in str(e) else ""
    return f"cannot connect: {e}{hint}"


def _renamed(w: AccountWorkspace, name: str, **changes) -> AccountWorkspace:
    return AccountWorkspace(**{**asdict(w), "name": name, **changes})
