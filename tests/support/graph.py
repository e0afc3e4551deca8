"""Fixtures for the graph test server (filled in by its adapter's work)."""
