"""Hooks other pytest plugins can implement to extend pytest-dbsec (registered through pytest).

Example, a ``conftest.py`` or plugin that adds a data section and ships findings to a SIEM::

    def pytest_dbsec_register_sections(section):
        @section("cluster_events", "workspace", title="recent cluster events")
        def cluster_events(w, ctx):
            return {"events": [e.as_dict() for c in ctx.data("compute")["clusters"]
                               for e in w.clusters.events(c["cluster_id"])]}

    def pytest_dbsec_findings(report, config):
        requests.post(SIEM_URL, json=report.to_json())
"""




def pytest_dbsec_register_sections(section):
    """Register extra data sections with ``section(name, scope, needs=(), title="", account_needs=())``,
    used as a decorator on a ``(client, ctx) -> JSON`` function exactly like the built-in collectors.
    ``needs``: sections of the same scope read with ``ctx.data(name)``; ``account_needs`` (workspace
    sections): account sections read with ``ctx.account_data(name)``, once per run for every workspace.
    Called once, when the run is configured; controls may then declare these sections."""


def pytest_dbsec_findings(report, config):
    """Receive the final results (a ``pytest_dbsec.report.RunReport``) after every report was written:
    the place to ship findings elsewhere. Exceptions here are reported but do not change the verdict."""
