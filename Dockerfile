# syntax=docker/dockerfile:1
# The operator's container image. `docker build .` builds it where Docker is;
# hack/image.py builds the same file with buildah (no daemon) on a base made with
# debootstrap. docs/image.md says how and why.
#
# Stages:
#   tools         the base with a pip-carrying virtualenv (/opt/tools) and an empty,
#                 pip-free one (/opt/venv) that the operator will run from
#   requirements  the pinned dependencies and every cloud extra (`.[all]`), read from
#                 pyproject.toml
#   deps          those installed into /opt/venv, in a layer that changes only when they do
#   build         the project's wheel, checked against the deps layer; its files staged
#                 in /staging
#   (final)       the bare base, the two virtualenv layers, a numeric non-root user: no
#                 pip, no compiler, nothing written at run time outside /tmp

# A Python 3.11 (or newer) Debian image. Builds without a registry pass a local one.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS tools
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/tools \
 && python3 -m venv --without-pip /opt/venv

# The requirement list is read from pyproject.toml, so the pins live in one place; the
# deps layer below depends on the list alone (caches compare content), not on the rest of
# pyproject.toml.
FROM tools AS requirements
COPY pyproject.toml /src/
RUN python3 -c 'import tomllib; p = tomllib.load(open("/src/pyproject.toml", "rb"))["project"]; print("\n".join(p["dependencies"] + p["optional-dependencies"]["all"]))' \
      > /requirements.txt

FROM tools AS deps
COPY --from=requirements /requirements.txt /src/requirements.txt
# pip runs from /opt/tools against /opt/venv (`--python`), so /opt/venv never holds pip.
# A build behind a TLS-intercepting proxy passes its CA bundle as the secret `build-ca`;
# it is mounted for this step only and never lands in a layer.
RUN --mount=type=secret,id=build-ca \
    if [ -s /run/secrets/build-ca ]; then export PIP_CERT=/run/secrets/build-ca; fi \
 && /opt/tools/bin/pip --python /opt/venv/bin/python install --requirement /src/requirements.txt

FROM deps AS build
COPY pyproject.toml README.md /src/
COPY operator/ /src/operator/
# The dry run with --no-index fails if the wheel's own dependencies or its `all` extra
# ask for anything the deps layer lacks; the project's files alone go to /staging.
RUN --mount=type=secret,id=build-ca \
    if [ -s /run/secrets/build-ca ]; then export PIP_CERT=/run/secrets/build-ca; fi \
 && /opt/tools/bin/pip wheel --no-deps --wheel-dir /tmp/wheels /src \
 && wheel=$(ls /tmp/wheels/destination_operator-*.whl) \
 && /opt/tools/bin/pip --python /opt/venv/bin/python install --no-index --dry-run "$wheel[all]" \
 && /opt/tools/bin/pip --python /opt/venv/bin/python install --no-index --no-deps \
      --prefix /staging "$wheel"

FROM ${BASE_IMAGE}
# VERSION follows pyproject.toml (a test checks the two agree); hack/image.py passes it too.
ARG VERSION=0.1.0
ARG SOURCE_URL=https://github.com/destination-operator/destination-operator
LABEL org.opencontainers.image.title="destination-operator" \
      org.opencontainers.image.description="Verifies cloud-storage Destinations by writing and deleting a probe object" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# A name for uid 65532 (as distroless calls it), so tools that look the user up find one.
RUN echo 'nonroot:x:65532:65532:nonroot:/tmp:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'nonroot:x:65532:' >> /etc/group
COPY --from=deps /opt/venv /opt/venv
COPY --from=build /staging/ /opt/venv/
# Bytecode was compiled at install time; with a read-only root Python could not cache it
# anyway. HOME is the only writable place the chart gives (an emptyDir at /tmp).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["/opt/venv/bin/destination-operator"]
CMD ["run"]
