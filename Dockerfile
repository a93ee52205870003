# syntax=docker/dockerfile:1
# The frictionwatch image: the `frictionwatch` command, running the stream worker by default.
#
#   docker build -t frictionwatch .
#   docker run --rm -e FRICTIONWATCH_BOOTSTRAP_SERVERS=kafka:9092 frictionwatch            # worker
#   docker run --rm -e FRICTIONWATCH_BOOTSTRAP_SERVERS=kafka:9092 frictionwatch simulate   # any subcommand
#
# docker-compose.yml runs it against Apache Kafka with Prometheus, Alertmanager and Grafana.

# --- build: a wheel of the project only (dependencies come as wheels from the index) ----------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# README.md* : the readme pyproject names, copied when present.
COPY pyproject.toml README.md* ./
COPY streams ./streams
COPY detectors ./detectors
COPY models ./models
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- runtime -------------------------------------------------------------------------------
FROM python:3.11-slim
LABEL org.opencontainers.image.title="frictionwatch" \
      org.opencontainers.image.description="Real-time customer-experience friction detection: Kafka + Faust worker" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # Faust's local state; the default (var/frictionwatch, relative) is not writable here.
    FRICTIONWATCH_DATA_DIR=/var/lib/frictionwatch \
    # Listen on the container's interfaces (the default, 127.0.0.1, is unreachable from
    # outside it); set FRICTIONWATCH_SEGMENT_WRITE_KEYS etc. before publishing the port.
    FRICTIONWATCH_WEB_HOST=0.0.0.0

COPY --from=build /wheels /wheels
COPY requirements.lock /tmp/requirements.lock
# With the [rocksdb] extra: tables on local RocksDB (FRICTIONWATCH_STORE=rocksdb://). Every
# dependency at the version pinned in requirements.lock (bash .ci/relock), as CI tests it.
RUN pip install -c /tmp/requirements.lock "$(ls /wheels/*.whl)[rocksdb]" \
    && rm -rf /wheels /tmp/requirements.lock

# Non-root, with a numeric uid so orchestrators can check runAsNonRoot.
RUN groupadd --system --gid 10001 frictionwatch \
    && useradd --system --uid 10001 --gid frictionwatch --create-home \
        --home-dir /home/frictionwatch frictionwatch \
    && install -d -o frictionwatch -g frictionwatch /var/lib/frictionwatch
USER 10001:10001
WORKDIR /home/frictionwatch

# The worker's HTTP port: collector, /metrics and /health (settings.web_port).
EXPOSE 6066
ENTRYPOINT ["frictionwatch"]
CMD ["worker"]
