# One image for the code server, the webserver, the daemon and the run containers.
# Build: docker-compose build (tags it $AZAION_IMAGE). GPUs come from the NVIDIA Container
# Toolkit at run time; the PyPI torch wheels bring their own CUDA libraries.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home \
    AZAION_ROOT_DIR=/azaion \
    # Nothing is downloaded at run time (the steps set these too, before importing Ultralytics);
    # the config dir is the one the steps use for the default AZAION_RUNTIME_DIR.
    YOLO_OFFLINE=1 \
    YOLO_AUTOINSTALL=0 \
    YOLO_CONFIG_DIR=/azaion/.runtime/ultralytics

# OpenCV (Ultralytics) needs libGL and glib; PyICU (the ingest's confusable names) is built
# against the system's ICU, whose runtime stays when its build tools go.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 libicu72 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/azaion-assets

# The torch pair pinned in pyproject.toml, in a layer of its own: it is most of the image and
# changes least.
RUN pip install torch==2.14.1 torchvision==0.29.1

COPY pyproject.toml README.md ./
COPY azaion_assets ./azaion_assets
RUN apt-get update \
 && apt-get install -y --no-install-recommends libicu-dev pkg-config g++ \
 && pip install . \
 && apt-get purge -y --auto-remove libicu-dev pkg-config g++ \
 && rm -rf /var/lib/apt/lists/*

COPY deploy/docker/dagster.yaml ${DAGSTER_HOME}/dagster.yaml
COPY deploy/docker/workspace.yaml ./workspace.yaml
RUN mkdir -p /opt/dagster/logs /azaion

EXPOSE 3000 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", \
     "-m", "azaion_assets.definitions", "--location-name", "azaion_assets"]
