"""The Graph emulator itself follows the Graph behaviour the adapter relies on."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.directories import entra
from bot.directories.graph import encode_query
from tests.support import graph_emulator
from tests.support.graph_emulator import GraphEmulator
from tests.support.graph_emulator import app as emulator_app

pytestmark = pytest.mark.graph


@pytest.fixture
def http(graph: GraphEmulator) -> Iterator[httpx.Client]:
    token = httpx.post(
        f"{graph.authority_host}/{graph.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": graph.client_id,
            "client_secret": graph.client_secret,
            "scope": f"{graph.url}/.default",
        },
        verify=ssl.create_default_context(cafile=str(graph.ca_file)),
    ).json()["access_token"]
    with httpx.Client(
        base_url=f"{graph.url}/v1.0",
        headers={"Authorization": f"Bearer {token}"},
        verify=ssl.create_default_context(cafile=str(graph.ca_file)),
    ) as client:
        yield client


def get(http: httpx.Client, path: str, **params: str) -> httpx.Response:
    return http.get(f"{path}?{encode_query(params)}" if params else path)


def test_graph_without_a_token_answers_401_in_graphs_error_shape(graph: GraphEmulator) -> None:
    answer = httpx.get(
        f"{graph.url}/v1.0/users", verify=ssl.create_default_context(cafile=str(graph.ca_file))
    )

    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "request-id" in answer.json()["error"]["innerError"]


def test_on_prem_properties_come_back_only_when_selected(
    graph: GraphEmulator, http: httpx.Client
) -> None:
    user = graph.state.add_user("jane@contoso.com", on_premises_immutable_id="AAAA")

    plain = get(http, f"/users/{user.id}").json()
    selected = get(http, f"/users/{user.id}", **{"$select": "id,onPremisesImmutableId"}).json()

    assert "onPremisesImmutableId" not in plain and "proxyAddresses" not in plain
    assert selected["onPremisesImmutableId"] == "AAAA"


def test_filters_compare_case_insensitively_and_unescape_doubled_quotes(
    graph: GraphEmulator, http: httpx.Client
) -> None:
    user = graph.state.add_user("o'neil@contoso.com", proxy_addresses=["SMTP:O'Neil@contoso.com"])

    found = get(
        http, "/users", **{"$filter": "proxyAddresses/any(p:p eq 'smtp:o''neil@CONTOSO.com')"}
    ).json()["value"]

    assert [u["id"] for u in found] == [user.id]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("city eq 'x'", "Request_UnsupportedQuery"),
        ("mail ne 'x'", "Request_UnsupportedQuery"),
        ("mail eq 'x", "BadRequest"),
        ("mail eq 'x' or", "BadRequest"),
        ("(mail eq 'x'", "BadRequest"),
    ],
)
def test_unsupported_or_malformed_filters_answer_400(
    http: httpx.Client, text: str, code: str
) -> None:
    answer = get(http, "/users", **{"$filter": text})

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == code


def test_a_batch_of_more_than_twenty_requests_is_refused(http: httpx.Client) -> None:
    requests = [{"id": str(n), "method": "GET", "url": "/domains"} for n in range(21)]

    answer = http.post("/$batch", json={"requests": requests})

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "BadRequest"


def test_a_wrong_client_secret_answers_invalid_client(graph: GraphEmulator) -> None:
    answer = httpx.post(
        f"{graph.authority_host}/{graph.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": graph.client_id,
            "client_secret": "nope",
            "scope": f"{graph.url}/.default",
        },
        verify=ssl.create_default_context(cafile=str(graph.ca_file)),
    )

    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert graph.token_requests == 1


def test_deleted_users_are_listed_apart_with_filter_and_select_and_leave_users(
    graph: GraphEmulator, http: httpx.Client
) -> None:
    ghost = graph.state.add_user("ghost@contoso.com", on_premises_immutable_id="QUJD")
    graph.state.add_user("live@contoso.com", on_premises_immutable_id="QUJD")
    graph.state.delete_user(ghost.id, when="2026-10-30T08:15:00Z")

    deleted = get(
        http,
        "/directory/deletedItems/microsoft.graph.user",
        **{
            "$filter": "onPremisesImmutableId eq 'QUJD'",
            "$select": "id,userPrincipalName,onPremisesImmutableId,deletedDateTime",
        },
    )
    active = get(http, "/users", **{"$filter": "onPremisesImmutableId eq 'QUJD'"})
    unknown = get(
        http, "/directory/deletedItems/microsoft.graph.user", **{"$select": "id,noSuchProperty"}
    )

    assert deleted.status_code == 200
    assert deleted.json()["value"] == [
        {
            "id": ghost.id,
            "userPrincipalName": "ghost@contoso.com",
            "onPremisesImmutableId": "QUJD",
            "deletedDateTime": "2026-10-30T08:15:00Z",
        }
    ]
    assert [u["userPrincipalName"] for u in active.json()["value"]] == ["live@contoso.com"]
    assert unknown.status_code == 400


def test_domains_mark_the_initial_domain(http: httpx.Client) -> None:
    domains = get(http, "/domains", **{"$select": "id,isInitial"}).json()["value"]

    assert [d["id"] for d in domains if d["isInitial"]] == ["contoso.onmicrosoft.com"]


# -- every Graph path and property the adapter and the emulator name exists in Graph v1.0 ----

METADATA = json.loads(
    (Path(graph_emulator.__file__).parent / "graph_v1_metadata_extract.json").read_text()
)


def properties(type_name: str) -> set[str]:
    return set(METADATA[type_name]["properties"])


def navigation(type_name: str) -> set[str]:
    return set(METADATA[type_name]["navigation"])


def names(select: str) -> set[str]:
    return set(select.split(","))


def test_every_selected_property_exists_on_its_graph_type() -> None:
    assert names(entra.USER_SELECT) <= properties("user")
    assert names(entra.DELETED_USER_SELECT) <= properties("user")
    assert names(entra.HOLDER_USER_SELECT) <= properties("user")
    assert names(entra.HOLDER_SELECT) <= properties("group") & properties("orgContact")
    assert names(entra.DOMAIN_SELECT) <= properties("domain")
    assert names(entra.ROLE_SELECT) <= properties("directoryRole")
    assert names(entra.MEMBER_GROUP_SELECT) <= properties("group")
    assert set(entra.SYNC_FEATURES) <= properties("onPremisesDirectorySynchronizationFeature")
    assert {"category", "propertyCausingError", "value", "occurredDateTime"} <= properties(
        "onPremisesProvisioningError"
    )
    # The filters name these.
    assert {
        "mail",
        "proxyAddresses",
        "userPrincipalName",
        "onPremisesImmutableId",
        "onPremisesSecurityIdentifier",
    } <= properties("user")
    assert {"principalId", "roleDefinition"} <= properties(
        "unifiedRoleEligibilityScheduleInstance"
    ) | navigation("unifiedRoleEligibilityScheduleInstance")
    assert {"principalId", "roleDefinition"} <= properties("unifiedRoleAssignment") | navigation(
        "unifiedRoleAssignment"
    )


def test_every_path_the_adapter_uses_exists_in_graph() -> None:
    assert {"users", "groups", "contacts", "domains", "directory", "roleManagement"} <= navigation(
        "$root"
    )
    assert {"deletedItems", "onPremisesSynchronization"} <= navigation("directory")
    assert "transitiveMemberOf" in navigation("user")
    assert "mailboxSettings" in properties("user")
    assert "directory" in navigation("roleManagement")
    assert {"roleAssignments", "roleEligibilityScheduleInstances"} <= navigation("rbacApplication")
    assert "features" in properties("onPremisesDirectorySynchronization")


def test_the_emulator_serves_only_real_graph_properties() -> None:
    assert set(emulator_app.USER_PROPERTIES) <= properties("user")
    assert set(emulator_app.DELETED_USER_PROPERTIES) <= properties("user")
    assert set(emulator_app.GROUP_PROPERTIES) <= properties("group")
    assert set(emulator_app.CONTACT_PROPERTIES) <= properties("orgContact")
