"""Answers of ``dbsec access`` as data, and their JSON / CSV / text renderings.

The access graph (``graph/access.py``) answers one question at a time; this module shapes those
answers into one document per invocation (the JSON output, schema ``access.schema.json``) and
renders that same document as CSV (one row per access path) or a text tree. Keeping one document
as the source of every rendering means the three outputs can never disagree.

Pure data: nothing here talks to Databricks.
"""

from __future__ import annotations

import csv
import io
import json
from importlib import resources

from . import spreadsheet_safe

ACCESS_FORMAT = "pytest-dbsec/access"
ACCESS_VERSION = 1

# the record lists of a blast-radius answer, in the order the text view prints them
BLAST_KEYS = ("group_memberships", "workspace_roles", "uc_grants", "workspace_object_permissions",
              "secret_scopes", "run_as", "credentials", "escalation_findings")

# Stable CSV columns (README "Incident response"): new columns may only ever be appended.
CSV_COLUMNS = ("side", "principal", "record", "workspace_name", "resource_type", "resource", "access",
               "inherited_from", "via", "note")

# Permissions API object types the collector reads, plus "authorization" (tokens/passwords) and
# "secrets" (secret scope ACLs), which are the values --workspace-object-types accepts.
OBJECT_TYPES = ("clusters", "cluster-policies", "instance-pools", "jobs", "pipelines", "warehouses",
                "serving-endpoints", "dashboards", "repos", "directories", "notebooks", "files", "authorization",
                "secrets")

# in CSV a chain is one cell; ASCII so spreadsheets and grep handle it everywhere
CSV_CHAIN = " -> "
TEXT_CHAIN = " → "
COLLAPSE_AFTER = 15  # a tree node with more children than this (e.g. `account users`) is folded


def schema() -> dict:
    """The JSON Schema of the JSON output, as shipped in the package."""
    return json.loads(resources.files("pytest_dbsec").joinpath("access.schema.json").read_text())


# -- shaping answers ----------------------------------------------------------------------------


def error_records(gaps: list[str]) -> list[dict]:
    """The graph's gap lines ("ws1/uc: why", "account: why") as records, so jq can select on scope."""
    out = []
    for gap in gaps:
        where, _, message = gap.partition(": ")
        scope, _, section = where.partition("/")
        out.append({"scope": scope, "section": section or None, "message": message or gap})
    return out


def filter_object_types(answer: dict, types: set[str] | None) -> dict:
    """Keep only workspace-object records of the given types (``--workspace-object-types``).
    Escalations and run_as records derived from a filtered-out object type go with it, so the
    output never mentions an object type the user asked to leave out."""
    if types is None:
        return answer
    out = dict(answer)
    out["workspace_object_permissions"] = [r for r in answer.get("workspace_object_permissions", [])
                                           if r["object_type"] in types]
    if "secrets" not in types:
        out["secret_scopes"] = []
    out["run_as"] = [r for r in answer.get("run_as", []) if f"{r['kind']}s" in types]

    def keep(f: dict) -> bool:
        if f.get("object_type"):  # derived from a workspace object's ACL (graph/escalation.py)
            return f["object_type"] in types
        if f["kind"].startswith("run_as_"):
            return f["target"].split(" ", 1)[0] + "s" in types
        if f["kind"].startswith("secret_scope_"):
            return "secrets" in types
        return True

    out["escalation_findings"] = [f for f in answer.get("escalation_findings", []) if keep(f)]
    return out


def _access_key(record_kind: str, r: dict) -> tuple:
    """What a record grants, without the chain: two principals reach "the same thing" when these match."""
    if record_kind == "uc_grants":
        return r["securable_type"], r["full_name"], r["privilege"]
    if record_kind == "workspace_roles":
        return r["workspace_name"], r["permission_level"]
    if record_kind == "workspace_object_permissions":
        return r["workspace_name"], r["object_type"], r["object_id"], r["permission_level"]
    if record_kind == "secret_scopes":
        return r["workspace_name"], r["scope"], r["permission"]
    if record_kind == "group_memberships":
        return r["workspace_name"], r["group"]
    if record_kind == "run_as":
        return r["workspace_name"], r["kind"], r["id"]
    return (json.dumps(r, sort_keys=True),)


COMPARED = ("group_memberships", "workspace_roles", "uc_grants", "workspace_object_permissions",
            "secret_scopes", "run_as")


def compare(a: dict, b: dict) -> tuple[dict, dict]:
    """(what A reaches that B does not, the reverse), per record list. Chains differ between the two
    principals by construction, so only what is reached counts; A's records keep A's chains."""

    def only(x: dict, y: dict) -> dict:
        out = {}
        for key in COMPARED:
            theirs = {_access_key(key, r) for r in y.get(key, [])}
            out[key] = [r for r in x.get(key, []) if _access_key(key, r) not in theirs]
        return out

    return only(a, b), only(b, a)


# -- CSV ----------------------------------------------------------------------------------------


def _row(side, principal, record, ws, rtype, resource, access, inherited, via, note) -> dict:
    return dict(zip(CSV_COLUMNS, (side, principal, record, ws, rtype, resource, access, inherited,
                                  CSV_CHAIN.join(via or []), note)))


def _blast_rows(answer: dict, principal: str, side: str = "") -> list[dict]:
    rows = []
    for r in answer.get("group_memberships", []):
        rows.append(_row(side, principal, "group_membership", r["workspace_name"], "GROUP", r["group"],
                         "MEMBER", None, r["chain"], None))
    for r in answer.get("workspace_roles", []):
        rows.append(_row(side, principal, "workspace_role", r["workspace_name"], "WORKSPACE", r["workspace_name"],
                         r["permission_level"], None, r["via"], r.get("note") or r.get("source")))
    for r in answer.get("uc_grants", []):
        rows.append(_row(side, principal, "uc_grant", None, r["securable_type"], r["full_name"], r["privilege"],
                         r["inherited_from"], r["via"], r.get("note")))
    for r in answer.get("workspace_object_permissions", []):
        name = r["object_name"] or r["object_id"]
        inherited = r.get("inherited_from_object") if r.get("inherited") else None
        rows.append(_row(side, principal, "object_permission", r["workspace_name"], r["object_type"],
                         f"{name} ({r['object_id']})" if r["object_name"] else name, r["permission_level"],
                         inherited, r["via"], None))
    for r in answer.get("secret_scopes", []):
        rows.append(_row(side, principal, "secret_scope", r["workspace_name"], "secret-scope", r["scope"],
                         r["permission"], None, r["via"], None))
    for r in answer.get("run_as", []):
        rows.append(_row(side, principal, "run_as", r["workspace_name"], r["kind"], f"{r['name']} ({r['id']})",
                         "RUNS_AS", None, [principal], r["source"]))
    for r in answer.get("credentials", []):
        cid = r.get("token_id") or r.get("id")
        expiry = "never" if r.get("never_expires") else (r.get("expiry") or r.get("expire_time"))
        rows.append(_row(side, principal, "credential", r.get("workspace_name"), r["type"], cid,
                         "AUTHENTICATES", None, [principal], f"expires {expiry}" if expiry else None))
    for r in answer.get("escalation_findings", []):
        rows.append(_row(side, principal, "escalation", None, r["kind"], r["target"], r["severity"].upper(),
                         None, r["path"], r["reason"]))
    return rows


def _audit_rows(doc: dict, principal: str) -> list[dict]:
    rows = []
    for r in doc.get("audit_actions") or []:
        note = f"{r['event_time']} from {r.get('source_ip_address') or '?'}"
        if r.get("request_params"):
            note += f"; {r['request_params']}"
        if r.get("error_message"):
            note += f"; error: {r['error_message']}"
        rows.append(_row("", principal, "audit_action", r.get("workspace_name") or r["workspace_id"],
                         r["service_name"], r["action_name"], str(r.get("status_code")), None, None, note))
    return rows


def audit_lines(doc: dict) -> list[str]:
    """The audit-log part of the text view (principal mode)."""
    audit = doc.get("audit_log")
    if audit is None:
        return []
    if not audit.get("queried"):
        return ["", f"Audit log: {audit.get('reason') or 'not queried'}"]
    head = (f"Audit log: actions with lasting side effects in the last {audit['days']} days "
            f"(system.access.audit via SQL warehouse {audit['warehouse_id']} of {audit.get('workspace_name')})")
    if audit.get("error"):
        return ["", head, f"  QUERY FAILED: {audit['error']}"]
    actions = doc.get("audit_actions") or []
    lines = ["", head + (":" if actions else ": none")]
    for r in actions:
        line = (f"  {r['event_time']}  {r.get('workspace_name') or r['workspace_id']}  "
                f"{r['service_name']}.{r['action_name']}  [{r.get('status_code')}]  from {r.get('source_ip_address') or '?'}")
        if r.get("request_params"):
            line += f"  {r['request_params']}"
        if r.get("error_message"):
            line += f"  error: {r['error_message']}"
        lines.append(line)
    if audit.get("truncated"):
        lines.append(f"  ... cut at {audit['row_cap']} actions (newest first): narrow --audit-days")
    return lines


def csv_rows(doc: dict) -> list[dict]:
    mode = doc["mode"]
    if mode == "resource":
        return [_row("", r["principal"], "uc_grant", None, r["securable_type"], r["full_name"], r["privilege"],
                     r["inherited_from"], r["via"], r.get("note")) for r in doc["principals"]]
    if mode == "compare":
        a, b = doc["a"]["principal"]["name"], doc["b"]["principal"]["name"]
        return _blast_rows(doc["only_a"], a, "only_a") + _blast_rows(doc["only_b"], b, "only_b")
    rows = _blast_rows(doc, doc["principal"]["name"]) + _audit_rows(doc, doc["principal"]["name"])
    if mode == "group":
        rows = [_row("", m["principal"], "group_member", None, "GROUP", doc["principal"]["name"], "MEMBER",
                     None, m["chain"], None) for m in doc["members"]] + rows
    return rows


def render_csv(doc: dict) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in csv_rows(doc):
        # spreadsheet formula injection: a hostile object name must stay text
        w.writerow({k: spreadsheet_safe(v) for k, v in row.items()})
    return buf.getvalue()


# -- text tree ----------------------------------------------------------------------------------


def _clean(s) -> str:
    """Names come from the tenant: control characters (terminal escapes) must not reach the screen."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in str(s))


class _Node:
    def __init__(self, label: str):
        self.label, self.children, self.items = label, {}, []

    def at(self, path: list[str]) -> "_Node":
        node = self
        for name in path:
            node = node.children.setdefault(name, _Node(name))
        return node


def _tree_lines(node: _Node, prefix: str = "", collapse: bool = False) -> list[str]:
    """``collapse``: fold long child lists. Used for the reverse view, where a group like ``account
    users`` fans out to every identity; a principal's own access is never folded (it is the answer)."""
    entries = [(i, None) for i in node.items] + [(c.label, c) for _, c in sorted(node.children.items())]
    folded = len(entries) - COLLAPSE_AFTER if collapse and len(entries) > COLLAPSE_AFTER + 1 else 0
    if folded:
        entries = entries[:COLLAPSE_AFTER] + [(f"… {folded} more (see --output json or csv)", None)]
    out = []
    for n, (label, child) in enumerate(entries):
        last = n == len(entries) - 1
        out.append(f"{prefix}{'└── ' if last else '├── '}{_clean(label)}")
        if child is not None:
            out += _tree_lines(child, prefix + ("    " if last else "│   "), collapse)
    return out


def _blast_tree(answer: dict, root_label: str) -> list[str]:
    """principal → groups → resources: every record hangs under the end of its chain, so the path
    from the root to a line is the chain that explains it."""
    root = _Node(root_label)
    for r in answer.get("workspace_roles", []):
        root.at(r["via"][1:]).items.append(f"{r['permission_level']} on workspace {r['workspace_name']}")
    for r in answer.get("uc_grants", []):
        line = f"{r['privilege']} on {r['securable_type'].lower()} {r['full_name']}"
        if r["inherited_from"]:
            line += f" (inherited from {r['inherited_from']})"
        root.at(r["via"][1:]).items.append(line)
    for r in answer.get("workspace_object_permissions", []):
        root.at(r["via"][1:]).items.append(f"{r['permission_level']} on {r['object_type']} "
                                           f"{r['object_name'] or r['object_id']} ({r['workspace_name']})")
    for r in answer.get("secret_scopes", []):
        root.at(r["via"][1:]).items.append(f"{r['permission']} on secret scope {r['scope']} ({r['workspace_name']})")
    for r in answer.get("group_memberships", []):
        root.at(r["chain"][1:])  # groups that grant nothing still show as members
    lines = [_clean(root_label)] + _tree_lines(root)
    extra = (("run_as", "Runs as this identity",
              lambda r: f"{r['kind']} {r['name']} ({r['workspace_name']}): {r['source']}"),
             ("credentials", "Credentials (ids and expiry only)",
              lambda r: f"{r['type']} {r.get('token_id') or r.get('id')}"
                        + (f" ({r['workspace_name']})" if r.get("workspace_name") else "")
                        + (": never expires" if r.get("never_expires") else
                           f": expires {r.get('expiry') or r.get('expire_time') or '?'}")),
             ("escalation_findings", "Escalation findings",
              lambda r: f"[{r['severity']}] {r['kind']} {r['target']}: {r['reason']}  "
                        f"({TEXT_CHAIN.join(r['path'])})"))
    for key, title, fmt in extra:
        if answer.get(key):
            lines += ["", f"{title}:"] + [f"  {_clean(fmt(r))}" for r in answer[key]]
    return lines


def _resource_tree(doc: dict) -> list[str]:
    """The reverse view: resource → privilege → grantee → ... → member."""
    res = doc["resource"]
    root = _Node("")
    for r in doc["principals"]:
        head = r["privilege"] + (f" (inherited from {r['inherited_from']})" if r["inherited_from"] else "")
        # the chain runs member → grantee; read from the resource it is reversed
        chain = list(reversed(r["via"]))
        root.at([head] + chain)
    return [f"{res['securable_type'].lower()} {_clean(res['full_name'])}"] + _tree_lines(root, collapse=True)


def render_text(doc: dict) -> str:
    mode = doc["mode"]
    if mode == "resource":
        lines = _resource_tree(doc)
    elif mode == "compare":
        lines = []
        for side, other, key in (("a", "b", "only_a"), ("b", "a", "only_b")):
            me, them = doc[side]["principal"]["name"], doc[other]["principal"]["name"]
            lines += [f"{me} reaches, and {them} does not:"] + _blast_tree(doc[key], me)[1:] + [""]
    else:
        p = doc["principal"]
        label = f"{p['name']} ({p['kind']}" + (f", {p['display_name']}" if p.get("display_name") and
                                               p["display_name"] != p["name"] else "")
        label += ", INACTIVE)" if not p.get("active", True) else ")"
        lines = _blast_tree(doc, label) + [_clean(x) for x in audit_lines(doc)]
        if mode == "group":
            lines += ["", f"Members ({len(doc['members'])}):"] + [
                f"  {_clean(TEXT_CHAIN.join(m['chain']))}" for m in doc["members"]]
    if doc["errors"]:
        lines += ["", "INCOMPLETE: these could not be read, the answer may miss access:"]
        lines += [f"  {_clean(e['scope'])}{'/' + _clean(e['section']) if e['section'] else ''}: "
                  f"{_clean(e['message'])}" for e in doc["errors"]]
    return "\n".join(lines).rstrip("\n") + "\n"


def render(doc: dict, output: str) -> str:
    if output == "json":
        return json.dumps(doc, indent=2, default=str) + "\n"
    if output == "csv":
        return render_csv(doc)
    if output == "html":
        from .access_html import render_html  # the page renders this same document

        return render_html(doc)
    return render_text(doc)
