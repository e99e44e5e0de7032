"""Repository-level pytest configuration (not shipped).

Our own tests live in tests/ and drive the plugin through pytester (enabled in pyproject.toml). When
the suite is run against a workspace from this checkout (`pytest --dbsec-demo`), tests/ is not part of
it unless named. (With an editable install this file is also seen by runs elsewhere, because the
shipped checks live below it: keep it free of anything but this hook.)
"""

from pathlib import Path

_TESTS = Path(__file__).parent / "tests"


def pytest_ignore_collect(collection_path, config):
    dbsec_run = any(config.getoption(o, None) for o in (
        "dbsec_demo", "dbsec_replay", "databricks_profile", "databricks_host", "dbsec", "databricks_account_profile"))
    if dbsec_run and collection_path == _TESTS and not any(
            Path(a.split("::")[0]).resolve().is_relative_to(_TESTS) for a in config.invocation_params.args
            if not a.startswith("-") and Path(a.split("::")[0]).exists()):
        return True
    return None
