"""Model encryption for releases, and the big/small split of the ciphertext.

Two schemes, both keyed by the SHA-256 of a key string (the secret ``MODEL_ENCRYPTION_KEY``, or
the hardware-bound key of ``hardware``):

- ``aes-256-cbc``: what existing Azaion consumers decrypt: a random 16-byte IV, then the
  PKCS7-padded ciphertext. It has no integrity: a flipped byte mostly decrypts to garbage, which
  only the plaintext checksum in the release manifest catches.
- ``aes-256-gcm``: authenticated. A random 12-byte nonce, then the ciphertext and its 16-byte
  tag; any change to any byte, or the wrong key, is refused by ``decrypt``.

The split exists so that neither half is useful alone: the small head goes to the Azaion API
(served only to authenticated, hardware-bound clients), the big rest to a public CDN.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from azaion_assets.lib.config.fields import SCHEMES, Scheme
from azaion_assets.lib.text import plural

IV_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
BLOCK_BITS = 128  # AES


class DecryptionError(ValueError):
    """The ciphertext cannot be decrypted: wrong key, wrong scheme, truncated or tampered.

    The message never carries key material or plaintext."""


def derive_key(key_string: str) -> bytes:
    """The AES-256 key of a key string: its SHA-256 (the existing consumers' derivation)."""
    if not key_string:
        raise ValueError("the encryption key is empty")
    return hashlib.sha256(key_string.encode("utf-8")).digest()


def encrypt(plaintext: bytes, key_string: str, scheme: Scheme) -> bytes:
    key = derive_key(key_string)
    if scheme == "aes-256-cbc":
        iv = os.urandom(IV_BYTES)
        # Only the last partial block goes through the padder: a model is large, so the bulk is
        # encrypted straight from a view of it, and the pieces joined once.
        whole = len(plaintext) // 16 * 16
        view = memoryview(plaintext)
        padder = padding.PKCS7(BLOCK_BITS).padder()
        tail = padder.update(bytes(view[whole:])) + padder.finalize()
        encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        body = (encryptor.update(view[:whole]), encryptor.update(tail), encryptor.finalize())
        return b"".join((iv, *body))
    if scheme == "aes-256-gcm":
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(key).encrypt(nonce, plaintext, None)
    raise ValueError(f"unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")


def decrypt(blob: bytes, key_string: str, scheme: Scheme) -> bytes:
    key = derive_key(key_string)
    if scheme == "aes-256-cbc":
        body = len(blob) - IV_BYTES
        if body <= 0 or body % 16:
            raise DecryptionError(f"not an {scheme} ciphertext: {plural(len(blob), 'byte')}")
        view = memoryview(blob)
        decryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(view[:IV_BYTES]))).decryptor()
        padded = decryptor.update(view[IV_BYTES:]) + decryptor.finalize()
        pad = padded[-1]  # PKCS7, checked in full below on the last block only
        unpadder = padding.PKCS7(BLOCK_BITS).unpadder()
        try:
            unpadder.update(padded[-16:])
            unpadder.finalize()
            return padded[:-pad]
        except ValueError:
            raise DecryptionError(
                f"{scheme}: bad padding (wrong key, or a corrupted ciphertext)"
            ) from None
    if scheme == "aes-256-gcm":
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise DecryptionError(f"not an {scheme} ciphertext: {plural(len(blob), 'byte')}")
        view = memoryview(blob)
        try:
            return AESGCM(key).decrypt(bytes(view[:NONCE_BYTES]), view[NONCE_BYTES:], None)
        except InvalidTag:
            raise DecryptionError(
                f"{scheme}: authentication failed (the ciphertext was altered, or the key is wrong)"
            ) from None
    raise ValueError(f"unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")


def small_size(total: int, max_bytes: int, fraction: float) -> int:
    """Bytes of the small part: the first min(``max_bytes``, ``fraction`` of the total)."""
    return min(max_bytes, int(total * fraction))


def split(blob: bytes, max_bytes: int, fraction: float) -> tuple[memoryview, memoryview]:
    """(small head, big rest) of a ciphertext, as views of it (a model is large: no copies);
    ``bytes(small) + bytes(big) == blob``."""
    cut = small_size(len(blob), max_bytes, fraction)
    view = memoryview(blob)
    return view[:cut], view[cut:]
