"""PostgreSQL (and SQLite) for the storage tests.

Fixtures:

- ``postgres_url`` (session): an admin URL of a PostgreSQL server where tests may create
  databases. ``SMTPMATCH_TEST_POSTGRES_URL`` when set; otherwise a throwaway server of our own,
  started from the Debian package's binaries (``/usr/lib/postgresql/*/bin``) in a temp
  directory on a free port, and stopped at the end. PostgreSQL refuses to run as root, so when
  the tests run as root the server runs as the ``postgres`` system user. If it cannot start,
  the tests that need it fail with the reason (never skip).
- ``store_url`` (function, parametrized ``sqlite`` / ``postgresql``): a fresh empty database
  per test: a temp SQLite file, or a uniquely named PostgreSQL database dropped afterwards.
- ``store`` (function): a migrated ``Store`` on ``store_url``, closed afterwards.
- ``store_factory`` (function): opens more ``Store`` instances on the same URL (another
  "replica"); all are closed afterwards.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from bot.store import Store

ENV_URL = "SMTPMATCH_TEST_POSTGRES_URL"
#: Where Debian's postgresql-NN packages put their server binaries.
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
#: Seconds to wait for initdb / start / stop.
TIMEOUT_S = 60


class PostgresStartError(RuntimeError):
    """The throwaway server could not be started; the message says why."""


def find_postgres_bindir() -> Path:
    """Return the directory of ``pg_ctl``/``initdb``: the newest Debian one, else the PATH's.

    Returns:
        The bin directory.

    Raises:
        PostgresStartError: no PostgreSQL server binaries were found.
    """
    candidates = []
    for pg_ctl in Path("/").glob(DEBIAN_BIN_GLOB.lstrip("/") + "/pg_ctl"):
        match = re.search(r"/postgresql/(\d+)(?:\.(\d+))?/", str(pg_ctl))
        if match and (pg_ctl.parent / "initdb").exists():
            candidates.append(((int(match[1]), int(match[2] or 0)), pg_ctl.parent))
    if candidates:
        return max(candidates)[1]
    found = shutil.which("pg_ctl")
    if found and (Path(found).parent / "initdb").exists():
        return Path(found).parent
    raise PostgresStartError(
        f"no PostgreSQL server binaries (pg_ctl, initdb) in {DEBIAN_BIN_GLOB} or on PATH; "
        f"install the postgresql package or set {ENV_URL}"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temp directory, on 127.0.0.1 and a free port, trust auth.

    Only this cluster is ever stopped: ``pg_ctl stop`` is pointed at our own data directory.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="smtpmatch-pg-"))
        self.datadir = self.root / "data"
        self.logfile = self.root / "server.log"
        self.port = 0
        self._started = False
        self._run_as: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            # initdb and postgres refuse to run as root; hand the directory to the service user.
            try:
                self._run_as = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PostgresStartError(
                    "running as root and there is no 'postgres' system user to run PostgreSQL "
                    f"as; create one or set {ENV_URL}"
                ) from exc
            os.chown(self.root, self._run_as.pw_uid, self._run_as.pw_gid)
        self.root.chmod(0o700)

    @property
    def admin_url(self) -> str:
        """URL of the ``postgres`` maintenance database as the superuser ``postgres``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Create the cluster and start the server; raise PostgresStartError with the reason."""
        self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        # A free port can be taken between our probe and the server's bind; try a few.
        for _ in range(3):
            self.port = _free_port()
            options = (
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                # Throwaway data: durability only costs time here.
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200"
            )
            try:
                self._run(
                    "pg_ctl",
                    "start",
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.logfile),
                    "-w",
                    "-t",
                    str(TIMEOUT_S),
                    "-o",
                    options,
                )
            except PostgresStartError:
                if "could not bind" in self._log_tail() or "in use" in self._log_tail():
                    continue
                raise
            self._started = True
            return
        raise PostgresStartError(f"no free port after 3 tries:\n{self._log_tail()}")

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory. Safe to call twice."""
        if self._started:
            self._started = False
            try:
                self._run("pg_ctl", "stop", "-D", str(self.datadir), "-m", "fast", "-w")
            except PostgresStartError as exc:
                # Leave the directory for a post-mortem, but say where it is.
                raise PostgresStartError(f"{exc}\n(data left in {self.root})") from exc
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        user = self._run_as
        try:
            subprocess.run(
                command,
                check=True,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S + 30,
                cwd=self.root,
                env=env,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
            )
        except subprocess.CalledProcessError as exc:
            raise PostgresStartError(
                f"{program} failed (exit {exc.returncode}): {exc.stderr.strip() or exc.stdout}\n"
                f"{self._log_tail()}"
            ) from exc
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresStartError(f"{program} could not run: {exc}") from exc

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.logfile.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])


def _psycopg_conninfo(url: URL) -> str:
    # psycopg understands plain postgresql:// URLs only, not SQLAlchemy's +driver form.
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Admin URL of a PostgreSQL server where tests may create and drop databases."""
    given = os.environ.get(ENV_URL)
    if given:
        yield given
        return
    try:
        server = ThrowawayPostgres(find_postgres_bindir())
        atexit.register(server.stop)  # in case the session dies before teardown
        server.start()
    except PostgresStartError as exc:
        pytest.fail(f"could not start a throwaway PostgreSQL for the tests: {exc}", pytrace=False)
    try:
        yield server.admin_url
    finally:
        server.stop()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'smtpmatch.db'}"
        return
    admin = make_url(request.getfixturevalue("postgres_url"))
    name = f"smtpmatch_test_{secrets.token_hex(6)}"
    with psycopg.connect(_psycopg_conninfo(admin), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_psycopg_conninfo(admin), autocommit=True) as conn:
            # FORCE: a test that leaked a connection must not leak the database too.
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def store_factory(store_url: str) -> Iterator[Callable[[], Store]]:
    """Open more Store instances on the test's database (each one like another replica)."""
    opened: list[Store] = []

    def open_store() -> Store:
        new = Store(store_url)
        opened.append(new)
        return new

    try:
        yield open_store
    finally:
        for each in opened:
            each.close()


@pytest.fixture
def store(store_factory: Callable[[], Store]) -> Store:
    """A migrated Store on a fresh database (SQLite and PostgreSQL)."""
    new = store_factory()
    new.migrate()
    return new
