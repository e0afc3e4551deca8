"""Fixtures for the postgres test server (filled in by its adapter's work)."""
