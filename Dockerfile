# syntax=docker/dockerfile:1
# smtpmatch, the Slack bot, in HTTP mode (POST /slack/events, GET /healthz, GET /metrics).
#   docker build -t smtpmatch .
#   docker run --env-file .env -p 3000:3000 smtpmatch
# The port is SMTPMATCH_PORT (default 3000): the server and the HEALTHCHECK both read it.
# Socket Mode instead (no inbound HTTP; SLACK_APP_TOKEN set): docker run ... smtpmatch serve
# Dependencies come from requirements.lock (exact versions, hashes checked); CI lints this file
# with hadolint and runs the same recipe outside a container (.ci/image_recipe.sh).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: the wheel of smtpmatch itself (its dependencies come from the lock, not from here) --
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# -- runtime --------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/smtpmatch/bin:$PATH \
    SMTPMATCH_PORT=3000 \
    SMTPMATCH_DATABASE_URL=sqlite:////data/smtpmatch.db
RUN groupadd --system --gid 10001 smtpmatch \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin smtpmatch \
 && mkdir -p /app /data \
 && chown 10001:10001 /data
COPY requirements.lock /tmp/requirements.lock
COPY --from=build /wheels /tmp/wheels
# The lock first, every file checked against its hash; then our wheel alone (its dependencies
# are exactly the lock's, so --no-deps).
RUN python -m venv /opt/smtpmatch \
 && pip install --no-cache-dir --require-hashes --requirement /tmp/requirements.lock \
 && pip install --no-cache-dir --no-deps /tmp/wheels/smtpmatch-*.whl \
 && pip check \
 && rm -rf /tmp/wheels /tmp/requirements.lock
WORKDIR /app
USER 10001:10001
# Only used with the SQLite default; on Kubernetes the database is PostgreSQL (deploy/).
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-m", "bot.healthcheck"]
ENTRYPOINT ["smtpmatch"]
CMD ["serve", "--http"]
