"""Time values in tenant files.

A tenant must stay valid forever (the demo ships with the package), so time fields may be written
relative to the moment the tenant is loaded: ``"now"``, ``"-30d"``, ``"+90d"``, ``"now-12h"``. They may
also be epoch milliseconds (int) or ISO-8601 dates/datetimes. The loader turns each into the wire type
of its field: epoch-ms ints for most Databricks APIs, RFC3339 strings for the few that use protobuf
timestamps (SP OAuth secrets, Lakeview dashboards, tag assignments, pipeline update states).
"""

from __future__ import annotations

import datetime as _dt
import re

_UNIT_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 7 * 86_400_000,
    "y": 365 * 86_400_000,
}
_DAY_MS = 86_400_000
_RELATIVE = re.compile(r"^\s*(now)?\s*(?:([+-])\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|y))?\s*$", re.IGNORECASE)


def now_ms() -> int:
    return int(_dt.datetime.now(_dt.timezone.utc).timestamp() * 1000)


def parse_time(value, now: int) -> int:
    """Return epoch milliseconds for an int, an ISO string or a relative string. Raise ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"expected a time, got boolean {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, _dt.datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)
        return int(dt.timestamp() * 1000)
    if isinstance(value, _dt.date):
        return int(_dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc).timestamp() * 1000)
    if not isinstance(value, str):
        raise ValueError(f"expected a time, got {type(value).__name__}")
    text = value.strip()
    m = _RELATIVE.match(text)
    # An empty string matches the regex with no groups: reject it explicitly.
    if m and (m.group(1) or m.group(2)):
        if m.group(2) is None:
            return now
        sign = 1 if m.group(2) == "+" else -1
        return now + sign * int(float(m.group(3)) * _UNIT_MS[m.group(4).lower()])
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        dt = _dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"bad time {value!r}: use epoch ms, an ISO-8601 date/datetime, or a relative time "
            f"such as 'now', '-30d', '+90d', 'now-12h' (units ms, s, m, h, d, w, y)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.timezone.utc)
    return int(dt.timestamp() * 1000)


def to_rfc3339(ms: int) -> str:
    dt = _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def floor_day(ms: int) -> int:
    # last_used_day has day precision on the wire.
    return ms - (ms % _DAY_MS)


# Field names that carry a time anywhere in a tenant. Anything else is left alone, so free-form maps
# (spark_conf, tags, notebook content) are never rewritten.
MS_KEYS = frozenset(
    {
        "creation_time",
        "expiry_time",
        "last_used_day",
        "created_at",
        "updated_at",
        "start_time",
        "terminated_time",
        "last_restarted_time",
        "last_activity_time",
        "last_state_loss_time",
        "created_time",
        "creation_timestamp",
        "last_updated_timestamp",
        "created_at_timestamp",
        "modified_at",
        "last_modified",
        "deleted_at",
        "expiration_time",
        "activated_at",
        "last_attempt_time",
        "last_successful_attempt_time",
        "update_time",
        "create_time",
        "expire_time",
    }
)
# Keys whose wire type is an RFC3339 string in the given kind of object (see the section name in
# the path). Everywhere else these keys are epoch ms.
RFC_SECTIONS = {
    "secrets": {"create_time", "update_time", "expire_time"},  # SP OAuth secrets
    "dashboards": {"create_time", "update_time"},  # Lakeview
    "latest_updates": {"creation_time"},  # pipeline update states
    "log_delivery_status": {"last_attempt_time", "last_successful_attempt_time"},
}
# Free-form maps: never look for time fields inside them.
OPAQUE_KEYS = frozenset(
    {
        "spark_conf",
        "spark_env_vars",
        "custom_tags",
        "default_tags",
        "tags",
        "column_tags",
        "properties",
        "configuration",
        "conf",
        "definition",
        "content",
        "serialized_dashboard",
        "options",
        "parameters",
        "base_parameters",
    }
)
