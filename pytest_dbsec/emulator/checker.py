"""Validation helpers shared by the tenant loader: the error type and typed accessors that name keys."""

from __future__ import annotations

from typing import Dict, Optional


class TenantError(ValueError):
    """A tenant file or mapping is invalid. ``str(e)`` names the file, line and key path."""

    def __init__(self, message: str, *, path: tuple = (), source: Optional[str] = None, line: Optional[int] = None):
        self.key_path = format_path(path)
        self.source = source
        self.line = line
        self.reason = message
        where = ""
        if source:
            where = f"{source}:{line}: " if line else f"{source}: "
        elif line:
            where = f"line {line}: "
        key = f"{self.key_path}: " if self.key_path else ""
        super().__init__(f"{where}{key}{message}")


def format_path(path: tuple) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class Checker:
    def __init__(self, lines: Dict[tuple, int], source: Optional[str]):
        self.lines = lines
        self.source = source

    def err(self, path: tuple, msg: str):
        line = None
        p = tuple(path)
        while p:
            if p in self.lines:
                line = self.lines[p]
                break
            p = p[:-1]
        raise TenantError(msg, path=tuple(path), source=self.source, line=line)

    # Small typed accessors, each naming the key on failure.
    def mapping(self, obj, path, keys=None) -> dict:
        if not isinstance(obj, dict):
            self.err(path, f"expected a mapping, got {tname(obj)}")
        if keys is not None:
            for k in obj:
                if k not in keys:
                    self.err(path + (k,), f"unknown key {k!r} (allowed: {', '.join(sorted(keys))})")
        return obj

    def seq(self, obj, key, path) -> list:
        v = obj.get(key)
        if v is None:
            obj[key] = []
            return obj[key]
        if not isinstance(v, list):
            self.err(path + (key,), f"expected a list, got {tname(v)}")
        return v

    def mappings(self, obj, key, path) -> list:
        items = self.seq(obj, key, path)
        for i, it in enumerate(items):
            self.mapping(it, path + (key, i))
        return items

    def string(self, obj, key, path, required=True, default=None) -> Optional[str]:
        v = obj.get(key, default)
        if v is None:
            if required:
                self.err(path + (key,), "required string is missing")
            return None
        if not isinstance(v, str) or not v:
            self.err(path + (key,), f"expected a non-empty string, got {tname(v)} {v!r}")
        obj[key] = v
        return v

    def enum(self, obj, key, path, allowed, default=None, required=False) -> Optional[str]:
        v = obj.get(key, default)
        if v is None:
            if required:
                self.err(path + (key,), f"required; one of {', '.join(sorted(allowed))}")
            return None
        if v not in allowed:
            self.err(path + (key,), f"{v!r} is not one of {', '.join(sorted(allowed))}")
        obj[key] = v
        return v

    def boolean(self, obj, key, path, default=None) -> Optional[bool]:
        v = obj.get(key, default)
        if v is None:
            return None
        if not isinstance(v, bool):
            self.err(path + (key,), f"expected true or false, got {v!r}")
        obj[key] = v
        return v

    def integer(self, obj, key, path, default=None, minimum=None) -> Optional[int]:
        v = obj.get(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            self.err(path + (key,), f"expected an integer, got {v!r}")
        if minimum is not None and v < minimum:
            self.err(path + (key,), f"must be >= {minimum}, got {v}")
        obj[key] = v
        return v

    def names(self, obj, key, path) -> list:
        items = self.seq(obj, key, path)
        for i, n in enumerate(items):
            if not isinstance(n, str) or not n:
                self.err(path + (key, i), f"expected a name, got {n!r}")
        return items




def tname(v) -> str:
    return "null" if v is None else type(v).__name__
