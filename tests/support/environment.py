"""The process environment of a bot or command-line run pointed at the test servers."""

from __future__ import annotations

import os

from tests.support.graph_emulator import GraphEmulator
from tests.support.samba import SambaDC

#: Settings of the parent process that must not leak into a run under test.
_OWN_PREFIXES = ("LDAP_", "AZURE_", "GRAPH_", "SMTPMATCH_", "SLACK_")


def directory_environment(
    dc: SambaDC, graph: GraphEmulator, *, scope: str, ldap_timeout: float = 3, **extra: str
) -> dict[str, str]:
    """The parent's environment without any smtpmatch, Slack, LDAP, Azure or Graph setting,
    then the Samba DC's and the Graph emulator's (HTTPS trust through the usual variables: the
    emulator's test CA), the sync scope, and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}
    env.update(
        LDAP_URL=dc.ldaps_url,
        LDAP_BIND_DN=dc.admin_dn,
        LDAP_BIND_PASSWORD=str(dc.admin_password),
        LDAP_BASE_DN=dc.base_dn,
        LDAP_CA_FILE=str(dc.ca_file),
        LDAP_TIMEOUT_SECONDS=f"{ldap_timeout:g}",
        AZURE_TENANT_ID=graph.tenant_id,
        AZURE_CLIENT_ID=graph.client_id,
        AZURE_CLIENT_SECRET=graph.client_secret,
        AZURE_AUTHORITY_HOST=graph.authority_host,
        GRAPH_URL=graph.url,
        SSL_CERT_FILE=str(graph.ca_file),
        REQUESTS_CA_BUNDLE=str(graph.ca_file),
        SMTPMATCH_SYNC_SCOPE=scope,
    )
    env.update(extra)
    return env
