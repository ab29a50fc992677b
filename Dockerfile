# incident-proctor: one image for the Cloud Run service (`proctor serve`) and the
# Cloud Run Job (`proctor run`, sharded by CLOUD_RUN_TASK_INDEX / CLOUD_RUN_TASK_COUNT).
#
#   docker build -t incident-proctor .
#   docker run --rm -p 8080:8080 incident-proctor      # then: curl localhost:8080/health
#
# Both stages use the same base: the venv built in the first stage points at the
# second stage's /usr/local/bin/python3.11, so they must be the same interpreter.
# tests/test_deploy.py parses this file and replays its install and start commands.

FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1
RUN python -m venv /opt/venv
WORKDIR /src
# Only what the package build needs (pyproject names README.md as its readme).
COPY pyproject.toml README.md ./
COPY evaluator_agent/ evaluator_agent/
COPY mock_agents/ mock_agents/
# Production dependencies only: no [dev], no [llm] (litellm) extra.
RUN /opt/venv/bin/pip install --no-cache-dir .


FROM python:3.11-slim AS runtime

# Passed by cloudbuild.yaml ($SHORT_SHA on triggered builds); the image has no git.
ARG GIT_REV=unknown

LABEL org.opencontainers.image.title="incident-proctor" \
      org.opencontainers.image.description="Evaluation server for autonomous SRE agents: replays production incidents over A2A and scores the investigation." \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.revision="${GIT_REV}" \
      org.opencontainers.image.licenses="Apache-2.0"

# Fixed uid/gid so volume permissions and securityContext rules can name it.
RUN groupadd --system --gid 10001 proctor \
 && useradd --system --uid 10001 --gid proctor --create-home --home-dir /home/proctor \
            --shell /usr/sbin/nologin proctor

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# Label sets and world snapshots, read-only at run time; found through PROCTOR_HOME.
COPY labelsets/ labelsets/
COPY environments/ environments/

# PROCTOR_DB: Cloud Run's writable filesystem is in memory; results are checkpointed to
# PROCTOR_CHECKPOINT_DIR (a Cloud Storage volume, set at deploy time) when that is set.
ENV PATH="/opt/venv/bin:${PATH}" \
    PROCTOR_HOME=/app \
    PROCTOR_DB=/tmp/proctor.db \
    PROCTOR_GIT_REV=${GIT_REV} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8080

USER 10001:10001
EXPOSE 8080

# For docker/compose; Cloud Run ignores HEALTHCHECK and uses its own startup probe.
# Slim images have no curl: use the interpreter that is already there.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8080'), timeout=4)"

# `proctor serve` listens on $PORT (default 8080).
CMD ["proctor", "serve", "--host", "0.0.0.0"]
