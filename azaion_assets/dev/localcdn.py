"""A local S3-compatible CDN for the tests and the demo, with the rights a real one grants.

moto's standalone server speaks the S3 protocol over real HTTP. Here it also enforces IAM: every
request must be signed with a known key pair (a wrong secret is refused, as on S3), and each
pair may do only what its role needs:

- ``read``, what edge devices hold: get objects, nothing else;
- ``write``, what a release uses: put, head, list and delete objects;
- ``admin``, Azaion's operators: create the bucket.

So a release that signed with the read pair, or an edge fetch that needed the write pair, fails
here as it would in production. The pairs are IAM users' keys, made by the server at start.
The enforcement is global to moto in this process, so one ``LocalCdn`` runs at a time (a
second is refused).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import boto3
import requests
import yaml

from azaion_assets.lib.release.cdn import CDN_CONFIG, CdnConfig, parse_cdn_yaml

if TYPE_CHECKING:
    from azaion_assets.dev.localapi import LocalAzaionApi

ROLES: dict[str, list[str]] = {
    "admin": ["s3:*"],
    "read": ["s3:GetObject"],
    "write": ["s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:DeleteObject"],
}
REGION = "us-east-1"
_running = False


class LocalCdn:
    """Use as a context manager: the server runs, with IAM enforced, inside the block."""

    def __init__(self, roles: dict[str, list[str]] | None = None) -> None:
        """``roles``: IAM actions by role name; ``ROLES`` (read, write, admin) by default."""
        from moto.server import ThreadedMotoServer

        self.roles = roles or ROLES

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the server's access log
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""
        self.pairs: dict[str, dict[str, str]] = {}

    def __enter__(self) -> LocalCdn:
        global _running
        if _running:  # moto's enforcement and users are global: a second one would undo ours
            raise RuntimeError("a LocalCdn already runs in this process")
        _running = True
        try:
            self._start()
        except BaseException:
            _running = False
            raise
        return self

    def _start(self) -> None:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        # Until enforcement is switched on, moto takes any signature: set the users up first.
        iam = boto3.client(
            "iam",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        for role, actions in self.roles.items():
            user = f"cdn-{role}"
            iam.create_user(UserName=user)
            policy = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
            }
            iam.put_user_policy(
                UserName=user, PolicyName=f"{role}-only", PolicyDocument=json.dumps(policy)
            )
            key = iam.create_access_key(UserName=user)["AccessKey"]
            self.pairs[role] = {
                "access_key": key["AccessKeyId"],
                "secret_key": key["SecretAccessKey"],
            }
        self._enforce("0")  # from the next request on, every one is checked

    def __exit__(self, *exc: object) -> None:
        global _running
        try:
            self._enforce("inf")
        finally:
            self._server.stop()
            _running = False

    def _enforce(self, after_requests: str) -> None:
        url = f"{self.endpoint}/moto-api/reset-auth"
        requests.post(url, data=after_requests.encode(), timeout=10).raise_for_status()

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(pair["secret_key"] for pair in self.pairs.values())

    def cdn_yaml(self, bucket: str) -> str:
        """The cdn.yaml of ``bucket``: the read and write pairs only (others stay here)."""
        read, write = self.pairs["read"], self.pairs["write"]
        return yaml.safe_dump(
            {"endpoint": self.endpoint, "bucket": bucket, "read": read, "write": write}
        )

    def client(self, role: str):
        """An S3 client signing with ``role``'s pair."""
        pair = self.pairs[role]
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=pair["access_key"],
            aws_secret_access_key=pair["secret_key"],
        )

    def provision(self, api: LocalAzaionApi, bucket: str, folder: str) -> CdnConfig:
        """What Azaion's operators do for a new training server: create the bucket and publish
        its ``cdn.yaml`` to ``folder`` of the API."""
        self.client("admin").create_bucket(Bucket=bucket)
        text = self.cdn_yaml(bucket)
        api.put(folder, CDN_CONFIG, text.encode())
        return parse_cdn_yaml(text)
