# The harness's own load generator (python -m scripts.loadgen) for the in-cluster Jobs.
# BASE_IMAGE is passed as a digest resolved at build time (scripts/gke.py: crane digest), so every
# run records exactly which Python image it measured with.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim
# checkov:skip=CKV_DOCKER_7: the tag is resolved to a digest at build time and passed as BASE_IMAGE (see above)
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt
COPY costs.json ./
COPY schemas/ schemas/
COPY scripts/ scripts/

# Same non-root uid as the ko images and the pods' securityContext.
USER 65532:65532

# A Job, not a server: liveness is the process itself.
HEALTHCHECK NONE

ENTRYPOINT []
CMD ["python", "-m", "scripts.loadgen", "--help"]
