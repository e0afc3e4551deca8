"""The Graph transport (msal tokens + httpx client) against the HTTPS Graph emulator."""

from __future__ import annotations

import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.directories.entra import EntraDirectory
from bot.directories.graph import (
    GraphRequest,
    GraphRequestFailed,
    RetryPolicy,
)
from bot.errors import AuthenticationFailed, DirectoryUnavailable, PermissionMissing
from bot.settings import Settings
from tests.support.graph_emulator import GraphEmulator, generate_client_certificate

pytestmark = pytest.mark.graph


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def directory(
    settings: Settings, graph: GraphEmulator, sleeps: list[float] | None = None
) -> EntraDirectory:
    return EntraDirectory.from_settings(
        settings, ca_file=graph.ca_file, sleep=(sleeps if sleeps is not None else []).append
    )


# -- tokens -------------------------------------------------------------------------------


def test_one_token_request_serves_many_calls(graph: GraphEmulator, entra: EntraDirectory) -> None:
    graph.state.add_user("jane@contoso.com", mail="jane@contoso.com")

    for _ in range(10):
        entra.find_users("jane@contoso.com")
        entra.tenant()

    assert graph.token_requests == 1


def test_concurrent_first_calls_share_one_token_request(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    graph.state.knobs.latency = 0.05

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda _: entra.find_users("x@contoso.com"), range(32)))

    assert graph.token_requests == 1


def test_a_certificate_credential_gets_a_token(graph: GraphEmulator, tmp_path: Path) -> None:
    pem = tmp_path / "app.pem"
    graph.register_certificate(generate_client_certificate(pem))
    settings = Settings(
        **{
            **graph.settings_overrides(),
            "azure_client_secret": None,
            "azure_client_certificate_path": pem,
        }
    )
    with_cert = directory(settings, graph)
    try:
        assert with_cert.find_users("nobody@contoso.com") == []
    finally:
        with_cert.close()
    assert graph.token_requests == 1


def test_an_unregistered_certificate_is_refused(graph: GraphEmulator, tmp_path: Path) -> None:
    pem = tmp_path / "stranger.pem"
    generate_client_certificate(pem)
    settings = Settings(
        **{
            **graph.settings_overrides(),
            "azure_client_secret": None,
            "azure_client_certificate_path": pem,
        }
    )
    stranger = directory(settings, graph)
    try:
        with pytest.raises(AuthenticationFailed, match="invalid_client"):
            stranger.find_users("nobody@contoso.com")
    finally:
        stranger.close()


def test_a_wrong_secret_is_refused_without_the_secret_in_the_error_or_the_log(
    graph: GraphEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Wr0ng-s3cret-" + "x" * 20
    settings = Settings(**{**graph.settings_overrides(), "azure_client_secret": secret})
    caplog.set_level(logging.DEBUG)
    wrong = directory(settings, graph)
    try:
        with pytest.raises(AuthenticationFailed) as caught:
            wrong.find_users("jane@contoso.com")
    finally:
        wrong.close()

    assert "invalid_client" in str(caught.value)
    assert "AADSTS7000215" in str(caught.value)
    assert secret not in str(caught.value)
    assert secret not in caplog.text
    assert secret not in repr(settings)


def test_the_right_secret_and_tokens_never_reach_the_log(
    graph: GraphEmulator, entra: EntraDirectory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    graph.state.knobs.reject_tokens_next = 1

    entra.find_users("jane@contoso.com")
    entra.tenant()

    assert graph.client_secret not in caplog.text
    assert not any(token in caplog.text for token in graph.app.tokens)


def test_a_wrong_tenant_is_a_configuration_error_naming_the_variables(graph: GraphEmulator) -> None:
    from bot.errors import ConfigurationError

    settings = Settings(**{**graph.settings_overrides(), "azure_tenant_id": "not-my-tenant"})
    lost = directory(settings, graph)
    try:
        with pytest.raises(ConfigurationError, match="AZURE_TENANT_ID"):
            lost.find_users("jane@contoso.com")
    finally:
        lost.close()


# -- TLS trust ----------------------------------------------------------------------------


def test_trust_follows_ssl_cert_file_and_requests_ca_bundle(
    graph: GraphEmulator, graph_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(graph.ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(graph.ca_file))
    from_env = EntraDirectory.from_settings(graph_settings)
    try:
        assert from_env.find_users("nobody@contoso.com") == []
    finally:
        from_env.close()


def test_an_untrusted_certificate_makes_entra_unavailable(
    graph: GraphEmulator, graph_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    untrusting = EntraDirectory.from_settings(graph_settings)
    try:
        with pytest.raises(DirectoryUnavailable, match=f"127.0.0.1:{graph.port}"):
            untrusting.find_users("nobody@contoso.com")
    finally:
        untrusting.close()


# -- unreachable --------------------------------------------------------------------------


def test_an_unreachable_graph_is_unavailable_naming_the_host(
    graph: GraphEmulator, graph_settings: Settings
) -> None:
    port = closed_port()
    settings = graph_settings.model_copy(update={"graph_url": f"https://127.0.0.1:{port}"})
    # The token audience must match the emulator's Graph URL: point the scope there.
    down = directory(settings, graph)
    down.client._tokens = directory(graph_settings, graph).client._tokens  # type: ignore[attr-defined]
    try:
        with pytest.raises(DirectoryUnavailable) as caught:
            down.find_users("jane@contoso.com")
    finally:
        down.close()
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert caught.value.directory == "Entra ID"


def test_an_unreachable_authority_is_unavailable_naming_its_host(
    graph: GraphEmulator, graph_settings: Settings
) -> None:
    port = closed_port()
    settings = graph_settings.model_copy(
        update={"azure_authority_host": f"https://127.0.0.1:{port}"}
    )
    down = directory(settings, graph)
    try:
        with pytest.raises(DirectoryUnavailable, match=f"127.0.0.1:{port}"):
            down.find_users("jane@contoso.com")
    finally:
        down.close()


# -- retries ------------------------------------------------------------------------------


def test_a_429_storm_is_ridden_out_honouring_retry_after(
    graph: GraphEmulator, entra: EntraDirectory, graph_sleeps: list[float]
) -> None:
    graph.state.add_user("jane@contoso.com", mail="jane@contoso.com")
    graph.state.knobs.throttle_next = 3
    graph.state.knobs.retry_after = 7

    users = entra.find_users("jane@contoso.com")

    assert len(users) == 1
    assert graph_sleeps == [7.0, 7.0, 7.0]
    assert [r.status for r in graph.graph_requests()] == [429, 429, 429, 200]


def test_endless_throttling_ends_as_unavailable_after_bounded_attempts(
    graph: GraphEmulator, entra: EntraDirectory, graph_sleeps: list[float]
) -> None:
    graph.state.knobs.throttle_next = 100
    graph.state.knobs.retry_after = 1

    with pytest.raises(DirectoryUnavailable, match="429"):
        entra.find_users("jane@contoso.com")

    assert len(graph.graph_requests()) == RetryPolicy().max_attempts
    assert len(graph_sleeps) == RetryPolicy().max_attempts - 1


def test_a_retry_after_beyond_the_cap_is_not_waited_for(
    graph: GraphEmulator, entra: EntraDirectory, graph_sleeps: list[float]
) -> None:
    graph.state.knobs.throttle_next = 1
    graph.state.knobs.retry_after = 3600

    with pytest.raises(DirectoryUnavailable):
        entra.find_users("jane@contoso.com")

    assert graph_sleeps == []


def test_503s_are_retried_with_capped_growing_backoff(
    graph: GraphEmulator, entra: EntraDirectory, graph_sleeps: list[float]
) -> None:
    graph.state.knobs.unavailable_next = 4

    assert entra.find_users("jane@contoso.com") == []

    policy = RetryPolicy()
    assert len(graph_sleeps) == 4
    for attempt, slept in enumerate(graph_sleeps, start=1):
        ceiling = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
        assert ceiling / 2 <= slept <= ceiling


def test_throttled_requests_inside_a_batch_are_sent_again(
    graph: GraphEmulator, entra: EntraDirectory, graph_sleeps: list[float]
) -> None:
    graph.state.add_contact("Partner", mail="jane@contoso.com")
    graph.state.knobs.throttle_next_in_batch = 2
    graph.state.knobs.retry_after = 2

    holders = entra.find_holders("jane@contoso.com")

    assert [h.name for h in holders] == ["Partner"]
    assert graph_sleeps == [2.0]
    assert [r.path for r in graph.graph_requests()] == ["/v1.0/$batch", "/v1.0/$batch"]


def test_a_401_makes_one_re_authentication_then_succeeds(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    entra.find_users("warm@contoso.com")
    graph.state.knobs.reject_tokens_next = 1

    assert entra.find_users("jane@contoso.com") == []

    assert graph.token_requests == 2
    assert [r.status for r in graph.graph_requests()] == [200, 401, 200]


def test_a_401_after_re_authentication_is_an_authentication_failure(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    graph.state.knobs.reject_tokens_next = 5

    with pytest.raises(AuthenticationFailed):
        entra.find_users("jane@contoso.com")

    assert graph.token_requests == 2


# -- errors, paging, batching ---------------------------------------------------------------


def test_a_403_names_the_permission_the_call_needs(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    graph.state.knobs.denied.add("users")

    with pytest.raises(PermissionMissing, match=r"User\.Read\.All") as caught:
        entra.find_users("jane@contoso.com")

    assert caught.value.server == f"127.0.0.1:{graph.port}"


def test_an_unsupported_filter_is_a_request_failure_with_graphs_code(entra: EntraDirectory) -> None:
    with pytest.raises(GraphRequestFailed) as caught:
        entra.client.get(GraphRequest("/users", {"$filter": "city ne 'x'"}))

    assert caught.value.status == 400
    assert caught.value.code == "Request_UnsupportedQuery"


def test_paging_follows_next_links_across_several_pages(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    for n in range(12):
        graph.state.add_user(f"user{n}@contoso.com", mail=f"user{n}@contoso.com")

    users = entra.client.get_all(GraphRequest("/users", {"$top": "5", "$select": "id,mail"}))

    assert sorted(u["mail"] for u in users) == sorted(f"user{n}@contoso.com" for n in range(12))
    assert len(graph.graph_requests()) == 3
    assert all(
        "%24skiptoken" in r.query or "$skiptoken" in r.query for r in graph.graph_requests()[1:]
    )


def test_a_batch_above_twenty_requests_is_split_and_answers_come_back_in_order(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    users = [graph.state.add_user(f"u{n}@contoso.com") for n in range(45)]

    answers = entra.client.batch(
        [GraphRequest(f"/users/{u.id}", {"$select": "id,userPrincipalName"}) for u in users]
    )

    assert [entra.client.check(a)["userPrincipalName"] for a in answers] == [
        u.user_principal_name for u in users
    ]
    batches = [r for r in graph.graph_requests() if r.path == "/v1.0/$batch"]
    assert len(batches) == 3
    assert len(graph.graph_requests(include_batched=True)) == 45 + 3


def test_a_batch_of_one_is_sent_as_a_plain_request(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    entra.client.batch([GraphRequest("/domains")])

    assert [r.path for r in graph.graph_requests()] == ["/v1.0/domains"]
