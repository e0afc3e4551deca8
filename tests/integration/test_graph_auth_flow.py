"""What the Graph transport now delegates to httpx (the 401 re-authentication as an
``httpx.Auth`` flow) and the ``Retry-After`` forms its own retry loop reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from bot.directories.entra import EntraDirectory
from bot.directories.graph import retry_after_seconds
from bot.errors import AuthenticationFailed, DirectoryUnavailable
from tests.support.graph_emulator import GraphEmulator

pytestmark = pytest.mark.graph


def _http_date(offset: timedelta) -> str:
    return format_datetime(datetime.now(UTC) + offset, usegmt=True)


# -- 401: one re-authentication ------------------------------------------------------------


def test_a_revoked_token_is_replaced_once_and_a_batch_is_sent_again_with_its_body(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    graph.state.add_contact("Partner", mail="jane@contoso.com")
    entra.find_users("warm@contoso.com")
    graph.revoke_tokens()

    holders = entra.find_holders("jane@contoso.com")

    assert [h.name for h in holders] == ["Partner"]
    assert graph.token_requests == 2
    assert [(r.path, r.status) for r in graph.graph_requests()][1:] == [
        ("/v1.0/$batch", 401),
        ("/v1.0/$batch", 200),
    ]
    assert entra.client.round_trips == 3


def test_a_second_401_fails_authentication_without_a_third_try_or_the_token(
    graph: GraphEmulator, entra: EntraDirectory, caplog: pytest.LogCaptureFixture
) -> None:
    graph.state.knobs.reject_tokens_next = 2

    with pytest.raises(AuthenticationFailed) as caught:
        entra.find_users("jane@contoso.com")

    assert [r.status for r in graph.graph_requests()] == [401, 401]
    assert graph.token_requests == 2
    assert "fresh access token" in str(caught.value)
    assert "Bearer" not in str(caught.value) and "Bearer" not in caplog.text


def test_each_call_gets_its_own_re_authentication(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    graph.state.knobs.reject_tokens_next = 1
    assert entra.find_users("jane@contoso.com") == []
    graph.state.knobs.reject_tokens_next = 1
    assert entra.find_users("jane@contoso.com") == []

    assert [r.status for r in graph.graph_requests()] == [401, 200, 401, 200]
    assert graph.token_requests == 3


# -- Retry-After: seconds and HTTP-date ----------------------------------------------------


def test_a_retry_after_http_date_is_waited_for_until_that_time(
    graph: GraphEmulator, entra: EntraDirectory, graph_sleeps: list[float]
) -> None:
    graph.state.add_user("jane@contoso.com", mail="jane@contoso.com")
    graph.state.knobs.throttle_next = 1
    graph.state.knobs.retry_after = _http_date(timedelta(seconds=30))

    assert len(entra.find_users("jane@contoso.com")) == 1

    (slept,) = graph_sleeps
    assert 28.0 <= slept <= 30.0
    assert [r.status for r in graph.graph_requests()] == [429, 200]


def test_a_retry_after_http_date_in_the_past_retries_at_once(
    graph: GraphEmulator, entra: EntraDirectory, graph_sleeps: list[float]
) -> None:
    graph.state.knobs.throttle_next = 1
    graph.state.knobs.retry_after = _http_date(timedelta(minutes=-5))

    assert entra.find_users("jane@contoso.com") == []

    assert graph_sleeps == [0.0]


def test_a_retry_after_http_date_beyond_the_cap_is_not_waited_for(
    graph: GraphEmulator, entra: EntraDirectory, graph_sleeps: list[float]
) -> None:
    graph.state.knobs.throttle_next = 1
    graph.state.knobs.retry_after = _http_date(timedelta(hours=1))

    with pytest.raises(DirectoryUnavailable, match="429"):
        entra.find_users("jane@contoso.com")

    assert graph_sleeps == []


def test_a_throttled_batch_item_with_an_http_date_is_sent_again_after_it(
    graph: GraphEmulator, entra: EntraDirectory, graph_sleeps: list[float]
) -> None:
    graph.state.add_contact("Partner", mail="jane@contoso.com")
    graph.state.knobs.throttle_next_in_batch = 2
    graph.state.knobs.retry_after = _http_date(timedelta(seconds=10))

    assert [h.name for h in entra.find_holders("jane@contoso.com")] == ["Partner"]

    (slept,) = graph_sleeps
    assert 8.0 <= slept <= 10.0


@pytest.mark.parametrize(
    "value",
    [
        "37",
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850 form
        "Sun Nov  6 08:49:37 1994",  # obsolete asctime form
    ],
)
def test_every_retry_after_form_of_rfc_9110_is_read(value: str) -> None:
    now = datetime(1994, 11, 6, 8, 49, 0, tzinfo=UTC)

    assert retry_after_seconds(value, now) == 37.0


def test_an_unreadable_retry_after_is_none_so_backoff_applies() -> None:
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("") is None
