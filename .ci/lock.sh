#!/usr/bin/env bash
# requirements.lock: every runtime dependency of smtpmatch (with the postgres extra) at an exact
# version, with the hashes of every file PyPI has for it. The Dockerfile installs from it with
# --require-hashes; pyproject.toml keeps ranges.
#
#   bash .ci/lock.sh            re-resolve (keeps current pins that still satisfy pyproject.toml)
#   bash .ci/lock.sh --upgrade  move every pin to the newest allowed version
#   bash .ci/lock.sh --check    fail (with a diff) when the lock does not match pyproject.toml
#
# Resolved against PyPI only (no local wheel folders or mirrors): the hashes must be PyPI's.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${SMTPMATCH_CI_BIN:-$(bash .ci/setup.sh)}"

mode="${1:-}"
out=requirements.lock
if [ "$mode" = "--check" ]; then
  out="$(mktemp)"
  trap 'rm -f "$out"' EXIT
  cp requirements.lock "$out"
fi
extra=()
[ "$mode" = "--upgrade" ] && extra+=(--upgrade)

# pip-compile runs pip: keep this machine's pip configuration (extra indexes, find-links,
# constraints) out of it.
env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL -u PIP_CONSTRAINT \
  PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND="bash .ci/lock.sh" \
  "$bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras --extra postgres \
  --no-emit-index-url --no-emit-find-links --index-url https://pypi.org/simple \
  "${extra[@]}" --output-file "$out" pyproject.toml

if [ "$mode" = "--check" ]; then
  if ! diff -u requirements.lock "$out"; then
    echo "requirements.lock does not match pyproject.toml: run 'bash .ci/lock.sh' and commit it" >&2
    exit 1
  fi
  echo "requirements.lock matches pyproject.toml"
fi
