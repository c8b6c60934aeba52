"""The chaos harness of issue 13: app instances over throw-away Redis and PostgreSQL, faults, and a checker.

`python -m tests.chaos` (`make chaos`) runs every scenario and prints a table; `test_chaos_short.py` runs a few of
them briefly in the test suite.
"""
