# syntax=docker/dockerfile:1
#
# The appliance in one container: `appliance up` runs the API (:8000) and the
# console (:8501) as supervised children. Everything that persists is in /data.
#
#   docker build -t appliance .                          # from a package index
#   appliance bundle --out bundle && docker build -t appliance .   # offline: from the bundle
#   docker build --build-arg EXTRAS=gpu -t appliance:gpu .          # GPU training variant
#   docker run --read-only --tmpfs /tmp -p 127.0.0.1:8000:8000 -p 127.0.0.1:8501:8501 \
#       -v appliance-data:/data -e APPLIANCE_ADMIN_PASSWORD=change-me appliance [--demo]
#
# Needs BuildKit (the default builder since Docker 23) for the optional bundle COPY.
# Python here must satisfy pyproject's requires-python (tests/test_packaging.py checks).

FROM python:3.11-slim AS builder
# Locked extras to install from the index ("gpu": full XGBoost with CUDA); a bundle
# carries its own choice (`appliance bundle --extras gpu`).
ARG EXTRAS=""
WORKDIR /src
# Only what the wheel is built from: a host .venv or data/ never enters the image.
COPY pyproject.toml README.md ./
COPY scripts/ scripts/
COPY locks/ locks/
COPY appliance/ appliance/
COPY ui/ ui/
COPY jobs/ jobs/
# An offline bundle in the build context (./bundle, from `appliance bundle --out bundle`)
# replaces the index: nothing is downloaded. Without one this wildcard copies nothing.
COPY bundl[e] bundle/
# Either way the same routine installs the same locked pins with pip --no-deps
# (appliance/lockfile.py): the bundle's install.sh, or the script CI runs (scripts/test).
RUN if [ -f bundle/install.sh ]; then sh bundle/install.sh /opt/venv; \
    else sh scripts/install-wheel.sh /opt/venv "$EXTRAS"; fi

FROM python:3.11-slim AS runtime
COPY --from=builder /opt/venv /opt/venv
RUN useradd --system --create-home --uid 10001 --user-group appliance \
    && mkdir -p /data \
    && chown appliance:appliance /data
# The Host allowlist (DNS-rebinding guard) stays on: localhost names work with
# `-p 127.0.0.1:8000:8000`; operators who publish the appliance under another
# name set APPLIANCE_ALLOWED_HOSTS='["their.host.name"]'. '["*"]' turns the guard off.
# The root filesystem may be read-only (`docker run --read-only --tmpfs /tmp`):
# everything writes to /data or /tmp. HOME stays read-only (nothing writes there;
# tests/test_offline.py checks), caches go to /tmp, and nothing phones home.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    APPLIANCE_HOME=/data \
    APPLIANCE_HOST=0.0.0.0 \
    APPLIANCE_PORT=8000 \
    APPLIANCE_CONSOLE_PORT=8501 \
    APPLIANCE_ALLOWED_HOSTS='["localhost","127.0.0.1","::1"]' \
    HOME=/home/appliance \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    XDG_CONFIG_HOME=/tmp/.config \
    MPLCONFIGDIR=/tmp/.cache/matplotlib \
    NUMBA_CACHE_DIR=/tmp/.cache/numba \
    HF_HUB_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    TRANSFORMERS_OFFLINE=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_LOGGER_HIDE_WELCOME_MESSAGE=true \
    STREAMLIT_GLOBAL_DEVELOPMENT_MODE=false
VOLUME /data
EXPOSE 8000 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('APPLIANCE_PORT', '8000'), timeout=4)"]
USER appliance
WORKDIR /data
# `up` is PID 1: it forwards SIGTERM/SIGINT to both children and waits for them.
ENTRYPOINT ["appliance", "up"]
CMD []
