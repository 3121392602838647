# Two images from one file: `--target api` (no torch) and `--target worker` (torch, transformers).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv/distillery
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY worker ./worker
COPY distillery ./distillery
RUN useradd --create-home --uid 10001 distillery && mkdir -p /data && chown distillery /data
ENV DISTILLERY_DATA_DIR=/data

FROM base AS api
RUN pip install .
USER distillery
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]

FROM base AS worker
# The CPU wheel keeps the image small; a GPU image installs a CUDA build of the same version instead.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install torch==2.13.0 --index-url ${TORCH_INDEX} && pip install ".[worker]"
USER distillery
# `celery -A worker worker` with the flags of worker/cli.py: one job per process, a lost broker is a reconnect.
CMD ["distillery", "worker"]
