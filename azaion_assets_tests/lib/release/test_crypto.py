"""Release encryption: both schemes round-trip, CBC is the existing consumers' format (checked
with OpenSSL, an independent implementation), GCM refuses any change, and the split is exact."""

import hashlib
import os
import subprocess

import pytest

from azaion_assets.lib.release.crypto import (
    IV_BYTES,
    NONCE_BYTES,
    SCHEMES,
    DecryptionError,
    decrypt,
    encrypt,
    small_size,
    split,
)

KEY = "a-model-key-of-some-length"


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 100_003])
def test_round_trip_is_byte_identical(scheme, size):
    plain = os.urandom(size)
    blob = encrypt(plain, KEY, scheme)
    assert decrypt(blob, KEY, scheme) == plain
    assert size < 16 or plain not in blob  # (a 1-byte plaintext may occur by chance)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_encryption_is_fresh(scheme):
    plain = b"same plaintext" * 100
    assert encrypt(plain, KEY, scheme) != encrypt(plain, KEY, scheme)


@pytest.mark.parametrize("size", [0, 5, 16, 4097])
def test_cbc_is_iv_then_pkcs7_ciphertext_under_sha256_of_the_key_per_openssl(tmp_path, size):
    plain = os.urandom(size)
    blob = encrypt(plain, KEY, "aes-256-cbc")
    assert len(blob) == IV_BYTES + (size // 16 + 1) * 16  # PKCS7 always pads
    body = tmp_path / "body"
    body.write_bytes(blob[IV_BYTES:])
    openssl = subprocess.run(
        [
            "openssl",
            "enc",
            "-d",
            "-aes-256-cbc",
            "-K",
            hashlib.sha256(KEY.encode()).hexdigest(),
            "-iv",
            blob[:IV_BYTES].hex(),
            "-in",
            str(body),
        ],
        capture_output=True,
        check=True,
    )
    assert openssl.stdout == plain


def test_openssl_ciphertext_decrypts_here(tmp_path):
    """The other direction: what an existing (OpenSSL-style) producer writes, we read."""
    plain = os.urandom(1000)
    iv = os.urandom(16)
    source = tmp_path / "plain"
    source.write_bytes(plain)
    key_hex = hashlib.sha256(KEY.encode()).hexdigest()
    body = subprocess.run(
        ["openssl", "enc", "-aes-256-cbc", "-K", key_hex, "-iv", iv.hex(), "-in", str(source)],
        capture_output=True,
        check=True,
    ).stdout
    assert decrypt(iv + body, KEY, "aes-256-cbc") == plain


@pytest.mark.parametrize("where", ["nonce", "body", "tag"])
def test_gcm_refuses_a_flipped_bit_anywhere(where):
    blob = bytearray(encrypt(os.urandom(5000), KEY, "aes-256-gcm"))
    index = {"nonce": 3, "body": NONCE_BYTES + 2500, "tag": len(blob) - 1}[where]
    blob[index] ^= 0x01
    with pytest.raises(DecryptionError, match="authentication failed") as caught:
        decrypt(bytes(blob), KEY, "aes-256-gcm")
    assert KEY not in str(caught.value)


def test_gcm_refuses_a_wrong_key_and_truncation():
    blob = encrypt(b"weights" * 1000, KEY, "aes-256-gcm")
    with pytest.raises(DecryptionError, match="authentication failed"):
        decrypt(blob, KEY + "x", "aes-256-gcm")
    with pytest.raises(DecryptionError):
        decrypt(blob[:-1], KEY, "aes-256-gcm")
    with pytest.raises(DecryptionError, match="not an aes-256-gcm ciphertext"):
        decrypt(blob[:20], KEY, "aes-256-gcm")


def test_cbc_with_a_wrong_key_or_length_never_yields_the_plaintext():
    plain = b"weights" * 1000
    blob = encrypt(plain, KEY, "aes-256-cbc")
    with pytest.raises(DecryptionError, match="not an aes-256-cbc ciphertext"):
        decrypt(blob[:-3], KEY, "aes-256-cbc")
    try:
        assert decrypt(blob, "another key entirely", "aes-256-cbc") != plain
    except DecryptionError as exc:  # the usual outcome: the padding does not check out
        assert "bad padding" in str(exc)


def test_empty_key_and_unknown_scheme_are_refused():
    with pytest.raises(ValueError, match="empty"):
        encrypt(b"x", "", "aes-256-cbc")
    with pytest.raises(ValueError, match="unknown scheme"):
        encrypt(b"x", KEY, "rot13")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("total", "max_bytes", "fraction", "expected"),
    [
        (100_000, 3072, 0.2, 3072),  # big file: the byte cap
        (10_000, 3072, 0.2, 2000),  # small file: 20 %
        (15_360, 3072, 0.2, 3072),  # both equal
        (10, 3072, 0.2, 2),
        (100_000, 1024, 0.5, 1024),  # configurable
        (1000, 4096, 0.5, 500),
    ],
)
def test_the_small_part_is_min_of_the_cap_and_the_fraction(total, max_bytes, fraction, expected):
    assert small_size(total, max_bytes, fraction) == expected
    blob = os.urandom(total)
    small, big = split(blob, max_bytes, fraction)
    assert len(small) == expected
    assert bytes(small) + bytes(big) == blob
