"""The whole-tenant readiness scan: bulk reads, in-memory indexes, items and their outputs."""
