"""Baselines: the thresholds and allowlists controls are judged against (``baselines/*.yaml``).

A baseline is YAML. ``extends: NAME|PATH`` starts from another baseline (a shipped name such as
``default``, or a file path relative to the extending file) and overrides keys: mappings merge key by
key, everything else (lists included) is replaced. Besides thresholds and allowlists a baseline holds
controls disabled or re-rated with a reason, waivers, just-in-time elevations, break-glass principals
and windows, and attestations.

Controls read values with ``baseline.get("tokens.max_lifetime_days")``; a missing key is an error,
never a silent default, so a control cannot pass because its threshold was not configured.

Every file of an ``extends`` chain is checked on its own and the merged result is checked again,
against ``SCHEMA`` (JSON Schema 2020-12) plus a few checks a schema cannot express. Every problem
names the file, the line and the key, all problems are reported at once, and a problem inherited
from a parent file names that parent file.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from fnmatch import fnmatchcase
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from .findings import ID_PATTERN, SEVERITIES


# -- problems ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a YAML input, where it is: ``file:line: key: text``."""

    file: str
    line: int
    key: str
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.key}: {self.text}" if self.key else f"{self.file}:{self.line}: {self.text}"


def _render(problems: Iterable[Problem], order: dict[str, int] | None = None) -> tuple[list[Problem], str]:
    """Deduplicate and sort (by file in chain order, then line) so the message reads top to bottom."""
    order = order or {}
    unique = sorted(set(problems), key=lambda p: (order.get(p.file, len(order)), p.file, p.line, p.key, p.text))
    return unique, "\n".join(map(str, unique))


class BaselineError(Exception):
    """A baseline is unreadable or malformed. The message names file, line and key of each problem,
    one per line; ``problems`` holds them as data (empty for errors that have no line, such as a
    baseline name that resolves to nothing)."""

    def __init__(self, message: str, problems: Iterable[Problem] = ()):
        super().__init__(message)
        self.problems = list(problems)

    @classmethod
    def of(cls, problems: Iterable[Problem], order: dict[str, int] | None = None) -> "BaselineError":
        unique, message = _render(problems, order)
        return cls(message, unique)


# -- YAML with line numbers ------------------------------------------------------------------------------

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAX_NODES = 200_000  # aliases can expand a small file into a huge tree; a baseline never needs this many


def key_path(path: tuple) -> str:
    """``("waivers", 2, "expires")`` -> ``waivers[2].expires``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


@dataclass
class YamlDoc:
    """A parsed YAML file: its data, and the line of every key and list item (by path)."""

    file: str
    raw: bytes
    data: Any = None
    lines: dict[tuple, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def line_of(self, path: tuple) -> int:
        """The line of ``path``, or of its nearest ancestor that exists in this file."""
        path = tuple(path)
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)


class _Loader(yaml.SafeLoader):
    """SafeLoader, except that a scalar shaped like a date but impossible (2026-13-01) stays a
    string: the schema then names it with its line instead of the parser crashing on it."""

    def construct_yaml_timestamp(self, node):
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def parse_yaml(display: str, raw: bytes) -> YamlDoc:
    """Parse ``raw`` keeping line numbers: compose the node tree (which knows its marks), walk it for
    lines, duplicate and non-text keys, then construct the data from that same tree."""
    doc = YamlDoc(display, raw)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        doc.problems.append(Problem(display, raw[:e.start].count(b"\n") + 1, "", "not UTF-8 text"))
        return doc
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:  # an empty file is an empty mapping
            doc.data, doc.lines = {}, {(): 1}
            return doc
        doc.lines[()] = node.start_mark.line + 1
        _walk(node, (), doc, set(), [0])
        if doc.problems:  # duplicate or non-text keys: the constructed data would silently differ
            return doc
        doc.data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or str(e)
        doc.problems.append(Problem(display, mark.line + 1 if mark else 1, "", f"not valid YAML: {problem}"))
    except yaml.YAMLError as e:
        doc.problems.append(Problem(display, 1, "", f"not valid YAML: {e}"))
    finally:
        loader.dispose()
    return doc


def _walk(node, path: tuple, doc: YamlDoc, ancestors: set[int], count: list[int]) -> None:
    count[0] += 1
    if count[0] > _MAX_NODES:
        if count[0] == _MAX_NODES + 1:
            doc.problems.append(Problem(doc.file, doc.line_of(path), key_path(path),
                                        f"more than {_MAX_NODES} values (alias expansion?)"))
        return
    if id(node) in ancestors:  # an alias to its own ancestor: the data would be infinite
        doc.problems.append(Problem(doc.file, doc.line_of(path), key_path(path), "recursive alias"))
        return
    ancestors = ancestors | {id(node)}
    if isinstance(node, MappingNode):
        # merge keys (<<: *anchor) first, so that explicit keys override what they bring in
        for k, v in node.value:
            if k.tag == _MERGE_TAG:
                for source in (v.value if isinstance(v, SequenceNode) else [v]):
                    if isinstance(source, MappingNode):
                        _walk_entries(source, path, doc, ancestors, count, explicit=None)
        _walk_entries(node, path, doc, ancestors, count, explicit={})
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            doc.lines[path + (i,)] = item.start_mark.line + 1
            _walk(item, path + (i,), doc, ancestors, count)


def _walk_entries(node: MappingNode, path: tuple, doc: YamlDoc, ancestors: set[int], count: list[int],
                  explicit: dict | None) -> None:
    for k, v in node.value:
        if k.tag == _MERGE_TAG:
            continue
        line = k.start_mark.line + 1
        if not (isinstance(k, ScalarNode) and k.tag == _STR_TAG):
            # YAML 1.1 reads `on:`/`yes:` as booleans and `1:` as a number; keys here are names
            shown = k.value if isinstance(k, ScalarNode) else "a non-scalar key"
            doc.problems.append(Problem(doc.file, line, key_path(path),
                                        f"key {shown!r} is not text (quote it: '{shown}')"))
            continue
        if explicit is not None:
            if k.value in explicit:
                doc.problems.append(Problem(doc.file, line, key_path(path + (k.value,)),
                                            f"duplicate key (first on line {explicit[k.value]})"))
                continue
            explicit[k.value] = line
        doc.lines[path + (k.value,)] = line
        _walk(v, path + (k.value,), doc, ancestors, count)


def jsonable(value: Any) -> Any:
    """The data as JSON Schema sees it: YAML dates and timestamps become ISO strings (so that a
    date and a quoted ISO date are validated alike, and a timestamp where a date belongs fails)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else str(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


# -- dates ---------------------------------------------------------------------------------------------

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_date(value: Any) -> date:
    """A YAML date or an ISO ``YYYY-MM-DD`` string; anything else (a timestamp included) is refused."""
    if isinstance(value, datetime):
        raise ValueError("a date without a time is expected")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DATE_RE.fullmatch(value.strip()):
        return date.fromisoformat(value.strip())  # raises for 2026-13-40
    if isinstance(value, str) and _DATE_RE.match(value.strip()):
        raise ValueError("it has a time of day; a date alone is expected")
    raise ValueError("")


def parse_datetime(value: Any) -> datetime:
    """A YAML timestamp or an ISO date-time string, as an aware UTC datetime. Without a zone it is
    read as UTC, so that a window means the same on every machine that runs the audit."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        s = value.strip()
        if len(s) <= 10 or s[10] not in "Tt ":
            raise ValueError("the time of day is missing" if _DATE_RE.fullmatch(s) else "")
        if s[-1:] in "Zz":  # Python 3.10's fromisoformat does not read Z
            s = s[:-1] + "+00:00"
        dt = datetime.fromisoformat(s)
    else:
        raise ValueError("")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _format_checker() -> jsonschema.FormatChecker:
    # our own checks, not jsonschema's optional ones: they must behave the same whatever extras
    # are installed, and dates must read exactly like parse_date / parse_datetime
    checker = jsonschema.FormatChecker(formats=())

    @checker.checks("date", raises=ValueError)
    def _date(instance: Any) -> bool:
        return not isinstance(instance, str) or bool(parse_date(instance))

    @checker.checks("date-time", raises=ValueError)
    def _datetime(instance: Any) -> bool:
        return not isinstance(instance, str) or bool(parse_datetime(instance))

    @checker.checks("regex", raises=re.error)
    def _regex(instance: Any) -> bool:
        if isinstance(instance, str):
            re.compile(instance)  # the control compiles it the same way
        return True

    return checker


FORMAT_CHECKER = _format_checker()


# -- the schema ------------------------------------------------------------------------------------------
# "x-expected" (what a value should be) and "x-why" (why a key is required) are our own annotation
# keywords; JSON Schema ignores unknown keywords, the error messages below read them.

_TEXT = {"type": "string", "pattern": r"\S", "x-expected": "a non-blank text"}
_NAMES = {"type": "array", "items": _TEXT, "x-expected": "a list of names"}
_GLOBS = {"type": "array", "items": {**_TEXT, "x-expected": "a glob pattern"}, "x-expected": "a list of glob patterns"}
_BOOL = {"type": "boolean", "x-expected": "true or false"}
_DATE = {"type": "string", "format": "date", "x-expected": "a date (YYYY-MM-DD)"}
_DATETIME = {"type": "string", "format": "date-time", "x-expected": "a date and time (e.g. 2026-03-01T09:00:00Z)"}
_CONTROL = {"type": "string", "pattern": ID_PATTERN.pattern, "x-expected": "a control ID such as TOK-01"}


def _int(minimum: int, maximum: int | None = None) -> dict:
    s = {"type": "integer", "minimum": minimum, "x-expected": "a whole number"}
    if maximum is not None:
        s["maximum"] = maximum
    return s


def _obj(properties: dict, required: Iterable[str] = (), why: dict | None = None, **extra) -> dict:
    return {"type": "object", "properties": properties, "additionalProperties": False,
            "required": list(required), "x-why": why or {}, "x-expected": "a mapping", **extra}


_THRESHOLDS = {
    "iam": _obj({
        "max_unprovisioned_ratio": {"type": "number", "minimum": 0, "maximum": 1,
                                    "x-expected": "a ratio between 0 and 1"},
        "local_accounts": _NAMES,
        "max_workspace_admins": _int(1),  # a workspace cannot have no admin at all
        "approved_admins": _NAMES,
        "dormant_days": _int(1),
        "max_sp_secret_age_days": _int(1),
    }),
    "tokens": _obj({
        "max_lifetime_days": _int(1),
        "warn_expiry_days": _int(0),
        "max_unused_days": _int(1),
        "sp_pat_allowed": _NAMES,
        "allowed": _BOOL,
    }),
    "network": _obj({
        "widest_prefix": _int(1, 32),  # /0 is "everyone", which NET-02 refuses whatever the baseline
        "widest_prefix_v6": _int(1, 128),
        "require_private_link": _BOOL,
    }),
    "grants": _obj({
        "broad_groups": _NAMES,
        "broad_group_size": _int(1),
        "public_securables": _NAMES,
        "managers": _NAMES,
        "isolated_catalogs": _NAMES,
    }),
    "classification": _obj({
        "pii_tags": _NAMES,
        "pii_name_patterns": {"type": "array", "x-expected": "a list of regular expressions",
                              "items": {"type": "string", "format": "regex", "pattern": r"\S",
                                        "x-expected": "a regular expression"}},
        "unmasked_allowed": _GLOBS,
        "row_filter_required": _GLOBS,
    }),
    "sharing": _obj({"max_token_days": _int(1)}),
    "compute": _obj({
        "max_autotermination_minutes": _int(1),
        "require_node_allowlist": _BOOL,
        "max_uptime_days": _int(1),
    }),
    "secrets": _obj({
        "shared_scopes": _NAMES,
        "scan_max_objects": _int(1),  # 0 would scan nothing and let SEC-03 pass unseen
    }),
    "workspace": _obj({
        "require_csp": _BOOL,
        "allow_web_terminal": _BOOL,
        "require_cmk": _BOOL,
    }),
    "jobs": _obj({
        "user_run_as_allowed": _NAMES,
        "managers": _NAMES,
    }),
}

_WAIVER = _obj(
    {"control": _CONTROL, "resource": {**_TEXT, "x-expected": "a glob on the resource id or name"},
     "workspace": {**_TEXT, "x-expected": "a glob on the workspace name (or 'account')"},
     "resource_type": _TEXT, "justification": _TEXT, "approver": _TEXT, "expires": _DATE},
    required=("control", "resource", "justification", "approver", "expires"),
    why={"expires": "a waiver must expire", "justification": "a waiver must say why",
         "approver": "a waiver must name who approved it", "control": "a waiver names the control it waives",
         "resource": "a waiver names the resources it covers (a glob)"})

_ELEVATION = _obj(
    {"principal": _TEXT, "privilege": _TEXT, "securable": _TEXT, "expires": _DATE,
     "justification": _TEXT, "approver": _TEXT},
    required=("principal", "privilege", "securable", "expires", "justification", "approver"),
    why={"expires": "a just-in-time elevation must expire", "justification": "an elevation must say why",
         "approver": "an elevation must name who approved it"})

_WINDOW = _obj({"start": _DATETIME, "end": _DATETIME, "reason": _TEXT}, required=("start", "end", "reason"),
               why={"reason": "a break-glass window must say why", "end": "a break-glass window must end"})

_ATTESTATION = _obj(
    {"control": _CONTROL, "statement": _TEXT, "evidence": {**_TEXT, "x-expected": "a link to the evidence"},
     "attested_by": _TEXT, "date": _DATE, "valid_days": _int(1)},
    required=("control", "statement", "evidence", "attested_by", "date", "valid_days"),
    why={"evidence": "an attestation must link its evidence", "valid_days": "an attestation must go stale"})

_OVERRIDE = _obj({"enabled": _BOOL, "severity": {"enum": list(SEVERITIES), "x-expected": "a severity"},
                  "reason": _TEXT},
                 required=("reason",), why={"reason": "a re-rated or disabled control must say why"})

SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://pytest-dbsec/baseline.schema.json",
    "title": "pytest-dbsec baseline",
    **_obj({
        "extends": {**_TEXT, "x-expected": "a baseline name or path"},
        "name": _TEXT,
        "description": {"type": "string", "x-expected": "a text"},
        **_THRESHOLDS,
        "break_glass": _obj({"principals": _NAMES,
                             "windows": {"type": "array", "items": _WINDOW, "x-expected": "a list of windows"}}),
        "elevations": {"type": "array", "items": _ELEVATION, "x-expected": "a list of elevations"},
        "waivers": {"type": "array", "items": _WAIVER, "x-expected": "a list of waivers"},
        "attestations": {"type": "array", "items": _ATTESTATION, "x-expected": "a list of attestations"},
        "controls": {"type": "object", "x-expected": "a mapping of control IDs",
                     "propertyNames": _CONTROL, "additionalProperties": _OVERRIDE},
    }),
}

# the keys of the threshold/allowlist sections, e.g. "tokens.max_lifetime_days" (tests check the
# shipped default sets every one of them)
THRESHOLD_KEYS: tuple[str, ...] = tuple(f"{section}.{key}" for section, s in _THRESHOLDS.items()
                                        for key in s["properties"])


def validator(schema: dict) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER)


_BASELINE_VALIDATOR = validator(SCHEMA)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    for t, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "text"),
                    (list, "list"), (dict, "mapping")):
        if isinstance(value, t):
            return name
    return type(value).__name__


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, (list, dict)) else _type_name(value)
    return text if len(text) <= 60 else text[:57] + "..."


def schema_problems(v: jsonschema.Draft202012Validator, data: Any, where) -> list[Problem]:
    """Every schema error as a Problem. ``where(path) -> (file, line)`` places a key path."""
    out = []

    def add(line_path: tuple, path: tuple, text: str) -> None:
        file, line = where(line_path)
        out.append(Problem(file, line, key_path(path), text))

    for e in v.iter_errors(data):
        path, schema, inst, kind = tuple(e.absolute_path), e.schema, e.instance, e.validator
        if "propertyNames" in e.absolute_schema_path:
            # a bad key: jsonschema reports it at its parent; the key's own line is more useful
            add(path + (inst,), path + (inst,), f"{inst!r} is not {schema.get('x-expected', 'a valid key')}")
        elif kind == "additionalProperties":
            known = sorted(schema.get("properties", {}))
            for k in sorted(set(inst) - set(known)):
                close = difflib.get_close_matches(k, known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
                add(path + (k,), path + (k,), f"unknown key ({hint})")
        elif kind == "required":
            why = schema.get("x-why", {})
            for k in e.validator_value:
                if isinstance(inst, dict) and k not in inst:
                    add(path, path + (k,), f"required ({why[k]})" if k in why else "required")
        elif kind == "type":
            got = f"a {_type_name(inst)}" if isinstance(inst, (list, dict)) else f"{_type_name(inst)} {_shown(inst)}"
            add(path, path, f"expected {schema.get('x-expected', e.validator_value)}, got {got}")
        elif kind in ("minimum", "exclusiveMinimum"):
            add(path, path, f"must be at least {e.validator_value}, got {inst!r}")
        elif kind in ("maximum", "exclusiveMaximum"):
            add(path, path, f"must be at most {e.validator_value}, got {inst!r}")
        elif kind == "enum":
            add(path, path, f"must be one of {', '.join(map(str, e.validator_value))}; got {_shown(inst)}")
        elif kind == "const":
            add(path, path, f"expected {schema.get('x-expected', repr(e.validator_value))}, got {_shown(inst)}")
        elif kind == "pattern":
            add(path, path, f"{_shown(inst)} is not {schema.get('x-expected', 'of the expected form')}")
        elif kind == "format":
            cause = f": {e.cause}" if e.cause and str(e.cause) else ""
            add(path, path, f"{_shown(inst)} is not {schema.get('x-expected', e.validator_value)}{cause}")
        else:
            add(path, path, e.message)
    return out


# -- the baseline's objects ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Waiver:
    """A finding that is allowed to fail until ``expires``: matched on control, target and resource."""

    control: str
    resource: str  # fnmatch glob, matched against the resource id OR its name
    workspace: str = "*"  # glob on the target: a workspace name, or "account"
    resource_type: str | None = None
    justification: str
    approver: str
    expires: date
    source: str  # "path:line"

    def expired(self, today: date) -> bool:
        """The waiver protects through its expiry day, and not a day longer."""
        return self.expires < today

    def matches(self, control_id: str, target: str, resource_type: str, resource_id: str,
                resource_name: str | None) -> bool:
        # case-sensitive on purpose: a waiver for "prod" must not silently cover "PROD"
        return (self.control == control_id
                and fnmatchcase(target, self.workspace)
                and (self.resource_type is None or self.resource_type == resource_type)
                and (fnmatchcase(str(resource_id), self.resource)
                     or (resource_name is not None and fnmatchcase(str(resource_name), self.resource))))


@dataclass(frozen=True, kw_only=True)
class Elevation:
    """A just-in-time grant (IAM-08): the access must be gone once it expires."""

    principal: str
    privilege: str  # a UC privilege or a workspace permission level
    securable: str
    expires: date
    justification: str
    approver: str
    source: str

    def expired(self, today: date) -> bool:
        return self.expires < today


@dataclass(frozen=True, kw_only=True)
class Window:
    """A declared break-glass window; start and end are aware UTC datetimes."""

    start: datetime
    end: datetime
    reason: str
    source: str

    def contains(self, when: datetime) -> bool:
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return self.start <= when <= self.end


@dataclass(frozen=True)
class BreakGlass:
    principals: tuple[str, ...] = ()
    windows: tuple[Window, ...] = ()

    def window_at(self, when: datetime) -> Window | None:
        """The declared window covering ``when`` (naive means UTC), if any."""
        return next((w for w in self.windows if w.contains(when)), None)


@dataclass(frozen=True, kw_only=True)
class Attestation:
    """A human statement for a control no API can verify, valid for ``valid_days`` from ``date``."""

    control: str
    statement: str
    evidence: str  # a link
    attested_by: str
    date: date
    valid_days: int
    source: str

    @property
    def valid_until(self) -> date:
        return self.date + timedelta(days=self.valid_days)

    def current(self, today: date) -> bool:
        # an attestation dated in the future attests nothing yet
        return self.date <= today <= self.valid_until


@dataclass(frozen=True, kw_only=True)
class ControlOverride:
    enabled: bool = True
    severity: str | None = None
    reason: str
    source: str


# -- loading --------------------------------------------------------------------------------------------


def shipped_baselines() -> dict[str, Path]:
    root = resources.files("pytest_dbsec.baselines")
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def _looks_like_path(ref: str) -> bool:
    return "/" in ref or "\\" in ref or ref.endswith((".yaml", ".yml"))


def _resolve(ref: str, relative_to: Path | None = None) -> Path:
    """A shipped name (``default``) or a path; a relative path in ``extends`` is relative to the
    extending file, so a baseline directory can be moved or checked out anywhere."""
    shipped = shipped_baselines()
    if not _looks_like_path(ref) and ref in shipped:
        return shipped[ref]
    path = Path(ref).expanduser()
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    if path.is_file():
        return path
    raise BaselineError(f"{ref}: no such baseline file, and not a shipped baseline "
                        f"(shipped: {', '.join(sorted(shipped))})")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise BaselineError(f"{path}: cannot read: {e.strerror or e}") from None


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _file_semantics(doc: YamlDoc) -> list[Problem]:
    """What the schema cannot say about one file; tolerant of wrong types (the schema names those)."""
    out = []
    break_glass = doc.data.get("break_glass")
    windows = break_glass.get("windows") if isinstance(break_glass, dict) else None
    for i, w in enumerate(windows if isinstance(windows, list) else []):
        if not isinstance(w, dict):
            continue
        try:
            start, end = parse_datetime(w.get("start")), parse_datetime(w.get("end"))
        except (ValueError, TypeError):
            continue
        if end <= start:
            path = ("break_glass", "windows", i, "end")
            out.append(Problem(doc.file, doc.line_of(path), key_path(path),
                               f"the window ends ({end.isoformat()}) before it starts ({start.isoformat()})"))
    return out


class Baseline:
    """A loaded baseline: ``data`` is the merged mapping (without ``extends``).

    ``sha256`` identifies exactly what was judged against: the SHA-256 of the bytes of every file of
    the ``extends`` chain, concatenated in merge order (the root baseline first, the selected file
    last; see ``chain``). For a baseline without ``extends`` that is simply the SHA-256 of its file,
    and for a chain it can be reproduced with ``cat root.yaml ... selected.yaml | sha256sum``.
    """

    def __init__(self, data: dict, name: str, path: Path | None, sha256: str, *,
                 chain: tuple[Path, ...] = (), docs: tuple[YamlDoc, ...] = ()):
        self.data, self.name, self.path, self.sha256 = data, name, path, sha256
        self.chain = chain or ((path,) if path else ())
        self._docs = docs  # the selected file first, then its parents: where each key was written
        self.waivers: list[Waiver] = []
        self.elevations: list[Elevation] = []
        self.attestations: list[Attestation] = []
        self.overrides: dict[str, ControlOverride] = {}
        self.break_glass = BreakGlass()
        self._build()

    def __repr__(self) -> str:
        return f"<Baseline {self.name!r} {self.path} sha256={self.sha256[:12]}>"

    # where a key of the merged data was written: the nearest file of the chain that sets it
    def _where(self, path: tuple) -> tuple[str, int]:
        path = tuple(path)
        for probe in (path[:n] for n in range(len(path), -1, -1)):
            for doc in self._docs:
                if probe in doc.lines and (probe or doc is self._docs[0]):
                    return doc.file, doc.lines[probe]
        return str(self.path), 1

    def source(self, *path) -> str:
        file, line = self._where(path)
        return f"{file}:{line}"

    def _build(self) -> None:
        d = self.data
        for i, w in enumerate(d.get("waivers") or []):
            self.waivers.append(Waiver(
                control=w["control"], resource=str(w["resource"]), workspace=w.get("workspace", "*"),
                resource_type=w.get("resource_type"), justification=w["justification"], approver=w["approver"],
                expires=parse_date(w["expires"]), source=self.source("waivers", i)))
        for i, e in enumerate(d.get("elevations") or []):
            self.elevations.append(Elevation(
                principal=e["principal"], privilege=e["privilege"], securable=e["securable"],
                expires=parse_date(e["expires"]), justification=e["justification"], approver=e["approver"],
                source=self.source("elevations", i)))
        for i, a in enumerate(d.get("attestations") or []):
            self.attestations.append(Attestation(
                control=a["control"], statement=a["statement"], evidence=a["evidence"],
                attested_by=a["attested_by"], date=parse_date(a["date"]), valid_days=a["valid_days"],
                source=self.source("attestations", i)))
        for cid, o in (d.get("controls") or {}).items():
            self.overrides[cid] = ControlOverride(enabled=o.get("enabled", True), severity=o.get("severity"),
                                                  reason=o["reason"], source=self.source("controls", cid))
        bg = d.get("break_glass") or {}
        self.break_glass = BreakGlass(
            principals=tuple(bg.get("principals") or ()),
            windows=tuple(Window(start=parse_datetime(w["start"]), end=parse_datetime(w["end"]),
                                 reason=w["reason"], source=self.source("break_glass", "windows", i))
                          for i, w in enumerate(bg.get("windows") or [])))

    @classmethod
    def load(cls, name_or_path: str | Path = "default") -> "Baseline":
        """Load a shipped baseline by name or a file by path, following ``extends``. Raises
        BaselineError listing every problem of every file of the chain."""
        ref = str(name_or_path)
        path = _resolve(ref)
        docs: list[YamlDoc] = []  # the selected file first
        problems: list[Problem] = []
        seen: dict[Path, str] = {}
        while path is not None:
            doc = parse_yaml(str(path), _read_bytes(path))
            seen[path.resolve()] = doc.file
            docs.append(doc)
            problems += doc.problems
            if not doc.ok:
                break
            problems += schema_problems(_BASELINE_VALIDATOR, jsonable(doc.data),
                                        lambda p, doc=doc: (doc.file, doc.line_of(p)))
            if not isinstance(doc.data, dict):
                break
            problems += _file_semantics(doc)
            parent_ref, path = doc.data.get("extends"), None
            if not (isinstance(parent_ref, str) and parent_ref.strip()):
                break  # none, or a wrong type the schema has named
            where = (doc.file, doc.line_of(("extends",)), "extends")
            try:
                parent = _resolve(parent_ref.strip(), Path(doc.file).parent)
            except BaselineError:
                problems.append(Problem(*where, f"{parent_ref!r}: no such baseline file, and not a shipped "
                                                f"baseline (shipped: {', '.join(sorted(shipped_baselines()))})"))
                break
            if parent.resolve() in seen:
                cycle = " -> ".join([d.file for d in docs] + [seen[parent.resolve()]])
                problems.append(Problem(*where, f"'extends' forms a cycle: {cycle}"))
                break
            path = parent
        order = {d.file: i for i, d in enumerate(docs)}
        if problems:
            raise BaselineError.of(problems, order)

        merged: dict = {}
        for doc in reversed(docs):
            merged = _merge(merged, doc.data)
        merged.pop("extends", None)
        own_name = docs[0].data.get("name")
        if own_name is None:
            merged.pop("name", None)  # a parent's name is not this baseline's name
        name = own_name or Path(ref).stem
        digest = hashlib.sha256(b"".join(d.raw for d in reversed(docs))).hexdigest()
        baseline = cls.__new__(cls)
        baseline._docs = tuple(docs)
        # the merged data is checked too: what each file allows on its own must still hold together
        problems = schema_problems(_BASELINE_VALIDATOR, jsonable(merged), baseline._where)
        for cid, o in (merged.get("controls") or {}).items():
            if isinstance(o, dict) and "enabled" not in o and "severity" not in o:
                problems.append(Problem(*baseline._where(("controls", cid)), f"controls.{cid}",
                                        "sets neither enabled nor severity: nothing to override"))
        if problems:
            raise BaselineError.of(problems, order)
        return cls(merged, name, Path(docs[0].file), digest,
                   chain=tuple(Path(d.file) for d in reversed(docs)), docs=tuple(docs))

    # -- reading -----------------------------------------------------------------------------------

    def get(self, dotted: str) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise BaselineError(f"{self.path}: key '{dotted}' is not set in baseline {self.name!r} "
                                    f"(the control needs it; add it or extend 'default')")
            node = node[part]
        return node

    def validate_control_ids(self, known: set[str]) -> None:
        """Every control ID the baseline names must exist: a waiver or override for a typo such as
        TOK-5 would otherwise be a silent no-op. Raises BaselineError naming each unknown one."""
        named: list[tuple[tuple, str]] = []
        named += [(("waivers", i, "control"), w.control) for i, w in enumerate(self.waivers)]
        named += [(("controls", cid), cid) for cid in self.overrides]
        named += [(("attestations", i, "control"), a.control) for i, a in enumerate(self.attestations)]
        problems = []
        for path, cid in named:
            if cid in known:
                continue
            close = difflib.get_close_matches(cid, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            problems.append(Problem(*self._where(path), key_path(path), f"unknown control {cid!r}{hint}"))
        if problems:
            raise BaselineError.of(problems, {d.file: i for i, d in enumerate(self._docs)})

    def waiver_for(self, control_id: str, target: str, resource_type: str, resource_id: str,
                   resource_name: str | None, today: date) -> tuple[Waiver | None, Waiver | None]:
        """(the first active waiver that matches, the most recently expired one that matches).

        The second is only returned when nothing protects the finding: an expired waiver that was
        renewed by a newer entry is history, not news."""
        return self._first_active(
            (w for w in self.waivers if w.matches(control_id, target, resource_type, resource_id, resource_name)),
            today)

    def gap_waiver_for(self, control_id: str, resource: str, today: date) -> tuple[Waiver | None, Waiver | None]:
        """Like ``waiver_for``, for a gap in an account-scoped control's data (INC: a workspace this run
        could not read, ``resource`` ``workspace/<name>``): the waiver must name that resource exactly
        -- no glob, so that accepting one workspace never accepts another -- and apply to the account
        (its ``workspace`` glob matches ``account``, as the default ``*`` does)."""
        return self._first_active(
            (w for w in self.waivers if w.control == control_id and w.resource == resource
             and fnmatchcase("account", w.workspace) and w.resource_type in (None, "workspace")),
            today)

    @staticmethod
    def _first_active(matching, today: date) -> tuple[Waiver | None, Waiver | None]:
        """(the first matching waiver still in force, else None; the latest expired one, if none is)."""
        expired = None
        for w in matching:
            if not w.expired(today):
                return w, None
            if expired is None or w.expires > expired.expires:
                expired = w
        return None, expired

    def attestation_for(self, control_id: str, today: date) -> tuple[Attestation | None, Attestation | None]:
        """(the newest current attestation of the control, else None; the newest stale one, if no
        current one exists)."""
        atts = sorted((a for a in self.attestations if a.control == control_id), key=lambda a: a.date)
        current = [a for a in atts if a.current(today)]
        if current:
            return current[-1], None
        return None, (atts[-1] if atts else None)
