"""``python -m bot.healthcheck``: the container's HEALTHCHECK (the image has no curl).

Asks ``GET /healthz`` on ``127.0.0.1:SMTPMATCH_PORT``, the port the server listens on (one
setting for both); exit 0 when the bot answers ready, 1 otherwise, with the reason on stderr.
It reads only that variable, so a problem elsewhere in the configuration cannot hide the answer.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

from bot.settings import Settings

#: Seconds to wait for the answer (keep under the HEALTHCHECK's --timeout).
TIMEOUT_SECONDS = 4.0


def port_setting() -> int:
    """``SMTPMATCH_PORT`` from the environment, else the server's default."""
    given = os.environ.get("SMTPMATCH_PORT", "").strip()
    if given:
        return int(given)
    default = Settings.model_fields["smtpmatch_port"].default
    return int(default)


def main() -> int:
    """Probe the local server once; 0 = healthy."""
    try:
        url = f"http://127.0.0.1:{port_setting()}/healthz"
    except ValueError:
        print("unhealthy: SMTPMATCH_PORT is not a number", file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        print(f"unhealthy: {url} did not answer ({exc})", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
