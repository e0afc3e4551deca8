"""``check_match``: gather facts from both directories concurrently, then apply the rules."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from bot.errors import DirectoryError, DirectoryUnavailable, InvalidInput
from bot.models import CloudUser, OnPremUser, Unknown, is_service_domain, smtp_values
from bot.ports import CloudDirectory, OnPremDirectory
from bot.rules.address import parse_address, primary_smtp, same_address
from bot.rules.checks import Report
from bot.rules.engine import Facts, Policy, choose_target, evaluate
from bot.rules.plan import cn_candidates, sam_candidates

MAX_ONPREM_ID_LENGTH = 1024


@dataclass
class Directories:
    """The two directory ports plus what runs their calls concurrently."""

    onprem: OnPremDirectory
    cloud: CloudDirectory
    policy: Policy = field(default_factory=Policy)
    executor: Executor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=64, thread_name_prefix="lookup")
    )


def parse_onprem_id(text: str | None) -> str | None:
    """Validate the optional AD account name (sAMAccountName, UPN or DN).

    Raises:
        InvalidInput: when it is oversized or contains control characters.
    """
    if text is None or not text.strip():
        return None
    value = text.strip()
    if len(value) > MAX_ONPREM_ID_LENGTH:
        raise InvalidInput(f"the AD account name is longer than {MAX_ONPREM_ID_LENGTH} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise InvalidInput("the AD account name contains control characters")
    return value


def check_match(
    dirs: Directories,
    address: str,
    onprem_id: str | None = None,
    *,
    approved_primary: str | None = None,
) -> Report:
    """Look ``address`` up in both directories and explain whether it can be SMTP-matched.

    Every lookup starts as soon as what it depends on is known: the users on both sides, the
    tenant and the holders of the typed address at once; the mailbox, roles and (when no AD
    user is named) the likely AD accounts under another name as soon as the cloud user is
    found; the active and soft-deleted anchor owners, the UPN owner and the holders of the AD
    user's other addresses as soon as the AD user is found. So a report costs about two round
    trips of the slower directory, not the sum of all calls.

    Args:
        dirs: the directory ports.
        address: the address as typed; validated here before anything is looked up.
        onprem_id: the AD account named by the requester, if any.
        approved_primary: at approval time, the cloud primary address the approver saw.

    Raises:
        InvalidInput: the address or account name is malformed (nothing was looked up).
        DirectoryError: a directory could not answer.
    """
    address = parse_address(address)
    onprem_id = parse_onprem_id(onprem_id)
    lookups = _Lookups(dirs.executor)
    cloud, onprem = dirs.cloud, dirs.onprem

    lookups.start("cloud_users", cloud.find_users, address)
    lookups.start("onprem_users", onprem.find_users, address, onprem_id)
    lookups.start("tenant", cloud.tenant)
    lookups.start("cloud_holders", cloud.find_holders, address)
    lookups.start("onprem_holders", onprem.find_holders, address)
    target: CloudUser | None = None
    ad_users: Sequence[OnPremUser] | None = None

    def look_alike() -> None:
        # Only when no AD user carries the address and none was named: is there a likely
        # account under another name? Started as soon as the cloud user is known, so it runs
        # alongside the AD lookup instead of after it.
        if target is None or onprem_id is not None or "lookalikes" in lookups.started:
            return
        if ad_users is not None and ad_users:
            return
        lookups.start(
            "lookalikes",
            onprem.find_lookalikes,
            target.display_name,
            target.given_name,
            target.surname,
            target.user_principal_name.split("@", 1)[0] or None,
        )
        primary = primary_smtp(target.proxy_addresses, target.mail)
        if dirs.policy.create_ou and primary:
            # KB step 2: which names a new account could take, read alongside the lookalikes.
            lookups.start(
                "account_names",
                onprem.account_names,
                dirs.policy.create_ou,
                cn_candidates(target),
                sam_candidates(target, primary, dirs.policy.sam_template),
                target.user_principal_name,
            )

    for name, value in lookups.as_completed():
        if name == "cloud_users":
            target = choose_target(value, address)
            if target is not None:
                lookups.start("mailbox", cloud.has_mailbox, target.id)
                lookups.start("roles", cloud.roles, target.id)
                primary = primary_smtp(target.proxy_addresses, target.mail)
                if primary and not same_address(primary, address):
                    # An alias was typed: uniqueness is about the address the match will use.
                    lookups.start("cloud_holders", cloud.find_holders, primary)
                    lookups.start("onprem_holders", onprem.find_holders, primary)
                look_alike()
        elif name == "onprem_users":
            ad_users = value
            if len(value) == 1:
                user = value[0]
                lookups.start("anchor_owners", cloud.find_by_anchor, user.anchor, user.object_sid)
                lookups.start(
                    "deleted_anchor_owners",
                    cloud.find_deleted_by_anchor,
                    user.anchor,
                    user.object_sid,
                )
                # A UPN equal to the typed address was already asked about: the cloud users
                # holding the address include its UPN owner (saves a round trip).
                upn = user.user_principal_name
                if upn and not same_address(upn, address):
                    lookups.start("upn_owner", cloud.find_user_by_upn, upn)
                carried = _carried_addresses(user, address)
                if carried:
                    lookups.start("carried_holders", cloud.find_holders_of, carried)
            look_alike()

    got = lookups.results
    if len(got["onprem_users"]) == 1 and "upn_owner" not in got:
        upn = got["onprem_users"][0].user_principal_name
        if upn:
            got["upn_owner"] = next(
                (u for u in got["cloud_users"] if same_address(u.user_principal_name, upn)), None
            )
    facts = Facts(
        address=address,
        onprem_id=onprem_id,
        cloud_users=tuple(got["cloud_users"]),
        onprem_users=tuple(got["onprem_users"]),
        tenant=got["tenant"],
        mailbox=got.get("mailbox"),
        roles=got.get("roles"),
        cloud_holders=_sequence_or_unknown(got["cloud_holders"]),
        onprem_holders=tuple(got["onprem_holders"]),
        anchor_owners=tuple(got["anchor_owners"]) if "anchor_owners" in got else None,
        upn_owner=got.get("upn_owner"),
        approved_primary=approved_primary,
        deleted_anchor_owners=(
            _sequence_or_unknown(got["deleted_anchor_owners"])
            if "deleted_anchor_owners" in got
            else None
        ),
        carried_holders=(
            _sequence_or_unknown(got["carried_holders"]) if "carried_holders" in got else ()
        ),
        lookalikes=tuple(got.get("lookalikes", ())),
        account_names=got.get("account_names") if not got["onprem_users"] else None,
    )
    return evaluate(facts, dirs.policy)


def _carried_addresses(user: OnPremUser, typed: str) -> tuple[str, ...]:
    """The addresses the AD user carries now that become the cloud user's after the change:
    its SMTP addresses, ``mail`` and UPN (the rules decide which of them count)."""
    found: dict[str, str] = {}
    for value in smtp_values(user.proxy_addresses):
        found.setdefault(value.address.casefold(), value.address)
    for text in (user.mail, user.user_principal_name):
        if text:
            found.setdefault(text.casefold(), text)
    return tuple(a for k, a in found.items() if k != typed.casefold() and not is_service_domain(a))


def _sequence_or_unknown(value: Any) -> Any:
    return value if isinstance(value, Unknown) else tuple(value)


class _Lookups:
    """Named lookups on the executor; a later start under the same name supersedes the first
    (its result is the one kept). The first fault is raised once everything has settled."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._pending: dict[Future[Any], str] = {}
        self._latest: dict[str, Future[Any]] = {}
        self.results: dict[str, Any] = {}
        #: Every name started so far.
        self.started: set[str] = set()

    def start(self, name: str, fn: Callable[..., Any], *args: Any) -> None:
        future = self._executor.submit(fn, *args)
        self._pending[future] = name
        self._latest[name] = future
        self.started.add(name)

    def as_completed(self) -> Iterator[tuple[str, Any]]:
        """Yield (name, result) of current lookups as they finish; may grow while iterating.

        Raises:
            DirectoryError: once everything has settled, when lookups failed: every failing
                directory is named, Active Directory first, then Entra ID.
        """
        faults: list[BaseException] = []
        while self._pending:
            done, _ = wait(self._pending, return_when=FIRST_COMPLETED)
            for future in done:
                name = self._pending.pop(future)
                if self._latest[name] is not future:
                    continue  # superseded
                error = future.exception()
                if error is not None:
                    faults.append(error)
                    continue
                self.results[name] = future.result()
                if not faults:
                    yield name, self.results[name]
        if faults:
            raise _combined(faults)


#: The order failing directories are named in, whatever order their lookups failed in.
_DIRECTORY_ORDER = ("Active Directory", "Entra ID")


def _combined(faults: list[BaseException]) -> BaseException:
    """One error for every fault: a bug as it is; directory faults, one per directory (its
    first), joined in a fixed order, unavailable when either directory was."""
    bugs = [f for f in faults if not isinstance(f, DirectoryError)]
    if bugs:
        return bugs[0]
    first: dict[str, DirectoryError] = {}
    for fault in faults:
        assert isinstance(fault, DirectoryError)
        first.setdefault(fault.directory, fault)
    if len(first) == 1:
        return next(iter(first.values()))
    ordered = sorted(
        first.values(),
        key=lambda f: _DIRECTORY_ORDER.index(f.directory) if f.directory in _DIRECTORY_ORDER else 2,
    )
    kind = (
        DirectoryUnavailable
        if any(isinstance(f, DirectoryUnavailable) for f in ordered)
        else DirectoryError
    )
    return kind(
        " and ".join(f.directory for f in ordered),
        ", ".join(f.server for f in ordered),
        "; ".join(str(f) for f in ordered),
    )


__all__ = ["Directories", "check_match", "parse_onprem_id"]
