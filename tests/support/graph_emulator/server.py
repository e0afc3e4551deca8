"""``GraphEmulator``: the HTTPS server in a background thread, and its Python API."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from cryptography import x509

from tests.support.graph_emulator.app import GraphApp
from tests.support.graph_emulator.ca import TestCertificates, generate_test_ca
from tests.support.graph_emulator.state import GraphState, RecordedRequest
from tests.support.graph_emulator.sync_simulator import (
    WEBHOOK_PATH,
    LdapParams,
    SyncSimulator,
    SyncWebhook,
)


class GraphEmulator:
    """An HTTPS Microsoft identity platform + Graph v1.0 emulator on 127.0.0.1.

    The same origin serves the authority (``/{tenant}/v2.0/.well-known/...``,
    ``/{tenant}/oauth2/v2.0/token``) and Graph (``/v1.0/...``), so ``url`` is both the
    authority host and the Graph URL.

    Example::

        with GraphEmulator() as graph:
            graph.state.add_user("jane@contoso.com", mail="jane@contoso.com")
            settings = Settings(**graph.settings_overrides())
    """

    def __init__(self, workdir: Path | None = None) -> None:
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="graph-emulator-")
        self.workdir = workdir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.certs: TestCertificates = generate_test_ca(self.workdir / "tls")
        self.tenant_id = str(uuid.uuid4())
        self.client_id = str(uuid.uuid4())
        self.client_secret = "emulator-secret-" + uuid.uuid4().hex
        self.state = GraphState()
        self.port = 0
        self.app = GraphApp(
            state=self.state,
            tenant_id=self.tenant_id,
            client_id=self.client_id,
            client_secret=self.client_secret,
            base_url=lambda: self.url,
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- addresses --------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT`` (Graph URL and authority host)."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def authority_host(self) -> str:
        """The authority host to configure (``AZURE_AUTHORITY_HOST``)."""
        return self.url

    @property
    def ca_file(self) -> Path:
        """PEM of the test CA that signed the server certificate."""
        return self.certs.ca_file

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request answered since the last reset (token requests included)."""
        with self.state.lock:
            return list(self.state.requests)

    def graph_requests(self, *, include_batched: bool = False) -> list[RecordedRequest]:
        """Graph requests only; by default the HTTP round trips (a ``$batch`` counts once)."""
        return [
            r
            for r in self.requests
            if r.path.startswith("/v1.0") and (include_batched or not r.in_batch)
        ]

    @property
    def token_requests(self) -> int:
        """How many times the token endpoint was called since the last reset."""
        return self.state.token_requests

    def settings_overrides(self) -> dict[str, Any]:
        """The :class:`bot.settings.Settings` fields that point the bot at this emulator."""
        return {
            "azure_tenant_id": self.tenant_id,
            "azure_client_id": self.client_id,
            "azure_client_secret": self.client_secret,
            "azure_authority_host": self.authority_host,
            "graph_url": self.url,
        }

    def register_certificate(self, cert_pem: bytes) -> None:
        """Accept client assertions signed by the key of this certificate."""
        self.app.certificates.append(x509.load_pem_x509_certificate(cert_pem))

    def reset(self) -> None:
        """Empty tenant, default knobs, cleared logs, sync simulator off. Issued tokens stay
        valid."""
        self.state.reset()
        self.app.certificates.clear()
        self.app.provisioned.clear()
        self.stop_sync_simulator()

    # -- the sync simulator ---------------------------------------------------------------

    def configure_sync_simulator(
        self,
        ldap: LdapParams,
        *,
        secret: str | None = None,
        delay: float = 0.0,
        enabled: bool = True,
        hold: bool = False,
        write_consistency_guid: bool = True,
    ) -> SyncWebhook:
        """Switch on the sync simulator and its webhook at :attr:`sync_webhook_url`.

        Args:
            ldap: the AD the simulator reads (see ``LdapParams.of_samba``).
            secret: when set, webhook calls must carry a valid HMAC signature (else 401).
            delay: seconds between accepting a webhook call and the simulated sync cycle.
            enabled: False records webhook calls but never syncs (a sync that never comes).
            hold: queue accepted calls until ``SyncWebhook.release()``.
            write_consistency_guid: stamp objectGUID into an empty mS-DS-ConsistencyGuid.

        Returns:
            The webhook receiver (its ``simulator``, ``calls``, knobs and ``release()``).
        """
        self.stop_sync_simulator()
        simulator = SyncSimulator(self.state, ldap, write_consistency_guid=write_consistency_guid)
        webhook = SyncWebhook(simulator, secret=secret, delay=delay, enabled=enabled, hold=hold)
        self.app.sync_webhook = webhook
        return webhook

    @property
    def sync_webhook(self) -> SyncWebhook | None:
        """The configured webhook receiver, if any."""
        return self.app.sync_webhook

    @property
    def sync_webhook_url(self) -> str:
        """Where the bot's webhook trigger posts (``SMTPMATCH_SYNC_WEBHOOK_URL``)."""
        return f"{self.url}{WEBHOOK_PATH}"

    def stop_sync_simulator(self) -> None:
        """Switch the simulator off: the webhook answers 404, pending syncs are dropped."""
        webhook, self.app.sync_webhook = self.app.sync_webhook, None
        if webhook is not None:
            webhook.close()

    def revoke_tokens(self) -> None:
        """Invalidate every issued token (the next Graph request answers 401)."""
        with self.state.lock:
            self.app.tokens.clear()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> GraphEmulator:
        """Start serving on a free port; returns once the server accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app.asgi(),
            ssl_certfile=str(self.certs.cert_file),
            ssl_keyfile=str(self.certs.key_file),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="graph-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Graph emulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop the server thread and remove the temporary files."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> GraphEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
