"""Helpers shared by our tests (importable: tests/ is on sys.path under pytest's default import mode)."""


def outcome_of(report: dict, control: str, target: str | None = None) -> dict:
    """The result of one control (on one target) in a findings.json report."""
    return next(r for r in report["results"] if r["control_id"] == control and target in (None, r["target"]))


def ids(report: dict, control: str, target: str = "ws1") -> set[str]:
    """The resource ids a control found on a target."""
    return {f["resource_id"] for f in outcome_of(report, control, target)["findings"]}


def outcome(report: dict, control: str, target: str = "ws1") -> str:
    return outcome_of(report, control, target)["outcome"]
