# A stand-in for python:3.11-slim-bookworm where no registry serves it: Debian 12's own
# python3 (3.11) on the local debootstrap base (scripts/docker-base.sh), in a venv at
# /opt/python whose bin is first on PATH, so `python`, `pip` and what pip installs are
# found as in the official image. Root owns it; the images install into it as root.
ARG BASE_IMAGE=backup-api-base:bookworm
FROM ${BASE_IMAGE}
# Debian's archive serves one version of each package per release: pinned by the suite.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/python \
    && /opt/python/bin/python -m pip --version
ENV PATH=/opt/python/bin:$PATH \
    LANG=C.UTF-8
CMD ["python"]
