# The ragstream worker image (docker-compose.yml builds it). Two stages: the builder installs
# uv.lock into /app/.venv, dependencies first in their own layer (rebuilt only when the lock
# changes), then the source; the runtime stage copies only that venv.
# Base: python 3.11.14 on Debian bookworm, pinned by tag and by the digest of its
# multi-architecture index (update both together).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${PYTHON_IMAGE} AS builder
# uv: the version the Makefile pins (UV_VERSION).
RUN pip install --no-cache-dir --disable-pip-version-check uv==0.13.9
ENV UV_PROJECT_ENVIRONMENT=/app/.venv UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy UV_NO_CACHE=1
WORKDIR /app
COPY pyproject.toml uv.lock ./
# Bytecode for the dependencies here, once (uv would recompile all of them on every sync).
RUN uv sync --locked --no-install-project --no-editable --compile-bytecode
COPY README.md ./
COPY schemas ./schemas
COPY streams ./streams
COPY stores ./stores
COPY services ./services
COPY agents ./agents
COPY ragstream ./ragstream
RUN uv sync --locked --no-editable

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/app/.venv/bin:$PATH
RUN useradd --create-home ragstream && mkdir -p /data && chown ragstream /data
COPY --from=builder /app/.venv /app/.venv
USER ragstream
WORKDIR /app
ENV RAGSTREAM_DATA_DIR=/data
# The worker's liveness endpoint (RAGSTREAM_HTTP_PORT, default 6066); slim has no curl, so
# python's urllib probes it: any error or non-2xx status is a failed check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=4)" \
        "http://127.0.0.1:${RAGSTREAM_HTTP_PORT:-6066}/health/live"
ENTRYPOINT ["ragstream"]
CMD ["worker"]
