"""Shared test configuration: the real test servers are fixtures in tests/support."""

pytest_plugins = [
    "tests.support.samba",
    "tests.support.graph",
    "tests.support.postgres",
    "tests.support.slack",
]
