#!/usr/bin/env bash
# Prepare a fresh Debian machine for .ci/run: the Debian packages CI needs, and the CI tools
# (.ci/tools.txt) in their own virtualenv. Prints the tools' bin directory on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
need_apt=()
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
command -v runuser >/dev/null || need_apt+=(util-linux)
# apt-get update always: a fresh machine's package lists may be missing or stale.
$SUDO apt-get update -qq >&2
if [ ${#need_apt[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${need_apt[@]}" >&2
fi

tools="${SMTPMATCH_CI_TOOLS:-${TMPDIR:-/tmp}/smtpmatch-ci-tools}"
[ -x "$tools/bin/python" ] || python3 -m venv "$tools" >&2
"$tools/bin/python" -m pip install -q --disable-pip-version-check -r .ci/tools.txt >&2
echo "$tools/bin"
