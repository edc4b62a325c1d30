"""Fixtures of the audit tests: a logged-in admin (from tests/admin_support.py)."""

from tests.admin_support import admin  # noqa: F401  (a fixture, found by name)
