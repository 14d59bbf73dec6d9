# syntax=docker/dockerfile:1
# LMS streaming server image. Build from the repository root:
#   docker build -t lms-streaming .
# Run: docker run -p 8000:8000 -v lms-data:/var/lib/lms lms-streaming
# (with no LMS_DATABASE_URL it starts its own embedded PostgreSQL under /var/lib/lms/data).

# ---- build: resolve and install everything into a self-contained venv ----
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
# The venv's own setuptools is the one Python 3.11 bundles (65.5, with published CVEs).
RUN python -m venv /opt/venv && /opt/venv/bin/pip install -q --upgrade pip setuptools
# All dependencies ship manylinux wheels (av bundles FFmpeg, pgserver bundles PostgreSQL),
# so no compiler or -dev packages are needed here.
COPY . /src
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/venv/bin/pip install /src

# ---- runtime: the venv plus an unprivileged user, nothing else ----
FROM python:3.11-slim-bookworm
# Fixed uid so bind-mounted host directories can be chowned to it (chown 10001 DIR).
RUN groupadd --system --gid 10001 lms \
 && useradd --system --uid 10001 --gid lms --home-dir /var/lib/lms --shell /usr/sbin/nologin lms \
 && mkdir -p /var/lib/lms/media /var/lib/lms/data \
 && chown -R lms:lms /var/lib/lms
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LMS_HOST=0.0.0.0 \
    LMS_PORT=8000 \
    LMS_MEDIA_DIR=/var/lib/lms/media \
    LMS_DATA_DIR=/var/lib/lms/data
# Declared after the chown so a fresh named volume starts out owned by lms.
VOLUME /var/lib/lms
WORKDIR /var/lib/lms
USER lms
EXPOSE 8000
# slim has no curl; urlopen raises (exit 1) on connection errors and non-2xx answers.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('LMS_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["lms"]
CMD ["serve"]
