"""Baselines: the thresholds and allowlists controls are judged against (``baselines/*.yaml``).

A baseline is YAML. ``extends: NAME`` starts from a shipped baseline and overrides keys. Controls
read values with ``baseline.get("tokens.max_lifetime_days")``; a missing key is an error, never a
silent default, so a control cannot pass because its threshold was not configured.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


class BaselineError(Exception):
    """A baseline file is unreadable or malformed; the message names file, line and key."""


def shipped_baselines() -> dict[str, Path]:
    root = resources.files("pytest_dbsec.baselines")
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def _resolve(name_or_path: str) -> Path:
    shipped = shipped_baselines()
    if name_or_path in shipped:
        return shipped[name_or_path]
    path = Path(name_or_path)
    if path.is_file():
        return path
    raise BaselineError(f"{name_or_path}: no such baseline file, and not a shipped baseline "
                        f"(shipped: {', '.join(sorted(shipped))})")


def _read(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as e:
        raise BaselineError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise BaselineError(f"{where}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BaselineError(f"{path}:1: a baseline must be a mapping of keys, got {type(data).__name__}")
    return data


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class Baseline:
    def __init__(self, data: dict, name: str, path: Path | None, sha256: str):
        self.data, self.name, self.path, self.sha256 = data, name, path, sha256

    @classmethod
    def load(cls, name_or_path: str = "default", _seen: tuple = ()) -> "Baseline":
        path = _resolve(name_or_path)
        if path.resolve() in _seen:
            raise BaselineError(f"{path}: 'extends' forms a cycle: {' -> '.join(map(str, _seen + (path,)))}")
        raw = _read(path)
        data = dict(raw)
        parent = data.pop("extends", None)
        if parent is not None:
            if not isinstance(parent, str):
                raise BaselineError(f"{path}: key 'extends': expected a baseline name or path")
            data = _merge(cls.load(parent, _seen + (path.resolve(),)).data, data)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return cls(data, Path(name_or_path).stem, path, digest)

    def get(self, dotted: str) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise BaselineError(f"{self.path}: key '{dotted}' is not set in baseline {self.name!r} "
                                    f"(the control needs it; add it or extend 'default')")
            node = node[part]
        return node
