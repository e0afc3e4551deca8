"""An unreachable domain controller is described as it is: refused is not a timeout."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from bot.directories.ad import _ConnectionPool
from bot.errors import DirectoryUnavailable


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and then says nothing."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def open_pool(*urls: str, timeout: float = 2.0) -> DirectoryUnavailable:
    pool = _ConnectionPool(list(urls), "CN=svc,DC=contoso,DC=com", SecretStr("x"), None, timeout, 1)
    with pytest.raises(DirectoryUnavailable) as caught, pool.lease():
        pass
    return caught.value


def test_a_refused_connection_says_refused_at_once() -> None:
    port = closed_port()
    started = time.monotonic()
    error = open_pool(f"ldaps://127.0.0.1:{port}", timeout=10.0)
    assert time.monotonic() - started < 5
    assert "refused the connection" in str(error)
    assert "within" not in str(error)
    assert f"127.0.0.1:{port}" in str(error)


def test_a_silent_server_is_a_timeout_not_a_refusal(silent_port: int) -> None:
    error = str(open_pool(f"ldaps://127.0.0.1:{silent_port}", timeout=1.0))
    assert "did not answer" in error
    assert "refused" not in error and "TLS failed" not in error


def test_each_server_of_a_failover_list_is_named_in_order() -> None:
    first, second = closed_port(), closed_port()
    error = str(open_pool(f"ldaps://127.0.0.1:{first}", f"ldaps://127.0.0.1:{second}"))
    assert f"127.0.0.1:{first} refused the connection" in error
    assert f"127.0.0.1:{second} refused the connection" in error
    assert error.index(f":{first} refused") < error.index(f":{second} refused")
