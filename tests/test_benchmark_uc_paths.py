"""The UC paths benchmark on a tiny generated metastore: both paths produce the same inventory, REST with one
grants call per securable and one tags call per unmasked column, SQL with one statement per view."""

from __future__ import annotations

import pathlib

BENCHMARKS = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"


def test_both_paths_agree_on_the_generated_metastore(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the emulator child process imports it too
    import uc_paths

    res = uc_paths.run(0.001, latency_ms=0, rate=100000, workers=4)
    rest, sql = res["paths"]["rest"], res["paths"]["sql"]
    assert res["same_inventory"] is True and not rest["errors"] and not sql["errors"]
    catalogs = uc_paths.CATALOGS
    schemas = tables = catalogs * uc_paths.SCHEMAS_PER_CATALOG  # one table per schema at this scale
    assert rest["tables"] == sql["tables"] == tables
    # privilege rows: 4 per table, 1 per schema, 2 per catalog, 1 on the metastore
    assert rest["grant_rows"] == sql["grant_rows"] == 4 * tables + schemas + 2 * catalogs + 1
    # one grants call per securable (metastore, catalogs, schemas, tables); two unmasked columns per table
    assert rest["grant_calls"] == 1 + catalogs + schemas + tables
    assert rest["tag_calls"] == 2 * tables
    assert sql["statements"] == 14 and sql["grant_calls"] == sql["tag_calls"] == 0
