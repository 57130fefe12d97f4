"""The S3-compatible CDN: its credentials (``cdn.yaml``) and idempotent uploads.

``cdn.yaml`` is provisioned by the Azaion API, never by the environment: the API serves it
encrypted with this machine's hardware-bound key (``AzaionApi.fetch`` decrypts it), and it is
parsed in memory only, never written to disk. It names the endpoint and bucket, and two key
pairs: a read pair (what edge devices use) and a write pair (what releases use).

boto3 is given the endpoint explicitly, so MinIO, Cloudflare R2 or AWS S3 is a matter of what
``cdn.yaml`` says. Objects carry the sha256 of their bytes as metadata; an upload whose key
already holds the same bytes is skipped, so re-running a release never duplicates or rewrites.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import boto3
import yaml
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

if TYPE_CHECKING:
    from azaion_assets.lib.release.azaion_api import AzaionApi

SHA_METADATA = "sha256"
CDN_CONFIG = "cdn.yaml"  # its resource name in the API


# S3 error codes that a retry will not change: the configuration or the rights are wrong.
PERMANENT = {
    "NoSuchBucket",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
    "InvalidBucketName",
}


class CdnError(RuntimeError):
    """The CDN configuration is unusable or a CDN operation failed (no key material inside).

    ``permanent``: retrying cannot help (a wrong cdn.yaml, a missing bucket, no rights)."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class KeyPair(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    access_key: SecretStr
    secret_key: SecretStr


class CdnConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    endpoint: str
    bucket: str
    region: str = "us-east-1"
    read: KeyPair
    write: KeyPair

    @field_validator("endpoint")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value


def parse_cdn_yaml(text: bytes | str) -> CdnConfig:
    try:
        raw = yaml.safe_load(text)
        return CdnConfig.model_validate(raw)
    except yaml.YAMLError:
        raise CdnError("cdn.yaml is not valid YAML", permanent=True) from None
    except ValidationError as exc:
        fields = ", ".join(
            ".".join(str(p) for p in e["loc"]) + f" ({e['msg']})"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise CdnError(f"cdn.yaml is incomplete or invalid: {fields}", permanent=True) from None


def fetch_config(api: AzaionApi, folder: str, hardware: str) -> CdnConfig:
    """``cdn.yaml`` from the API, decrypted for this machine, parsed, never stored."""
    return parse_cdn_yaml(api.fetch(folder, CDN_CONFIG, hardware))


def client(config: CdnConfig, access: Literal["read", "write"]) -> Any:
    pair = config.write if access == "write" else config.read
    return boto3.client(
        "s3",
        endpoint_url=config.endpoint,
        region_name=config.region,
        aws_access_key_id=pair.access_key.get_secret_value(),
        aws_secret_access_key=pair.secret_key.get_secret_value(),
        config=Config(
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=10,
            read_timeout=120,
            s3={"addressing_style": "path"},
        ),
    )


def _failure(what: str, exc: BaseException) -> CdnError:
    """The S3 error code (boto3's transfer manager wraps it), never the request."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ClientError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ClientError):
        code = str(cause.response.get("Error", {}).get("Code", "?"))
        return CdnError(f"{what}: {code}", permanent=code in PERMANENT)
    return CdnError(f"{what}: {type(exc).__name__}")


def stored_sha256(s3: Any, bucket: str, key: str) -> str | None:
    """The sha256 recorded on an object; None if there is no object, or if the HEAD is refused
    (a HEAD answer has no body, so a bare "403" is all it says: on AWS S3 that is also what a
    missing key gives a pair without s3:ListBucket). The upload that follows then says what
    is wrong, with the real error code, or succeeds."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("403", "404", "NoSuchKey", "NotFound"):
            return None
        raise _failure(f"CDN head {bucket}/{key}", exc) from None
    except BotoCoreError as exc:
        raise _failure(f"CDN head {bucket}/{key}", exc) from None
    return head.get("Metadata", {}).get(SHA_METADATA, "")


def put_unless_present(s3: Any, bucket: str, key: str, path: Path, sha256: str) -> bool:
    """Upload ``path`` to ``key`` unless the object already holds these bytes; True if sent."""
    if stored_sha256(s3, bucket, key) == sha256:
        return False
    try:
        s3.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {SHA_METADATA: sha256}})
    except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
        raise _failure(f"CDN upload {bucket}/{key}", exc) from None
    return True


def get_bytes(s3: Any, bucket: str, key: str) -> bytes:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        raise _failure(f"CDN download {bucket}/{key}", exc) from None
