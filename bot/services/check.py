"""``check_match``: gather facts from both directories concurrently, then apply the rules."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

from bot.errors import DirectoryError, DirectoryUnavailable, InvalidInput
from bot.models import (
    CloudUser,
    Holder,
    OnPremUser,
    RoleAssignment,
    Tenant,
    Unknown,
    is_service_domain,
    smtp_values,
)
from bot.ports import AccountNames, CloudDirectory, OnPremDirectory
from bot.rules.address import parse_address, primary_smtp, same_address
from bot.rules.checks import Report
from bot.rules.engine import Facts, Policy, choose_target, evaluate
from bot.rules.plan import cn_candidates, sam_candidates

MAX_ONPREM_ID_LENGTH = 1024

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
D = TypeVar("D")
V = TypeVar("V")


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


@dataclass(frozen=True, eq=False)
class _Key(Generic[T_co]):
    """One named lookup of :func:`check_match`, whose result has type ``T_co`` (keys compare by
    identity: starting a key again supersedes its earlier lookup)."""

    name: str


_CLOUD_USERS: _Key[Sequence[CloudUser]] = _Key("cloud_users")
_ONPREM_USERS: _Key[Sequence[OnPremUser]] = _Key("onprem_users")
_TENANT: _Key[Tenant] = _Key("tenant")
_CLOUD_HOLDERS: _Key[Sequence[Holder] | Unknown] = _Key("cloud_holders")
_ONPREM_HOLDERS: _Key[Sequence[Holder]] = _Key("onprem_holders")
_MAILBOX: _Key[bool | Unknown] = _Key("mailbox")
_ROLES: _Key[tuple[RoleAssignment, ...] | Unknown] = _Key("roles")
_ANCHOR_OWNERS: _Key[Sequence[CloudUser]] = _Key("anchor_owners")
_DELETED_ANCHOR_OWNERS: _Key[Sequence[CloudUser] | Unknown] = _Key("deleted_anchor_owners")
_UPN_OWNER: _Key[CloudUser | None] = _Key("upn_owner")
_CARRIED_HOLDERS: _Key[Sequence[Holder] | Unknown] = _Key("carried_holders")
_LOOKALIKES: _Key[Sequence[OnPremUser]] = _Key("lookalikes")
_ACCOUNT_NAMES: _Key[AccountNames] = _Key("account_names")


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

    lookups.start(_CLOUD_USERS, cloud.find_users, address)
    lookups.start(_ONPREM_USERS, onprem.find_users, address, onprem_id)
    lookups.start(_TENANT, cloud.tenant)
    lookups.start(_CLOUD_HOLDERS, cloud.find_holders, address)
    lookups.start(_ONPREM_HOLDERS, onprem.find_holders, address)
    target: CloudUser | None = None
    ad_users: Sequence[OnPremUser] | None = None

    def look_alike() -> None:
        # Only when no AD user carries the address and none was named: is there a likely
        # account under another name? Started as soon as the cloud user is known, so it runs
        # alongside the AD lookup instead of after it.
        if target is None or onprem_id is not None or _LOOKALIKES in lookups.started:
            return
        if ad_users is not None and ad_users:
            return
        lookups.start(
            _LOOKALIKES,
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
                _ACCOUNT_NAMES,
                onprem.account_names,
                dirs.policy.create_ou,
                cn_candidates(target),
                sam_candidates(target, primary, dirs.policy.sam_template),
                target.user_principal_name,
            )

    for key in lookups.as_completed():
        if key is _CLOUD_USERS:
            target = choose_target(lookups.get(_CLOUD_USERS), address)
            if target is not None:
                lookups.start(_MAILBOX, cloud.has_mailbox, target.id)
                lookups.start(_ROLES, cloud.roles, target.id)
                primary = primary_smtp(target.proxy_addresses, target.mail)
                if primary and not same_address(primary, address):
                    # An alias was typed: uniqueness is about the address the match will use.
                    lookups.start(_CLOUD_HOLDERS, cloud.find_holders, primary)
                    lookups.start(_ONPREM_HOLDERS, onprem.find_holders, primary)
                look_alike()
        elif key is _ONPREM_USERS:
            ad_users = lookups.get(_ONPREM_USERS)
            if len(ad_users) == 1:
                user = ad_users[0]
                lookups.start(_ANCHOR_OWNERS, cloud.find_by_anchor, user.anchor, user.object_sid)
                lookups.start(
                    _DELETED_ANCHOR_OWNERS,
                    cloud.find_deleted_by_anchor,
                    user.anchor,
                    user.object_sid,
                )
                # A UPN equal to the typed address was already asked about: the cloud users
                # holding the address include its UPN owner (saves a round trip).
                upn = user.user_principal_name
                if upn and not same_address(upn, address):
                    lookups.start(_UPN_OWNER, cloud.find_user_by_upn, upn)
                carried = _carried_addresses(user, address)
                if carried:
                    lookups.start(_CARRIED_HOLDERS, cloud.find_holders_of, carried)
            look_alike()

    cloud_users, onprem_users = lookups.get(_CLOUD_USERS), lookups.get(_ONPREM_USERS)
    upn_owner = lookups.get_or(_UPN_OWNER, None)
    if len(onprem_users) == 1 and not lookups.has(_UPN_OWNER):
        upn = onprem_users[0].user_principal_name
        if upn:
            upn_owner = next(
                (u for u in cloud_users if same_address(u.user_principal_name, upn)), None
            )
    facts = Facts(
        address=address,
        onprem_id=onprem_id,
        cloud_users=tuple(cloud_users),
        onprem_users=tuple(onprem_users),
        tenant=lookups.get(_TENANT),
        mailbox=lookups.get_or(_MAILBOX, None),
        roles=lookups.get_or(_ROLES, None),
        cloud_holders=_tuple_or_unknown(lookups.get(_CLOUD_HOLDERS)),
        onprem_holders=tuple(lookups.get(_ONPREM_HOLDERS)),
        anchor_owners=(tuple(lookups.get(_ANCHOR_OWNERS)) if lookups.has(_ANCHOR_OWNERS) else None),
        upn_owner=upn_owner,
        approved_primary=approved_primary,
        deleted_anchor_owners=(
            _tuple_or_unknown(lookups.get(_DELETED_ANCHOR_OWNERS))
            if lookups.has(_DELETED_ANCHOR_OWNERS)
            else None
        ),
        carried_holders=(
            _tuple_or_unknown(lookups.get(_CARRIED_HOLDERS))
            if lookups.has(_CARRIED_HOLDERS)
            else ()
        ),
        lookalikes=tuple(lookups.get_or(_LOOKALIKES, ())),
        account_names=lookups.get_or(_ACCOUNT_NAMES, None) if not onprem_users else None,
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


def _tuple_or_unknown(value: Sequence[V] | Unknown) -> tuple[V, ...] | Unknown:
    return value if isinstance(value, Unknown) else tuple(value)


class _Lookups:
    """Lookups on the executor, each under a typed key; a later start under the same key
    supersedes the first (its result is the one kept). The first fault is raised once
    everything has settled."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._pending: dict[Future[object], _Key[object]] = {}
        self._latest: dict[_Key[object], Future[object]] = {}
        self._results: dict[_Key[object], object] = {}
        #: Every key started so far.
        self.started: set[_Key[object]] = set()

    def start(self, key: _Key[T], fn: Callable[..., T], *args: object) -> None:
        """Run ``fn(*args)`` on the executor; its result will be ``key``'s."""
        future: Future[object] = self._executor.submit(fn, *args)
        self._pending[future] = key
        self._latest[key] = future
        self.started.add(key)

    def has(self, key: _Key[object]) -> bool:
        """Whether ``key``'s lookup finished (and was not superseded)."""
        return key in self._results

    def get(self, key: _Key[T]) -> T:
        """``key``'s result (its lookup finished)."""
        return cast(T, self._results[key])

    def get_or(self, key: _Key[T], default: D) -> T | D:
        """``key``'s result, or ``default`` when that lookup was never started."""
        return self.get(key) if key in self._results else default

    def as_completed(self) -> Iterator[_Key[object]]:
        """Yield the key of each current lookup as it finishes; may grow while iterating.

        Raises:
            DirectoryError: once everything has settled, when lookups failed: every failing
                directory is named, Active Directory first, then Entra ID.
        """
        faults: list[BaseException] = []
        while self._pending:
            done, _ = wait(self._pending, return_when=FIRST_COMPLETED)
            for future in done:
                key = self._pending.pop(future)
                if self._latest[key] is not future:
                    continue  # superseded
                error = future.exception()
                if error is not None:
                    faults.append(error)
                    continue
                self._results[key] = future.result()
                if not faults:
                    yield key
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
