"""When both directories fail, the error names both, Active Directory first, whichever
failed first (issue 14 finding 4); the user is told without hosts (issue 15 M5)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bot.directories.demo import build_demo_directories
from bot.errors import DirectoryError, DirectoryUnavailable, PermissionMissing
from bot.services.check import Directories, check_match
from bot.services.faults import public_fault


class Failing:
    """A directory adapter whose every call fails with ``error`` after ``wait`` is set."""

    def __init__(self, error: DirectoryError, wait: threading.Event | None = None) -> None:
        self.error, self.wait = error, wait

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            if self.wait is not None:
                self.wait.wait(5)
            raise self.error

        return fail


AD_DOWN = DirectoryUnavailable("Active Directory", "dc1.corp.example:636", "timed out")
ENTRA_DOWN = DirectoryUnavailable("Entra ID", "graph.example", "timed out")


@pytest.mark.parametrize("ad_fails_first", [True, False])
def test_both_failing_directories_are_named_active_directory_first(ad_fails_first: bool) -> None:
    _, _, policy = build_demo_directories()
    later = threading.Event()
    onprem = Failing(AD_DOWN, None if ad_fails_first else later)
    cloud = Failing(ENTRA_DOWN, later if ad_fails_first else None)
    timer = threading.Timer(0.2, later.set)
    timer.start()
    with pytest.raises(DirectoryUnavailable) as raised:
        check_match(Directories(onprem, cloud, policy), "jane@contoso.com")  # type: ignore[arg-type]
    timer.cancel()
    error = raised.value
    assert error.directory == "Active Directory and Entra ID"
    text = str(error)
    assert text.index("Active Directory (dc1") < text.index("Entra ID (graph")
    assert public_fault(error) == "Active Directory and Entra ID could not be reached"


def test_one_failing_directory_is_named_alone() -> None:
    onprem, _, policy = build_demo_directories()
    cloud = Failing(PermissionMissing("Entra ID", "graph.example", "User.Read.All"))
    with pytest.raises(PermissionMissing) as raised:
        check_match(Directories(onprem, cloud, policy), "jane@contoso.com")  # type: ignore[arg-type]
    assert raised.value.directory == "Entra ID"
