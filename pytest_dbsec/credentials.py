"""Credential patterns: find secrets in code and configuration without ever repeating them.

Used at collection time (clusters' ``spark_env_vars``/``spark_conf``, job parameters, notebook and
workspace-file source) so that only the *location* and a redacted preview of a credential ever reach
the inventory, a snapshot or a report -- never the value.

Two entry points:

* :func:`scan_text` -- source code (a notebook, a workspace file): every match with its line.
* :func:`scan_value` -- one configuration value and the name it is assigned to (an environment
  variable, a Spark conf key, a job parameter): the name decides the name-based rules.

What counts as a credential (``kind``):

=====================  ==========================================================================
databricks_pat         ``dapi`` + 32 hex digits, optionally ``-N``
databricks_oauth       ``dose`` + 32 hex digits (a Databricks OAuth secret)
aws_access_key_id      ``AKIA``/``ASIA`` + 16 upper-case letters or digits
aws_secret_key         40 base64 characters assigned to an AWS/secret-key-like name
azure_storage_key      ``AccountKey=...`` in a connection string, or a long base64 value assigned to a
                       storage/account key name (``fs.azure.account.key...``)
azure_sas_token        ``sig=...`` of a shared access signature, or a value assigned to ``fs.azure.sas...``
azure_client_secret    the ``xxx8Q~...`` client-secret format anywhere, or a literal assigned to a
                       client-secret name
gcp_service_account    a service-account JSON key (``"type": "service_account"`` / ``"private_key": "-----BEGIN``)
private_key            a PEM private key block header
password_in_url        ``password=``/``pwd=`` with a literal value in a JDBC/ODBC URL, or ``user:pass@`` in a URL
password               a literal assigned to a password-like name (``password``, ``passwd``, ``pwd``)
generic_secret         a high-entropy literal (Shannon entropy >= 3.5 bits/char, length >= 20) assigned to a
                       secret-like name (``secret``, ``token``, ``api_key``, ``access_key``, ``credential``...)
=====================  ==========================================================================

Not findings: ``{{secrets/scope/key}}`` references, ``dbutils.secrets.get(...)`` (not a literal), values
built from variables (``{pw}``, ``${PW}``, ``$PW``, ``%(pw)s``), and obvious placeholders (``xxx``,
``changeme``, ``<password>``, ``***``, ``your_token_here``...).
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass

ELLIPSIS = "\u2026"
GENERIC_MIN_LENGTH = 20
GENERIC_MIN_ENTROPY = 3.5  # bits per character
PASSWORD_MIN_LENGTH = 6

DESCRIPTIONS = {
    "databricks_pat": "Databricks personal access token",
    "databricks_oauth": "Databricks OAuth secret",
    "aws_access_key_id": "AWS access key id",
    "aws_secret_key": "AWS secret access key",
    "azure_storage_key": "Azure storage account key",
    "azure_sas_token": "Azure shared access signature",
    "azure_client_secret": "Azure/OAuth client secret",
    "gcp_service_account": "GCP service account key",
    "private_key": "private key",
    "password_in_url": "password in a connection URL",
    "password": "plaintext password",
    "generic_secret": "secret-like value",
}


@dataclass(frozen=True)
class Match:
    """One credential found: where, what kind, and a preview that does not reveal it."""

    kind: str
    description: str
    preview: str  # redacted: at most the first 4 characters, then an ellipsis
    line: int | None = None  # 1-based line in a text; None for a single value
    name: str | None = None  # the variable / key / parameter it is assigned to, when known

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def describe(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.description} ({self.preview})"


def redact(secret: str) -> str:
    """A preview of a secret that does not reveal it: its first characters (at most 4, and at most a
    quarter of it) followed by an ellipsis."""
    secret = secret or ""
    keep = min(4, len(secret) // 4)
    return secret[:keep] + ELLIPSIS


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


# -- what is not a literal secret -------------------------------------------------------------------

_SECRET_REF = re.compile(r"\{\{\s*secrets/[^}]*\}\}")
_PLACEHOLDER = re.compile(
    r"""(?ix)^(
        [x*#._\-]+                              # xxx, ***, ..., ---
      | <[^<>]*>                                # <password>
      | \$\{[^}]*\}  | \$\(?[a-z_][\w]*\)?      # ${VAR}, $VAR, $(VAR)
      | \{\{[^}]*\}\} | \{[^{}]*\}             # {{ var }}, {pw}
      | %\(?\w+\)?s | %\w+%                     # %(pw)s, %PW%
      | (change[_\-]?me|changeit|replace[_\-]?me|redacted|masked|dummy|placeholder|example|sample|
         none|null|nil|undefined|empty|todo|tbd|fixme|secret|password|passw0rd|pass|pwd|token|
         test|testing|foo|bar|foobar|abc|abc123|123456|12345678|default|admin|root|user|username)
      | (your|insert[_\-\s]?your|enter[_\-\s]?your)[_\-\s]?[a-z_\-\s]*   # your_token_here, YourPassword
    )$""")


def is_placeholder(value: str) -> bool:
    v = value.strip().strip("'\"")
    if not v:
        return True
    if _PLACEHOLDER.match(v):
        return True
    low = v.lower()
    if "xxxx" in low or "****" in low or "<" in v and ">" in v:
        return True
    # a value assembled from variables is not a literal: f"{pw}", "${PW}", "%(pw)s", "$PW"
    if re.search(r"\{[A-Za-z_][\w.\[\]'\"]*\}|\$\{[A-Za-z_]\w*\}|%\([A-Za-z_]\w*\)s", v) \
            or re.fullmatch(r"\$[A-Za-z_]\w*", v):
        return True
    return False


def _looks_structural(value: str) -> bool:
    """Paths, plain URLs and similar values that key-like names often hold without being secrets."""
    v = value.strip()
    if re.match(r"^(/|\./|~/|[a-zA-Z][\w+.\-]*:/{1,3}[^:@\s]*$)", v) and not re.search(r"://[^/\s]*:[^@/\s]*@", v):
        return True  # a path, or a URL without user:password@
    return False


# -- names ------------------------------------------------------------------------------------------

_PASSWORD_NAME = re.compile(r"(?i)(passw(or)?d|passphrase|(^|[_.\-])pwd($|[_.\-])|(^|[_.\-])pass($|[_.\-]))")
_AWS_SECRET_NAME = re.compile(r"(?i)(aws.{0,20}secret|secret.?(access.?)?key|s3a?\.(awsS|s)ecret|fs\.s3a?\.secret)")
_AZURE_KEY_NAME = re.compile(r"(?i)(account.?key|storage.?key|fs\.azure\.account\.key|access.?key)")
_AZURE_SAS_NAME = re.compile(r"(?i)(fs\.azure\.sas|sas.?token|\bsas\b)")
_CLIENT_SECRET_NAME = re.compile(r"(?i)(client.?secret|oauth2?.{0,20}secret|app.?secret|arm.?client.?secret)")
_SECRET_NAME = re.compile(
    r"(?i)(secret|token|passw(or)?d|pwd|api.?key|apikey|access.?key|private.?key|client.?secret|"
    r"auth.?key|credential|signing.?key|encryption.?key|master.?key|session.?key|bearer|conn(ection)?.?str)")
# names that mention a secret but hold something else
_NOT_SECRET_NAME = re.compile(
    r"(?i)(_|\.|-)(url|uri|endpoint|host|path|file|dir|name|type|scope|id|enabled|enable|ttl|expir\w*|length|"
    r"size|provider|mode|version|header|prefix|suffix|count|limit|timeout|lifetime|audience|issuer)$")


def _name_is_secret(name: str | None) -> bool:
    return bool(name) and bool(_SECRET_NAME.search(name)) and not _NOT_SECRET_NAME.search(name)


# -- structural patterns (found anywhere, whatever the name) ---------------------------------------

_B64 = r"A-Za-z0-9+/"
_STRUCTURAL: list[tuple[str, re.Pattern, str]] = [
    # kind, pattern, group holding the secret
    ("private_key", re.compile(r"-----BEGIN ((RSA|EC|DSA|OPENSSH|ENCRYPTED|PGP) )?PRIVATE KEY( BLOCK)?-----"), "0"),
    ("gcp_service_account", re.compile(r"\"private_key\"\s*:\s*\"(?P<s>-----BEGIN[^\"]*)"), "s"),
    ("gcp_service_account", re.compile(r"\"type\"\s*:\s*\"(?P<s>service_account)\""), "s"),
    ("databricks_pat", re.compile(r"(?<![A-Za-z0-9])(?P<s>dapi[0-9a-f]{32}(-\d+)?)(?![A-Za-z0-9])"), "s"),
    ("databricks_oauth", re.compile(r"(?<![A-Za-z0-9])(?P<s>dose[0-9a-f]{32})(?![A-Za-z0-9])"), "s"),
    ("aws_access_key_id", re.compile(r"(?<![A-Za-z0-9])(?P<s>(AKIA|ASIA)[0-9A-Z]{16})(?![A-Za-z0-9])"), "s"),
    ("azure_storage_key", re.compile(rf"(?i)AccountKey\s*=\s*(?P<s>[{_B64}]{{20,}}={{0,2}})"), "s"),
    ("azure_sas_token", re.compile(r"(?i)[?&;]sig=(?P<s>[A-Za-z0-9%+/=]{20,})"), "s"),
    ("azure_client_secret", re.compile(
        r"(?<![A-Za-z0-9_~.\-])(?P<s>[A-Za-z0-9_\-.]{3}\dQ~[A-Za-z0-9_~.\-]{31,34})(?![A-Za-z0-9_~.\-])"), "s"),
    # JDBC / ODBC: ;password=x  ?password=x  &pwd=x  (a literal value)
    ("password_in_url", re.compile(r"(?i)(?:[;?&\"']|^)(?:password|pwd|passwd)=(?P<s>[^;&\s'\"`]+)"), "s"),
    # scheme://user:password@host
    ("password_in_url", re.compile(r"(?i)(?<![a-z0-9+.\-])[a-z][a-z0-9+.\-]{0,31}://[^\s:/@'\"`]+:(?P<s>[^\s@/'\"`;?&:]+)@[^\s'\"`]"), "s"),
]

# name = "literal" assignments in code: python/scala/r/sql/yaml/json/properties/shell, and option("k", "v")
_ASSIGN = re.compile(
    r"""(?<![\w.\-])(?P<name>[A-Za-z_][\w.\-]{0,127})["']?\s*(?:=|:=|:|=>|<-|,)\s*[rbfuRBFU]{0,2}"""
    r"""(?P<q>["'`])(?P<value>[^"'`\n]*)(?P=q)""")
# unquoted NAME=value / name: value lines, only in configuration files (.env, .properties, .yaml, ...):
# in code they are mostly expressions (password = get_password())
_UNQUOTED_ASSIGN = re.compile(
    r"""(?m)^[ \t]*(?:export[ \t]+)?(?P<name>[A-Za-z_][\w.\-]*)[ \t]*[=:][ \t]*"""
    r"""(?P<value>[^\s"'`$#()]+)[ \t]*$""")
_SQL_OPTION = re.compile(
    r"""(?i)\b(?P<name>password|pwd|secret|token|client_secret)\s+(?P<q>["'])(?P<value>[^"'\n]*)(?P=q)""")


def _structural(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, kind, secret) of every structural match."""
    out = []
    for kind, pattern, group in _STRUCTURAL:
        for m in pattern.finditer(text):
            g = 0 if group == "0" else group
            secret = m.group(g)
            if kind == "password_in_url" and (is_placeholder(secret) or secret.startswith("{{")):
                continue
            out.append((m.start(g), m.end(g), kind, secret))
    return out


def _by_name(name: str | None, value: str) -> str | None:
    """The kind of credential a literal is, judged by the name it is assigned to; None if none."""
    v = value.strip()
    if not name or not v or is_placeholder(v) or _SECRET_REF.search(v):
        return None
    if _AWS_SECRET_NAME.search(name) and re.fullmatch(rf"[{_B64}]{{40}}", v):
        return "aws_secret_key"
    if _AZURE_KEY_NAME.search(name) and re.fullmatch(rf"[{_B64}]{{40,}}={{0,2}}", v):
        return "azure_storage_key"
    if _NOT_SECRET_NAME.search(name) or _looks_structural(v):
        return None
    if _AZURE_SAS_NAME.search(name) and len(v) >= GENERIC_MIN_LENGTH and ("sig=" in v or entropy(v) >= 3.0):
        return "azure_sas_token"
    if _CLIENT_SECRET_NAME.search(name) and len(v) >= 16 and entropy(v) >= 3.0:
        return "azure_client_secret"
    if _PASSWORD_NAME.search(name) and len(v) >= PASSWORD_MIN_LENGTH and " " not in v:
        return "password"
    if _name_is_secret(name) and len(v) >= GENERIC_MIN_LENGTH and not re.search(r"\s", v) \
            and entropy(v) >= GENERIC_MIN_ENTROPY:
        return "generic_secret"
    return None


def _keep(found: list[tuple[int, int, str, str, str | None]]) -> list[tuple[int, int, str, str, str | None]]:
    """Drop matches that overlap one already kept (structural matches come first: they are the most
    specific)."""
    kept: list[tuple[int, int, str, str, str | None]] = []
    for m in found:
        if any(m[0] < k[1] and k[0] < m[1] for k in kept):
            continue
        kept.append(m)
    return sorted(kept, key=lambda m: m[0])


def scan_text(text: str, config: bool = False) -> list[Match]:
    """Every credential in a piece of source code, with its 1-based line. ``config``: the text is a
    configuration file, where unquoted ``name=value`` / ``name: value`` lines count as assignments."""
    if not text:
        return []
    # blank out {{secrets/...}} references (same length, so offsets and lines stay right)
    clean = _SECRET_REF.sub(lambda m: " " * len(m.group(0)), text)
    found: list[tuple[int, int, str, str, str | None]] = [(s, e, k, v, None) for s, e, k, v in _structural(clean)]
    for pattern in (_ASSIGN, _SQL_OPTION) + ((_UNQUOTED_ASSIGN,) if config else ()):
        for m in pattern.finditer(clean):
            kind = _by_name(m.group("name"), m.group("value"))
            if kind:
                found.append((m.start("value"), m.end("value"), kind, m.group("value").strip(), m.group("name")))
    newlines = [i for i, ch in enumerate(clean) if ch == "\n"] if found else []
    return [Match(kind, DESCRIPTIONS[kind], redact(secret), bisect.bisect_left(newlines, start) + 1, name)
            for start, _end, kind, secret, name in _keep(found)]


def scan_value(value, name: str | None = None) -> list[Match]:
    """Credentials in one configuration value assigned to ``name`` (env var, Spark conf key, parameter)."""
    if not isinstance(value, str) or not value.strip():
        return []
    clean = _SECRET_REF.sub(lambda m: " " * len(m.group(0)), value)
    found = [(s, e, k, v, name) for s, e, k, v in _structural(clean)]
    if not found:
        kind = _by_name(name, clean)
        if kind:
            found.append((0, len(clean), kind, clean.strip(), name))
    return [Match(kind, DESCRIPTIONS[kind], redact(secret), None, name)
            for _start, _end, kind, secret, name in _keep(found)]


# -- scrubbing configuration at collection time ---------------------------------------------------


def redacted_marker(matches: list[Match]) -> str:
    """What replaces a credential-bearing value in collected data."""
    kinds = ", ".join(sorted({m.kind for m in matches}))
    return f"<redacted by pytest-dbsec: {kinds}>"


def scrub_mapping(mapping, where: str, out: list[dict], **context) -> None:
    """Scan every string value of a mapping (``spark_env_vars``, ``spark_conf``, ``base_parameters``...)
    in place: a value holding a credential is replaced by a marker, and each match is appended to
    ``out`` as ``{**context, location: "<where>.<key>", kind, description, preview, name}``."""
    if not isinstance(mapping, dict):
        return
    for key, value in list(mapping.items()):
        matches = scan_value(value, str(key))
        if matches:
            mapping[key] = redacted_marker(matches)
            for m in matches:
                out.append({**context, "location": f"{where}.{key}", **m.to_json()})


def scrub_list(values, where: str, out: list[dict], **context) -> None:
    """Scan a list of string parameters (``["--password", "x", "--url=jdbc:...;password=y"]``) in
    place. A ``--name value`` / ``--name=value`` pair is judged with the name."""
    if not isinstance(values, list):
        return
    for i, value in enumerate(values):
        if not isinstance(value, str):
            continue
        name = None
        text = value
        m = re.match(r"^-{1,2}([\w.\-]+)=(.*)$", value)
        if m:
            name, text = m.group(1), m.group(2)
        elif i > 0 and isinstance(values[i - 1], str) and re.match(r"^-{1,2}[\w.\-]+$", values[i - 1]) \
                and not value.startswith("-"):
            name = values[i - 1].lstrip("-")
        matches = scan_value(text, name)
        if matches:
            values[i] = redacted_marker(matches)
            for match in matches:
                out.append({**context, "location": f"{where}[{i}]", **match.to_json()})


def group_by_location(matches: list[dict]) -> list[dict]:
    """Collected matches (``scrub_mapping``/``scrub_list`` records) grouped per object and location, in a
    stable order: ``{object_type, object_id, object_name, owner, location, matches: [...]}``."""
    groups: dict[tuple, dict] = {}
    for m in matches:
        key = (str(m.get("object_type")), str(m.get("object_id")), str(m.get("location")))
        g = groups.setdefault(key, {"object_type": m.get("object_type"), "object_id": m.get("object_id"),
                                    "object_name": m.get("object_name"), "owner": m.get("owner"),
                                    "location": m.get("location"), "matches": []})
        g["matches"].append(m)
    return [groups[k] for k in sorted(groups)]
