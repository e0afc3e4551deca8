"""Sync triggers (adapters): none, a signed webhook for a runbook, or Entra Cloud Sync's
provisionOnDemand through Graph."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx

from bot.directories.graph import trust_context
from bot.errors import DirectoryUnavailable

#: Header names of the webhook signature: ``sha256=<hex HMAC of "{timestamp}.{body}">``.
SIGNATURE_HEADER = "X-Smtpmatch-Signature"
TIMESTAMP_HEADER = "X-Smtpmatch-Timestamp"


@dataclass(frozen=True, slots=True)
class SyncSubject:
    """What a trigger needs to know about the applied change."""

    request_id: str
    dn: str
    address: str
    anchor: str


class SyncTriggerPort(Protocol):
    """Starts a sync (or does nothing and lets the schedule run)."""

    name: str

    def trigger(self, subject: SyncSubject) -> str:
        """Start the sync; returns a line for the audit log."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class NoTrigger:
    """Wait for the scheduled cycle (30 minutes by default on Entra Connect)."""

    name = "none"

    def trigger(self, subject: SyncSubject) -> str:
        """Nothing to do."""
        return "waiting for the scheduled sync cycle"

    def close(self) -> None:
        """Nothing to release."""


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value a receiver recomputes to trust the webhook."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class WebhookTrigger:
    """POST a small JSON body to an automation runbook (``Start-ADSyncSyncCycle -PolicyType
    Delta``), signed with HMAC-SHA256 when a secret is set."""

    name = "webhook"

    def __init__(self, url: str, secret: str | None, *, timeout: float = 10.0) -> None:
        self._url = url
        self._secret = secret
        # Same trust as Graph: SSL_CERT_FILE / REQUESTS_CA_BUNDLE, else the system store.
        self._client = httpx.Client(timeout=timeout, verify=trust_context())

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def trigger(self, subject: SyncSubject) -> str:
        """Send the webhook.

        Raises:
            DirectoryUnavailable: the runbook endpoint did not accept it.
        """
        body = json.dumps(
            {
                "event": "smtpmatch.sync_requested",
                "request_id": subject.request_id,
                "dn": subject.dn,
                "address": subject.address,
                "anchor": subject.anchor,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self._secret:
            timestamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign_webhook(self._secret, timestamp, body)
        host = httpx.URL(self._url).host
        try:
            response = self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DirectoryUnavailable("Sync webhook", host, type(exc).__name__) from None
        if response.status_code >= 300:
            raise DirectoryUnavailable(
                "Sync webhook", host, f"answered HTTP {response.status_code}"
            )
        return f"webhook accepted (HTTP {response.status_code})"


class CloudSyncTrigger:
    """Entra Cloud Sync: Graph ``provisionOnDemand`` for the one user (5 calls per 10 s)."""

    name = "cloud-sync"

    def __init__(self, provision: Callable[[str], str]) -> None:
        self._provision = provision

    def trigger(self, subject: SyncSubject) -> str:
        """Provision the AD user on demand."""
        return self._provision(subject.dn)

    def close(self) -> None:
        """The Graph client belongs to the Entra directory, which closes it."""
