"""Reports, all rendered from the same findings data (``RunReport``).

Today: ``findings.json``. Every writer is atomic (a temp file renamed into place), so an interrupted
run never leaves a half-written report behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..findings import Outcome

FINDINGS_FORMAT = "pytest-dbsec/findings"
FINDINGS_VERSION = 1


@dataclass
class RunReport:
    meta: dict
    outcomes: list[Outcome]
    complete: bool
    data_errors: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        counts: dict[str, int] = {}
        for o in self.outcomes:
            counts[o.outcome] = counts.get(o.outcome, 0) + 1
        return {
            "format": FINDINGS_FORMAT,
            "version": FINDINGS_VERSION,
            "complete": self.complete,
            "run": self.meta,
            "summary": counts,
            "data_errors": self.data_errors,
            "results": [o.to_json() for o in sorted(self.outcomes, key=lambda o: (o.control.id, o.target))],
        }


def _write_atomic(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def write_reports(report: RunReport, report_dir: Path) -> list[Path]:
    return [_write_atomic(Path(report_dir) / "findings.json",
                          json.dumps(report.to_json(), indent=2, sort_keys=True, default=str) + "\n")]
