# voucher-relay: `docker compose up` (see docker-compose.yml) or
#   docker run -e DATABASE_URL=postgresql://... -p 8000:8000 voucher-relay
# Build stage: resolve the locked dependencies into a virtualenv (all are binary wheels).
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv /venv && /venv/bin/pip install -r /tmp/requirements.lock

# Runtime stage: no compilers, no build tools, a non-root user.
FROM python:3.11-slim
ENV PATH=/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/srv \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/data
RUN useradd --system --uid 10001 --home-dir /srv relay \
    && mkdir -p /data && chown relay /data
COPY --from=build /venv /venv
WORKDIR /srv
# The app runs from source so that migrations/ sits beside it (app/db/migrate.py finds it).
COPY app ./app
COPY migrations ./migrations
COPY alembic.ini ./
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz\", timeout=2)"]
ENTRYPOINT ["python", "-m", "app"]
CMD ["serve"]
