"""Fixtures for the samba test server (filled in by its adapter's work)."""
