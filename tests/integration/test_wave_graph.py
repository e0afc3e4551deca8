"""A wave's sync watch asks Entra ID in bulk: ``$filter=id in (...) or onPremisesImmutableId
in (...)``, 15 values per ``in`` as Graph allows, so a poll costs one request per 15 users."""

from __future__ import annotations

import pytest

from bot.directories.entra import EntraDirectory
from bot.directories.graph import GraphRequest, GraphRequestFailed
from tests.support.graph_emulator import GraphEmulator

pytestmark = pytest.mark.graph


def test_watch_users_costs_one_request_per_15_users_and_finds_targets_and_anchor_holders(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    users = [graph.state.add_user(f"u{i}@contoso.com", mail=f"u{i}@contoso.com") for i in range(40)]
    users[3].on_premises_immutable_id = "ANCHOR3"
    users[3].on_premises_sync_enabled = True
    # Sync made a second object for user 7's anchor: a duplicate, which the watch must see.
    duplicate = graph.state.add_user("dup7@contoso.com", mail="dup7@contoso.com")
    duplicate.on_premises_immutable_id = "ANCHOR7"
    graph.state.requests.clear()

    pairs = [(u.id, f"ANCHOR{i}") for i, u in enumerate(users)]
    seen = entra.watch_users(pairs)

    asked = [r for r in graph.state.requests if r.path == "/v1.0/users"]
    assert len(asked) == 3  # 40 users: 15 + 15 + 10
    assert set(seen) == {u.id for u in users}
    target, holders = seen[users[3].id]
    assert target is not None and target.on_premises_immutable_id == "ANCHOR3"
    assert [h.id for h in holders] == [users[3].id]
    assert [h.id for h in seen[users[7].id][1]] == [duplicate.id]
    assert seen[users[0].id][1] == ()


def test_the_emulator_refuses_more_than_15_values_in_one_in_as_graph_does(
    graph: GraphEmulator, entra: EntraDirectory
) -> None:
    ids = ",".join(f"'{i}'" for i in range(16))
    with pytest.raises(GraphRequestFailed) as caught:
        entra.client.get(GraphRequest("/users", {"$filter": f"id in ({ids})"}))
    assert caught.value.status == 400
    assert "Too many values" in str(caught.value)
