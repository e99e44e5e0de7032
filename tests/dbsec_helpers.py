"""Helpers shared by our tests (importable: tests/ is on sys.path under pytest's default import mode)."""


def outcome_of(report: dict, control: str, target: str | None = None) -> dict:
    """The result of one control (on one target) in a findings.json report."""
    return next(r for r in report["results"] if r["control_id"] == control and target in (None, r["target"]))
