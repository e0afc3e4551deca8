#!/usr/bin/env bash
# Install what the tests need on a fresh Debian machine, then run ruff, mypy and the whole suite.
# The tests start their own throwaway servers: a Samba AD DC, an HTTPS Graph emulator, a
# PostgreSQL server (or use SMTPMATCH_TEST_POSTGRES_URL), and a fake Slack Web API.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# The AD DC needs more than the samba binary: the provisioning schema, the DSDB modules and the
# VFS modules (provision sets sysvol ACLs through acl_xattr). Some images ship samba without them.
for pkg in samba samba-ad-provision samba-dsdb-modules samba-vfs-modules; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need_apt+=(postgresql)
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
if [ ${#need_apt[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${need_apt[@]}" >/dev/null
fi

# Always a virtualenv of our own: a machine's global site-packages may hold another checkout's
# editable install, which subprocess tests (`python -m bot.cli` from a temp folder) would import.
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  ${SUDO:-} apt-get update -qq
  DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y -qq python3-venv >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
PY=.venv/bin/python
$PY -m pip install -q --disable-pip-version-check -e '.[dev]'

echo "== ruff"; $PY -m ruff check . && $PY -m ruff format --check .
echo "== mypy"; $PY -m mypy
echo "== pytest"; $PY -m pytest "$@"
