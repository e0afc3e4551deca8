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

__all__ = [
    "EmulatedContact",
    "EmulatedGroup",
    "EmulatedUser",
    "GraphEmulator",
    "GraphState",
    "Knobs",
    "ProvisioningErrorEntry",
    "RecordedRequest",
    "generate_client_certificate",
    "generate_test_ca",
]
