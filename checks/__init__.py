"""The built-in controls of pytest-dbsec, one module per area of shared/controls.md.

Each control is a pytest test marked ``@pytest.mark.dbsec(...)`` whose name starts with its ID
(``test_TOK_01_...``). Controls read only the inventory (through the ``workspace``/``account``
fixtures) and the baseline; they never call an API. This package ships in the wheel as
``pytest_dbsec.checks``.
"""
