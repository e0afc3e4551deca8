# syntax=docker/dockerfile:1
# smtpmatch: the Slack bot. Build: docker build -t smtpmatch .
# Run (HTTP mode): docker run --env-file .env -p 3000:3000 smtpmatch
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY app.py ./
RUN pip install --no-cache-dir --upgrade pip \
 && pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres]"

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SMTPMATCH_DATABASE_URL=sqlite:////data/smtpmatch.db
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin smtpmatch \
 && mkdir -p /app /data && chown smtpmatch /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/* && rm -rf /wheels
WORKDIR /app
COPY app.py ./
USER smtpmatch
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=4).status == 200 else 1)"
ENTRYPOINT ["smtpmatch"]
CMD ["serve", "--port", "3000"]
