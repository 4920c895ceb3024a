# CPU image that installs the project the way CI does and runs `make submission`
# into the mounted /out folder:
#   make docker-build && docker run --rm -v "$PWD/out:/out" clicpack:latest
# BASE is a build argument so that machines without a registry can use a local
# Debian image (`make docker-build BASE=local/debian:bookworm`).
ARG BASE=python:3.11-slim
FROM ${BASE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# python3 + venv + make (a bare Debian base has none of them; python:*-slim has python).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends make ca-certificates libheif-examples \
 && if ! command -v python3 >/dev/null; then apt-get install -y --no-install-recommends python3 python3-venv; fi \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The host's CA bundle (may be empty) joins the system bundle that pip uses, for
# machines whose registry access goes through a TLS-intercepting proxy.
COPY build/ca.crt /tmp/host-ca.crt
RUN cat /tmp/host-ca.crt >> /etc/ssl/certs/ca-certificates.crt && rm /tmp/host-ca.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
COPY pyproject.toml Makefile ./
RUN make deps
COPY README.md ./
COPY models ./models
COPY pipeline ./pipeline
COPY allocate ./allocate
COPY eval ./eval
RUN make install
COPY data ./data
COPY bench ./bench
COPY tests ./tests
COPY tools ./tools

VOLUME ["/out"]
CMD ["make", "submission", "OUT=/out"]
