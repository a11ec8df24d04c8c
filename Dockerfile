# syntax=docker/dockerfile:1
#
# The appliance in one container: `appliance up` runs the API (:8000) and the
# console (:8501) as supervised children. Everything that persists is in /data.
#
#   docker build -t appliance .
#   docker run -p 127.0.0.1:8000:8000 -p 127.0.0.1:8501:8501 -v appliance-data:/data \
#       -e APPLIANCE_ADMIN_PASSWORD=change-me appliance [--demo]
#
# Python here must satisfy pyproject's requires-python (tests/test_packaging.py checks).

FROM python:3.11-slim AS builder
WORKDIR /src
# Only what the wheel is built from: a host .venv or data/ never enters the image.
COPY pyproject.toml README.md ./
COPY scripts/ scripts/
COPY appliance/ appliance/
COPY ui/ ui/
COPY jobs/ jobs/
# The same script and the same wheel as CI (scripts/test).
RUN sh scripts/install-wheel.sh /opt/venv

FROM python:3.11-slim AS runtime
COPY --from=builder /opt/venv /opt/venv
RUN useradd --system --create-home --uid 10001 --user-group appliance \
    && mkdir -p /data \
    && chown appliance:appliance /data
# The Host allowlist (DNS-rebinding guard) stays on: localhost names work with
# `-p 127.0.0.1:8000:8000`; operators who publish the appliance under another
# name set APPLIANCE_ALLOWED_HOSTS='["their.host.name"]'. '["*"]' turns the guard off.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    APPLIANCE_HOME=/data \
    APPLIANCE_HOST=0.0.0.0 \
    APPLIANCE_PORT=8000 \
    APPLIANCE_CONSOLE_PORT=8501 \
    APPLIANCE_ALLOWED_HOSTS='["localhost","127.0.0.1","::1"]'
VOLUME /data
EXPOSE 8000 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('APPLIANCE_PORT', '8000'), timeout=4)"]
USER appliance
WORKDIR /data
# `up` is PID 1: it forwards SIGTERM/SIGINT to both children and waits for them.
ENTRYPOINT ["appliance", "up"]
CMD []
