"""The CDN side against a real S3-compatible server over HTTP (moto's standalone server):
``cdn.yaml`` parsing without leaking keys, and uploads that never duplicate or rewrite."""

import pytest

from azaion_assets.dev.localcdn import LocalCdn
from azaion_assets.lib.release import cdn
from azaion_assets.lib.release.azaion_api import AzaionApi
from azaion_assets_tests.conftest import API_EMAIL, API_PASSWORD


def test_cdn_yaml_from_the_api_holds_both_key_pairs_in_memory(release_services):
    api = AzaionApi(release_services.api.url, API_EMAIL, API_PASSWORD)
    config = cdn.fetch_config(api, "config", "CPU: any")
    assert config == release_services.cdn
    pairs = release_services.local_cdn.pairs
    assert config.read.secret_key.get_secret_value() == pairs["read"]["secret_key"]
    assert config.write.secret_key.get_secret_value() == pairs["write"]["secret_key"]
    for secret in release_services.local_cdn.secrets:
        assert secret not in repr(config) and secret not in str(config)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("endpoint: http://x\nbucket: b\nread: {access_key: r, secret_key: s1}\n", "write"),
        ("endpoint: [unclosed", "not valid YAML"),
        (
            "endpoint: http://x\nbucket: b\nread: {access_key: r, secret_key: s1}\n"
            "write: {access_key: w}\n",
            "write.secret_key",
        ),
    ],
)
def test_an_incomplete_cdn_yaml_names_the_field_and_no_secret(text, problem):
    with pytest.raises(cdn.CdnError, match=r"cdn\.yaml") as caught:
        cdn.parse_cdn_yaml(text)
    assert problem in str(caught.value)
    assert "s1" not in str(caught.value)


def test_an_upload_is_skipped_when_the_object_holds_the_same_bytes(release_services, tmp_path):
    config = release_services.cdn
    s3 = cdn.client(config, "write")
    part = tmp_path / "part"
    part.write_bytes(b"big part " * 10_000)
    sha = "a" * 64
    assert cdn.put_unless_present(s3, config.bucket, "models/x.big", part, sha) is True
    assert cdn.put_unless_present(s3, config.bucket, "models/x.big", part, sha) is False
    assert cdn.stored_sha256(s3, config.bucket, "models/x.big") == sha
    part.write_bytes(b"other bytes")
    assert cdn.put_unless_present(s3, config.bucket, "models/x.big", part, "b" * 64) is True
    assert release_services.bucket_objects() == {"models/x.big": b"other bytes"}
    assert cdn.stored_sha256(s3, config.bucket, "models/none") is None


def test_a_missing_bucket_is_a_clear_error(release_services, tmp_path):
    config = release_services.cdn.model_copy(update={"bucket": "no-such-bucket"})
    part = tmp_path / "part"
    part.write_bytes(b"x")
    with pytest.raises(cdn.CdnError, match="CDN upload no-such-bucket/k: NoSuchBucket") as caught:
        cdn.put_unless_present(cdn.client(config, "write"), config.bucket, "k", part, "c" * 64)
    for secret in release_services.local_cdn.secrets:
        assert secret not in str(caught.value)


def test_a_refused_head_does_not_stop_the_upload(release_services, tmp_path):
    """A HEAD says only "403" when refused (on AWS S3, also for a missing key and a pair
    without s3:ListBucket): the upload goes ahead and speaks for itself."""
    bucket = release_services.cdn.bucket
    put_only = release_services.local_cdn.client("put_only")
    part = tmp_path / "part"
    part.write_bytes(b"big part")
    assert cdn.put_unless_present(put_only, bucket, "models/y.big", part, "d" * 64) is True
    assert release_services.bucket_objects() == {"models/y.big": b"big part"}


def test_a_second_local_cdn_in_the_process_is_refused(local_cdn):
    with pytest.raises(RuntimeError, match="already runs"), LocalCdn():
        pass
    assert local_cdn.client("admin").list_buckets()  # the running one is untouched
