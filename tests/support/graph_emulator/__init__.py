"""An HTTPS emulator of the Microsoft identity platform and Microsoft Graph, for tests.

See :class:`GraphEmulator`. The state (:class:`GraphState`) is what tests seed and what a
sync simulator may update.
"""

from tests.support.graph_emulator.ca import generate_client_certificate, generate_test_ca
from tests.support.graph_emulator.server import GraphEmulator
from tests.support.graph_emulator.state import (
    EmulatedContact,
    EmulatedGroup,
    EmulatedUser,
    GraphState,
    Knobs,
    ProvisioningErrorEntry,
    RecordedRequest,
)
from tests.support.graph_emulator.sync_simulator import (
    ExportAction,
    LdapParams,
    SimulatedExport,
    SyncSimulator,
    SyncWebhook,
)

__all__ = [
    "EmulatedContact",
    "EmulatedGroup",
    "EmulatedUser",
    "ExportAction",
    "GraphEmulator",
    "GraphState",
    "Knobs",
    "LdapParams",
    "ProvisioningErrorEntry",
    "RecordedRequest",
    "SimulatedExport",
    "SyncSimulator",
    "SyncWebhook",
    "generate_client_certificate",
    "generate_test_ca",
]
