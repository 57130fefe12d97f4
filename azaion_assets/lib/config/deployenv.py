"""Variables that only the deployment reads (docker-compose, the Docker instance, Helm).

azaion-assets itself never reads these, so they are not settings; they are listed here so that
``.env.example`` (generated) names every variable a deployment needs. Secrets have no default:
``docker-compose.yml`` refuses to start without them (``${VAR:?...}``).
"""

from __future__ import annotations

from typing import NamedTuple


class DeployVar(NamedTuple):
    name: str
    default: str | None  # None: no default (every secret)
    doc: str
    secret: bool = False


DEPLOY_VARS: tuple[DeployVar, ...] = (
    DeployVar(
        "AZAION_IMAGE",
        "azaion-assets:latest",
        "Image built from the Dockerfile; the code server names it for the run containers",
    ),
    DeployVar(
        "AZAION_HOST_ROOT",
        "/azaion",
        "Host directory holding the data tree; bind-mounted at /azaion in every container",
    ),
    DeployVar(
        "RABBITMQ_ADVERTISED_HOST",
        "rabbitmq",
        "Host name the stream plugin advertises to consumers (must resolve for every client)",
    ),
    DeployVar("DAGSTER_POSTGRES_HOST", "postgres", "PostgreSQL host of the Dagster instance"),
    DeployVar("DAGSTER_POSTGRES_PORT", "5432", "PostgreSQL port of the Dagster instance"),
    DeployVar("DAGSTER_POSTGRES_DB", "dagster", "PostgreSQL database of the Dagster instance"),
    DeployVar("DAGSTER_POSTGRES_USER", "dagster", "PostgreSQL user of the Dagster instance"),
    DeployVar(
        "DAGSTER_POSTGRES_PASSWORD",
        None,
        "PostgreSQL password of the Dagster instance and of its database user",
        secret=True,
    ),
    DeployVar("MINIO_ROOT_USER", "azaion", "MinIO (development CDN) root user"),
    DeployVar("MINIO_ROOT_PASSWORD", None, "MinIO root password (8+ characters)", secret=True),
)


def deploy_secret_names() -> list[str]:
    return [v.name for v in DEPLOY_VARS if v.secret]
