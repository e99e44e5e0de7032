"""``dbsec access --output html``: the answer document as one self-contained, offline page.

Rendered from the SAME document as the JSON / CSV / text outputs (``report/access.py``), so the page
can never say something the JSON does not. The page is what an incident responder opens on a
laptop that may be cut off from the network, or attaches to a ticket: so no CDN, no external
stylesheet or font, no script at all. Collapsing is done with ``<details>/<summary>``, which the
browser handles natively.

Security: every name on the page comes from the tenant, and a tenant may be hostile (a group named
``<script>…``). Every data value goes through :func:`_e` (``html.escape(quote=True)``) and data
never appears inside an attribute: attributes hold only the constant class names below.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone

# A node (group, privilege, list of records) with more entries than this is folded: `account users`
# can fan out to 10,000 identities, and an open list that long buries the rest of the answer.
COLLAPSE_AFTER = 25

# severity -> CSS class; a closed set so a severity string from the data never reaches an attribute
_SEVERITY_CLASS = {"critical": "sev-critical", "high": "sev-high", "medium": "sev-medium", "low": "sev-low"}
_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}

# how each record list is titled inside a group box, in display order
_KINDS = (("workspace_roles", "Workspace roles"), ("uc_grants", "Unity Catalog grants"),
          ("workspace_object_permissions", "Object permissions"), ("secret_scopes", "Secret scopes"))

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em;color:#1d2330;background:#fafbfc}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .5em}
.meta{color:#5b6475;margin:0 0 1em}
.banner{border:2px solid #b3261e;background:#fde7e5;color:#5c0f0a;padding:.6em 1em;border-radius:6px;margin:1em 0}
.banner b{font-size:1.05em}.ok{border:1px solid #2e7d32;background:#e8f5e9;color:#1b4d1e;padding:.4em 1em;border-radius:6px}
.box{border:1px solid #c5cbd6;border-left:4px solid #4a6fa5;background:#fff;border-radius:5px;margin:.45em 0 .45em 1.6em;padding:.2em .7em .4em}
.box.root{margin-left:0;border-left-color:#1d2330}
.box.res{border-left-color:#8a5a00}
details>summary{cursor:pointer;padding:.2em 0}
summary .name{font-weight:600}.kind{color:#5b6475;font-size:.9em}
.count{color:#5b6475;font-size:.85em}
.kind-title{font-weight:600;color:#3a4356;margin:.35em 0 .1em;font-size:.92em}
ul.recs{margin:.1em 0 .3em;padding-left:1.3em}ul.recs li{margin:.05em 0}
.priv{font-family:ui-monospace,Menlo,Consolas,monospace;font-weight:600}
.inh{color:#5b6475;font-style:italic}
.chain{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;color:#3a4356}
.tag{display:inline-block;padding:0 .45em;border-radius:3px;font-size:.8em;font-weight:700;margin-right:.3em}
.sev-critical{background:#b3261e;color:#fff}.sev-high{background:#e8590c;color:#fff}
.sev-medium{background:#f2c94c;color:#3d2e00}.sev-low{background:#d7dde8;color:#1d2330}
.sev-unknown{background:#d7dde8;color:#1d2330}
li.esc{background:#fff4e5}
table{border-collapse:collapse;margin:.3em 0}td,th{border:1px solid #d7dde8;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef1f6}
"""


def _e(value) -> str:
    """Every data value on the page passes here; None is shown as an empty string."""
    return html.escape("" if value is None else str(value), quote=True)


def _chain(via) -> str:
    return '<span class="chain">' + " → ".join(_e(x) for x in (via or [])) + "</span>"


def _sev(severity) -> str:
    cls = _SEVERITY_CLASS.get(str(severity).lower(), "sev-unknown")
    return f'<span class="tag {cls}">{_e(str(severity).upper())}</span>'


def _when(ms) -> str:
    """Token expiry arrives as epoch milliseconds (PATs) or as text (OAuth secrets)."""
    if isinstance(ms, (int, float)) and not isinstance(ms, bool):
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return _e(ms)


def _list(items: list[str], title: str | None = None) -> str:
    """A record list; folded into <details> when long so one huge list does not hide the others."""
    if not items:
        return ""
    body = '<ul class="recs">' + "".join(f"<li>{i}</li>" for i in items) + "</ul>"
    head = f'<div class="kind-title">{_e(title)} <span class="count">({len(items)})</span></div>' if title else ""
    if len(items) > COLLAPSE_AFTER:
        label = _e(title or "entries")
        return f'<details><summary>{label} <span class="count">({len(items)}, folded)</span></summary>{body}</details>'
    return head + body


# -- principal mode: principal → groups → resources ---------------------------------------------


class _Node:
    """One box of the diagram: a principal or a group, the records it grants, its child groups."""

    def __init__(self, name: str):
        self.name, self.children, self.records = name, {}, {}

    def at(self, path: list[str]) -> "_Node":
        node = self
        for name in path:
            node = node.children.setdefault(name, _Node(name))
        return node

    def add(self, kind: str, line: str) -> None:
        self.records.setdefault(kind, []).append(line)

    def size(self) -> int:
        return len(self.children) + sum(len(v) for v in self.records.values())


def _uc_line(r: dict) -> str:
    line = (f'<span class="priv">{_e(r["privilege"])}</span> on '
            f'{_e(str(r["securable_type"]).lower())} {_e(r["full_name"])}')
    if r.get("inherited_from"):
        line += f' <span class="inh">(inherited from {_e(r["inherited_from"])})</span>'
    return line


def _blast_tree(answer: dict, root_name: str) -> _Node:
    """Each record hangs under the last group of its chain, so the boxes from the root down to a
    record ARE the chain that explains it (the same shape as the text tree)."""
    root = _Node(root_name)
    findings_at: dict[tuple, list[dict]] = {}
    for f in answer.get("escalation_findings", []):
        findings_at.setdefault(tuple(f.get("path") or [])[1:], []).append(f)
    for r in answer.get("group_memberships", []):
        root.at((r.get("chain") or [])[1:])  # a group that grants nothing is still a membership
    for r in answer.get("workspace_roles", []):
        root.at(r["via"][1:]).add("workspace_roles", f'<span class="priv">{_e(r["permission_level"])}</span> on '
                                  f'workspace {_e(r["workspace_name"])}'
                                  + (f' <span class="inh">({_e(r["source"])})</span>' if r.get("source") else ""))
    for r in answer.get("uc_grants", []):
        root.at(r["via"][1:]).add("uc_grants", _uc_line(r))
    for r in answer.get("workspace_object_permissions", []):
        name = r.get("object_name") or r.get("object_id")
        line = (f'<span class="priv">{_e(r["permission_level"])}</span> on {_e(r["object_type"])} {_e(name)} '
                f'<span class="inh">({_e(r["workspace_name"])}'
                + (f", inherited from {_e(' / '.join(map(str, r.get('inherited_from_object') or [])))}"
                   if r.get("inherited") else "") + ")</span>")
        root.at(r["via"][1:]).add("workspace_object_permissions", line)
    for r in answer.get("secret_scopes", []):
        root.at(r["via"][1:]).add("secret_scopes", f'<span class="priv">{_e(r["permission"])}</span> on secret scope '
                                  f'{_e(r["scope"])} <span class="inh">({_e(r["workspace_name"])})</span>')
    # a finding sits in the box where its path ends: that group is what to cut to remove it
    for path, fs in findings_at.items():
        node = root.at(list(path))
        for f in fs:
            node.add("escalation_findings", _finding_line(f, with_path=False))
    return root


def _finding_line(f: dict, with_path: bool = True) -> str:
    line = f'{_sev(f["severity"])}<b>{_e(f["kind"])}</b> {_e(f["target"])}: {_e(f["reason"])}'
    if with_path:
        line += " — " + _chain(f.get("path"))
    return line


def _counts(node: _Node) -> str:
    grants = sum(len(v) for k, v in node.records.items() if k != "escalation_findings")
    parts = [f"{grants} grant{'s' if grants != 1 else ''}"]
    if node.children:
        parts.append(f"{len(node.children)} group{'s' if len(node.children) != 1 else ''}")
    if node.records.get("escalation_findings"):
        parts.append(f"{len(node.records['escalation_findings'])} escalation")
    return " · ".join(parts)


def _box(node: _Node, kind_label: str, root: bool = False) -> str:
    parts = []
    if node.records.get("escalation_findings"):
        parts.append('<div class="kind-title">Escalation findings here</div><ul class="recs">'
                     + "".join(f'<li class="esc">{x}</li>' for x in node.records["escalation_findings"]) + "</ul>")
    for key, title in _KINDS:
        parts.append(_list(node.records.get(key, []), title))
    for _, child in sorted(node.children.items()):
        parts.append(_box(child, "group"))
    # large groups start folded; the root (the answer itself) and small groups start open
    is_open = " open" if root or node.size() <= COLLAPSE_AFTER else ""
    cls = "box root" if root else "box"
    return (f'<details class="{cls}"{is_open}><summary><span class="name">{_e(node.name)}</span> '
            f'<span class="kind">{_e(kind_label)}</span> <span class="count">({_counts(node)})</span>'
            f'</summary>{"".join(parts)}</details>')


def _extras(answer: dict) -> str:
    """run_as and credentials belong to the identity itself, not to a group: listed under the map."""
    out = []
    if answer.get("run_as"):
        out.append("<h2>Jobs and pipelines that run as this identity</h2>"
                   + _list([f'{_e(r["kind"])} <b>{_e(r["name"])}</b> ({_e(r["id"])}, {_e(r["workspace_name"])})'
                            f' <span class="inh">{_e(r.get("source"))}</span>' for r in answer["run_as"]]))
    if answer.get("credentials"):
        rows = []
        for r in answer["credentials"]:
            expiry = "never expires" if r.get("never_expires") else _when(r.get("expiry") or r.get("expire_time"))
            rows.append(f"<tr><td>{_e(r.get('type'))}</td><td>{_e(r.get('token_id') or r.get('id'))}</td>"
                        f"<td>{_e(r.get('workspace_name'))}</td><td>{_e(r.get('comment'))}</td><td>{expiry}</td></tr>")
        # ids and expiry only: the document never holds a credential value, and neither does the page
        out.append("<h2>Credentials (ids and expiry only)</h2><table><tr><th>Type</th><th>Id</th>"
                   "<th>Workspace</th><th>Comment</th><th>Expiry</th></tr>" + "".join(rows) + "</table>")
    return "".join(out)


def _audit(doc: dict) -> str:
    """The principal's recent actions from system.access.audit (or why they are not shown)."""
    audit = doc.get("audit_log")
    if audit is None:
        return ""
    if not audit.get("queried"):
        return f"<h2>Audit log</h2><p>{_e(audit.get('reason') or 'not queried')}</p>"
    head = (f"<h2>Audit log: actions with lasting side effects, last {_e(audit.get('days'))} days</h2>"
            f"<p class=\"meta\">system.access.audit via SQL warehouse {_e(audit.get('warehouse_id'))} of "
            f"{_e(audit.get('workspace_name'))}</p>")
    if audit.get("error"):
        return head + f'<div class="banner"><b>QUERY FAILED</b>: {_e(audit["error"])}</div>'
    actions = doc.get("audit_actions") or []
    if not actions:
        return head + "<p>No such action in the window.</p>"
    rows = "".join(
        f"<tr><td>{_e(r.get('event_time'))}</td><td>{_e(r.get('workspace_name') or r.get('workspace_id'))}</td>"
        f"<td>{_e(r.get('service_name'))}</td><td>{_e(r.get('action_name'))}</td><td>{_e(r.get('status_code'))}</td>"
        f"<td>{_e(r.get('source_ip_address'))}</td><td>{_e(r.get('request_params'))}"
        + (f" <span class=\"inh\">error: {_e(r['error_message'])}</span>" if r.get("error_message") else "")
        + "</td></tr>" for r in actions)
    table = ("<table><tr><th>Time (UTC)</th><th>Workspace</th><th>Service</th><th>Action</th><th>Status</th>"
             "<th>Source IP</th><th>Request (no secret values)</th></tr>" + rows + "</table>")
    more = (f"<p>Cut at {_e(audit.get('row_cap'))} actions (newest first).</p>" if audit.get("truncated") else "")
    if len(actions) > COLLAPSE_AFTER:
        table = f'<details><summary>{len(actions)} actions <span class="count">(folded)</span></summary>{table}</details>'
    return head + table + more


def _findings_summary(answer: dict) -> str:
    fs = sorted(answer.get("escalation_findings", []),
                key=lambda f: _SEVERITY_ORDER.get(str(f.get("severity")).lower(), 9))
    if not fs:
        return ""
    return (f"<h2>Escalation findings ({len(fs)})</h2>"
            + _list([_finding_line(f) for f in fs]).replace("<li>", '<li class="esc">'))


def _principal_label(p: dict) -> tuple[str, str]:
    kind = str(p.get("kind", ""))
    if p.get("display_name") and p["display_name"] != p["name"]:
        kind += f", {p['display_name']}"
    if not p.get("active", True):
        kind += ", INACTIVE"
    return p["name"], kind


def _blast_section(answer: dict, name: str, kind: str) -> str:
    return (_findings_summary(answer) + "<h2>Access map: principal → groups → resources</h2>"
            + _box(_blast_tree(answer, name), kind, root=True) + _extras(answer))


# -- resource mode: resource → privilege → grantee → ... → member ------------------------------


def _resource_section(doc: dict) -> str:
    root = _Node("")
    for r in doc.get("principals", []):
        head = r["privilege"] + (f" (inherited from {r['inherited_from']})" if r.get("inherited_from") else "")
        # the chain runs member → grantee; seen from the resource it is read backwards
        root.at([head] + list(reversed(r.get("via") or [])))

    kinds = {r["principal"]: r.get("principal_kind") for r in doc.get("principals", [])}

    def members(node: _Node) -> str:
        # groups nest as boxes; identities at the end of a chain are one compact list, so a group
        # of 300 users is one folded list rather than 300 boxes
        subgroups = [c for _, c in sorted(node.children.items()) if c.children]
        leaves = [f"<b>{_e(c.name)}</b> <span class=\"kind\">{_e(kinds.get(c.name) or '')}</span>"
                  for _, c in sorted(node.children.items()) if not c.children]
        return "".join(box(c) for c in subgroups) + _list(leaves, "Members" if subgroups else None)

    def box(node: _Node) -> str:
        # `account users` and big groups fan out to many members: fold them
        is_open = " open" if len(node.children) <= COLLAPSE_AFTER else ""
        return (f'<details class="box"{is_open}><summary><span class="name">{_e(node.name)}</span> '
                f'<span class="kind">{_e(kinds.get(node.name) or "group")}</span> '
                f'<span class="count">({len(node.children)} members)</span></summary>{members(node)}</details>')

    heads = "".join(f'<details class="box res" open><summary><span class="priv">{_e(h)}</span> '
                    f'<span class="count">({len(n.children)} direct grantees)</span></summary>'
                    + members(n) + "</details>"
                    for h, n in sorted(root.children.items()))
    res = doc["resource"]
    return ("<h2>Who reaches it: resource → privilege → grantee → members</h2>"
            f'<div class="box root"><b>{_e(str(res["securable_type"]).lower())} {_e(res["full_name"])}</b>'
            f'{heads or "<p>No principal reaches this resource.</p>"}</div>')


# -- the page -----------------------------------------------------------------------------------


def _banner(doc: dict) -> str:
    if doc.get("complete", not doc.get("errors")):
        return '<p class="ok">Complete: every part of the tenant this answer needs was read.</p>'
    items = [f"{_e(e.get('scope'))}{'/' + _e(e['section']) if e.get('section') else ''}: {_e(e.get('message'))}"
             for e in doc.get("errors", [])]
    # an answer from incomplete data must say so loudly: missing access reads as "no access"
    return ('<div class="banner"><b>INCOMPLETE ANSWER</b>: these could not be read, so this page may miss '
            'access:' + _list(items) + "</div>")


def render_html(doc: dict) -> str:
    mode = doc.get("mode")
    if mode == "resource":
        res = doc["resource"]
        title = f"Who can reach {str(res['securable_type']).lower()} {res['full_name']}"
        body = _resource_section(doc)
    elif mode == "compare":
        a, b = doc["a"]["principal"]["name"], doc["b"]["principal"]["name"]
        title = f"Access of {a} compared with {b}"
        body = "".join(f"<h2>{_e(me)} reaches, and {_e(them)} does not</h2>"
                       + _box(_blast_tree(doc[key], me), "", root=True)
                       for me, them, key in ((a, b, "only_a"), (b, a, "only_b")))
    else:
        name, kind = _principal_label(doc["principal"])
        title = f"Access of {name}"
        body = _blast_section(doc, name, kind) + _audit(doc)
        if mode == "group":
            body += (f"<h2>Members ({len(doc.get('members', []))})</h2>"
                     + _list([_chain(m["chain"]) for m in doc.get("members", [])]))
    meta = []
    if doc.get("workspaces") is not None:
        meta.append("workspaces: " + (", ".join(_e(w) for w in doc["workspaces"]) or "none"))
    if mode != "resource":
        meta.append("workspace objects " + ("scanned" if doc.get("scanned_workspace_objects") else
                                            "NOT scanned (add --scan-workspace-objects)"))
        meta.append("escalation check " + ("on" if doc.get("escalation_check") else "off"))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            # no network at all: a CSP that allows only inline styles, so even a bug cannot load anything
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{_e(title)}</h1><p class=\"meta\">dbsec access · {' · '.join(meta)}</p>"
            f"{_banner(doc)}{body}</body></html>\n")
