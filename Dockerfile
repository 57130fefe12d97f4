# One image for the code location, the webserver, the daemon and the run workers.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DAGSTER_HOME=/opt/dagster/home \
    AZAION_ROOT_DIR=/azaion

RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/azaion-assets
COPY pyproject.toml README.md ./
COPY azaion_assets ./azaion_assets
RUN pip install .

COPY workspace.yaml ./
COPY dagster.yaml ${DAGSTER_HOME}/dagster.yaml
