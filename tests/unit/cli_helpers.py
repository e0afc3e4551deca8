"""Run the installed ``smtpmatch`` console script as a user would, in a clean environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PREFIXES = ("SLACK_", "SMTPMATCH_", "LDAP_", "AZURE_", "GRAPH_", "NO_COLOR")


def console_script() -> list[str]:
    """The ``smtpmatch`` script next to this interpreter (the virtualenv's), else ``-m``."""
    script = Path(sys.executable).parent / "smtpmatch"
    if script.exists():
        return [str(script)]
    found = shutil.which("smtpmatch")
    return [found] if found else [sys.executable, "-m", "bot.cli"]


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without smtpmatch's variables, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    env.update(values)
    return env


def smtpmatch(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """``smtpmatch ARGS`` in ``cwd``; returns the finished process (never raises on exit code)."""
    return subprocess.run(
        [*console_script(), *args],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
