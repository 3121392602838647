# Three images from one file, each a `--target`:
#   api          the API, the migration and the webhook worker (no torch)
#   worker       a job worker on the CPU (torch's CPU wheel); also a Ray node for CPU clusters
#   worker-cuda  a job worker on NVIDIA GPUs (torch's CUDA wheel, which carries its CUDA libraries; the
#                host needs the NVIDIA driver and container toolkit only); also a Ray node for GPU clusters
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv/distillery
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY worker ./worker
COPY engine ./engine
COPY distillery ./distillery
RUN useradd --create-home --uid 10001 distillery && mkdir -p /data && chown distillery /data
ENV DISTILLERY_DATA_DIR=/data

FROM base AS api
# s3: artifacts in object storage, and presigned download links.
RUN pip install ".[s3]"
USER distillery
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]

# What both worker images share: KubeRay's default probes of a Ray pod run `wget`.
FROM base AS node
RUN apt-get update && apt-get install -y --no-install-recommends wget && rm -rf /var/lib/apt/lists/*

FROM node AS worker
# Torch first, from the index of the build wanted, so that the extras' `torch>=` range keeps it.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# ray: the same image runs the head and the nodes of a Ray cluster (DISTILLERY_EXECUTOR=ray).
ARG EXTRAS=worker,s3,ray
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}" && pip install ".[${EXTRAS}]"
USER distillery
# `celery -A worker worker` with the flags of worker/cli.py: one job per process, a lost broker is a reconnect.
CMD ["distillery", "worker", "--accelerator", "cpu"]

FROM node AS worker-cuda
ARG TORCH_VERSION=2.13.0
# PyPI's Linux x86_64 torch wheel is the CUDA build; name a download.pytorch.org/whl/cuXYZ index for
# another CUDA version.
ARG TORCH_INDEX=https://pypi.org/simple
ARG EXTRAS=worker,s3,ray
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}" && pip install ".[${EXTRAS}]"
# The NVIDIA container runtime mounts the driver's libraries when these ask for them.
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER distillery
CMD ["distillery", "worker", "--accelerator", "cuda"]
