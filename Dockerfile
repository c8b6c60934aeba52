# syntax=docker/dockerfile:1
# The users API: `docker build -t typed-cache-service .` (or `make up`, which builds it for compose.yaml).
# Stage 1 installs the locked dependencies with uv; stage 2 is a slim runtime with no build tools and no uv.

ARG PYTHON_VERSION=3.12

# The uv that wrote uv.lock (lock format revision 5 needs a recent uv).
FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies only: this layer is rebuilt when pyproject.toml or uv.lock change, not when the code does.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    uv sync --frozen --no-dev --no-install-project
COPY pyproject.toml uv.lock ./
COPY app ./app
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev \
    && python -m compileall -q app

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
# tini is PID 1: it forwards SIGTERM to the server (which drains requests, then closes the pools) and reaps zombies.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-* \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app
WORKDIR /app
# Code and dependencies stay owned by root (read-only for the server); only data/ (the SQLite default) is writable.
COPY --from=build /app/.venv /app/.venv
COPY --from=build /app/app /app/app
RUN install -d -o app -g app /app/data
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    WORKERS=1 \
    LOG_FORMAT=json \
    LOG_LEVEL=INFO
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health/live', timeout=2)"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "-m", "app"]
