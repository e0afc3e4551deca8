#!/usr/bin/env bash
# Install what the tests need on a fresh Debian machine, then run ruff, mypy and the whole suite.
# The tests start their own throwaway servers: a Samba AD DC, an HTTPS Graph emulator, a
# PostgreSQL server (or use SMTPMATCH_TEST_POSTGRES_URL), and a fake Slack Web API.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v samba >/dev/null 2>&1 || need_apt+=(samba)
command -v samba-tool >/dev/null 2>&1 || need_apt+=(samba)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${need_apt[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[dev]'

echo "== ruff"; python3 -m ruff check . && python3 -m ruff format --check .
echo "== mypy"; python3 -m mypy
echo "== pytest"; python3 -m pytest "$@"
