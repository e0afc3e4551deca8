#!/usr/bin/env bash
# The image's recipe without a container engine: what the Dockerfile does, step by step.
#  1. build context = only what .dockerignore lets through; build the wheel as the build stage does
#  2. as an unprivileged user, in a fresh virtualenv: install requirements.lock with
#     --require-hashes from PyPI, then the wheel with --no-deps, then `pip check`
#  3. start `smtpmatch serve --demo --http` (port from SMTPMATCH_PORT, as in the image) and run
#     the Dockerfile's own HEALTHCHECK command against it until it passes
#  4. the same command fails when SMTPMATCH_PORT names a port nobody serves (it reads the setting)
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"

echo "-- build context (what .dockerignore lets through)"
mkdir "$work/context"
git ls-files -z -- pyproject.toml README.md requirements.lock bot handlers \
  | xargs -0 -I{} cp --parents {} "$work/context/"
# The files the Dockerfile's COPY lines name must all be there.
for path in pyproject.toml README.md requirements.lock bot handlers; do
  [ -e "$work/context/$path" ] || { echo "missing from the build context: $path" >&2; exit 1; }
done

echo "-- build stage: pip wheel --no-deps"
(cd "$work/context" && python3 -m pip wheel -q --no-cache-dir --no-deps --wheel-dir "$work/wheels" .)
ls "$work/wheels"

# An unprivileged user, as USER 10001 in the image.
if [ "$(id -u)" -eq 0 ]; then
  id smtpmatch-ci >/dev/null 2>&1 || useradd --system --home-dir "$work/home" --shell /usr/sbin/nologin smtpmatch-ci
  as_user=(runuser -u smtpmatch-ci --)
else
  as_user=()
fi
mkdir -p "$work/home"
[ "$(id -u)" -eq 0 ] && chown smtpmatch-ci "$work/home" "$work"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
# The image's environment: only PyPI (no local wheel folders), no developer settings.
clean_env=(env -i "PATH=$work/venv/bin:/usr/local/bin:/usr/bin:/bin" "HOME=$work/home"
  PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1)

echo "-- runtime stage as $(${as_user[@]+"${as_user[@]}"} id -un): fresh virtualenv, lock with --require-hashes, wheel with --no-deps"
"${as_user[@]+"${as_user[@]}"}" "${clean_env[@]}" python3 -m venv "$work/venv"
"${as_user[@]+"${as_user[@]}"}" "${clean_env[@]}" pip install -q --no-cache-dir --require-hashes \
  --requirement "$work/context/requirements.lock"
"${as_user[@]+"${as_user[@]}"}" "${clean_env[@]}" pip install -q --no-cache-dir --no-deps "$work"/wheels/smtpmatch-*.whl
"${as_user[@]+"${as_user[@]}"}" "${clean_env[@]}" pip check

# The Dockerfile's HEALTHCHECK command, as it is written there (JSON form).
mapfile -t healthcheck < <(python3 - <<'PY'
import json, re
text = open("Dockerfile").read().replace("\\\n", " ")
match = re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", text, re.MULTILINE)
if not match:
    raise SystemExit("no JSON-form HEALTHCHECK CMD in the Dockerfile")
for word in json.loads(match[1]):
    print(word)
PY
)
# ENTRYPOINT + CMD of the image.
mapfile -t command < <(python3 - <<'PY'
import json, re
text = open("Dockerfile").read()
entry = json.loads(re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", text, re.MULTILINE)[1])
cmd = json.loads(re.search(r"^CMD\s+(\[.*\])\s*$", text, re.MULTILINE)[1])
for word in entry + cmd:
    print(word)
PY
)
echo "-- the image's command: ${command[*]} --demo (SMTPMATCH_PORT=$port)"
[[ " ${command[*]} " == *" --http "* ]] || { echo "the image's default command is not HTTP mode" >&2; exit 1; }
cd "$work/home"
"${as_user[@]+"${as_user[@]}"}" "${clean_env[@]}" SMTPMATCH_PORT="$port" \
  SLACK_BOT_TOKEN=xoxb-ci SLACK_SIGNING_SECRET=ci-signing-secret \
  SMTPMATCH_DATABASE_URL="sqlite:///$work/home/smtpmatch.db" \
  "${command[@]}" --demo >"$work/server.log" 2>&1 &
server_pid=$!

echo "-- HEALTHCHECK: ${healthcheck[*]}"
deadline=$((SECONDS + 60))
until "${as_user[@]+"${as_user[@]}"}" "${clean_env[@]}" SMTPMATCH_PORT="$port" "${healthcheck[@]}"; do
  if ! kill -0 "$server_pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
    echo "the healthcheck never passed; server log:" >&2; cat "$work/server.log" >&2; exit 1
  fi
  sleep 1
done
echo "healthcheck passed against smtpmatch serve --demo --http on port $port"
if "${as_user[@]+"${as_user[@]}"}" "${clean_env[@]}" SMTPMATCH_PORT=1 "${healthcheck[@]}" 2>/dev/null; then
  echo "the healthcheck passed against a port nobody serves: it does not read SMTPMATCH_PORT" >&2
  exit 1
fi
echo "healthcheck fails on SMTPMATCH_PORT=1, as it should"
[ -s "$work/server.log" ] && sed 's/^/  server: /' "$work/server.log"
echo "image recipe: ok"
