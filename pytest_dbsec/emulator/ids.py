"""Deterministic identifiers.

Tenants may omit ids; the loader derives them from a hash of stable facts (kind, workspace, name) so the
same tenant always yields the same ids, and adding an object never renumbers the others.
"""

from __future__ import annotations

import hashlib


def _hex(*parts) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def gen_digits(n: int, *parts) -> str:
    """n decimal digits, no leading zero (SCIM ids, workspace ids, job ids)."""
    value = int(_hex(*parts), 16) % (9 * 10 ** (n - 1))
    return str(value + 10 ** (n - 1))


def gen_hex(n: int, *parts) -> str:
    return (_hex(*parts) * 2)[:n]


def gen_uuid(*parts) -> str:
    h = _hex(*parts)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def gen_cluster_id(*parts) -> str:
    # Real cluster ids look like 0612-093015-ab12cd34: a date-like prefix, a time-like part, a suffix.
    h = _hex(*parts)
    n = int(h[:12], 16)
    mm = n % 12 + 1
    dd = (n // 12) % 28 + 1
    t = (n // 336) % 240000
    return f"{mm:02d}{dd:02d}-{t:06d}-{h[12:20]}"
