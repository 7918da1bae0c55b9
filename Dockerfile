# syntax=docker/dockerfile:1
# tikflow service image: one image for `tikflow api`, `tikflow worker` and `tikflow migrate`.
#
#   docker build --build-arg GIT_SHA="$(git rev-parse HEAD)" \
#     --build-arg VERSION="$(python -c 'import tikflow.version as v; print(v.__version__)')" \
#     -t tikflow:"$(git rev-parse --short HEAD)" .

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: install tikflow and its dependencies into a virtual environment -----------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/tikflow
WORKDIR /src

# Dependencies first, from pyproject.toml alone, so code changes reuse this layer.
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
      > /tmp/requirements.txt \
    && /opt/tikflow/bin/pip install -r /tmp/requirements.txt

# Then tikflow itself: a plain (non-editable) install, so the runtime stage needs nothing
# from /src.
COPY . .
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/tikflow/bin/pip install --no-deps . \
    && /opt/tikflow/bin/tikflow --help >/dev/null

# ---- runtime: the virtual environment on a clean base, run as an unprivileged user ----------
FROM ${PYTHON_IMAGE} AS runtime

ARG GIT_SHA=unknown
ARG VERSION=0.0.0
LABEL org.opencontainers.image.title="tikflow" \
      org.opencontainers.image.description="Durable, auditable change management for MikroTik RouterOS" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_SHA}"

RUN groupadd --system --gid 10001 tikflow \
    && useradd --system --uid 10001 --gid tikflow --no-create-home \
       --home-dir /var/lib/tikflow --shell /usr/sbin/nologin tikflow \
    && install -d -o tikflow -g tikflow -m 0750 /var/lib/tikflow /var/lib/tikflow/var

COPY --from=build /opt/tikflow /opt/tikflow

# The API listens on all interfaces inside the container; publish the port to choose exposure.
ENV PATH=/opt/tikflow/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TIKFLOW_GIT_SHA=${GIT_SHA} \
    TIKFLOW_VAR_DIR=/var/lib/tikflow \
    TIKFLOW_API__HOST=0.0.0.0 \
    TIKFLOW_API__PORT=8080

USER 10001:10001
WORKDIR /var/lib/tikflow
EXPOSE 8080

# Liveness of `tikflow api`; slim images have no curl, so the check uses Python's urllib.
# Containers running `worker` or `migrate` serve no HTTP and turn this check off (compose does).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TIKFLOW_API__PORT', '8080') + '/healthz', timeout=4)"]

ENTRYPOINT ["tikflow"]
CMD ["api"]
