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

PY=python3
# A Debian system Python refuses pip installs (PEP 668): use a virtualenv there.
if $PY -c 'import os, sys, sysconfig; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
  if ! $PY -m venv --help >/dev/null 2>&1 || ! $PY -c 'import ensurepip' 2>/dev/null; then
    ${SUDO:-} apt-get update -qq
    DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y -qq python3-venv >/dev/null
  fi
  [ -x .venv/bin/python ] || $PY -m venv .venv
  PY=.venv/bin/python
fi
$PY -m pip install -q --disable-pip-version-check -e '.[dev]'

echo "== ruff"; $PY -m ruff check . && $PY -m ruff format --check .
echo "== mypy"; $PY -m mypy
echo "== pytest"; $PY -m pytest "$@"
