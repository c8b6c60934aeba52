"""`EntrySigner`: a keyed BLAKE2b tag on every cache entry, so only holders of the key can write one we serve."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ("SIGNED_LAYOUT", "TAG_SIZE", "EntrySigner")

TAG_SIZE = 16
"""Bytes of the tag appended to a signed entry (BLAKE2b-128)."""

SIGNED_LAYOUT = b"+blake2b-128-tag"
"""Appended to `ENTRY_FORMAT` in the key fingerprint of signed caches: signed and unsigned entries never share keys."""

MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 64
"""BLAKE2b takes keys of up to 64 bytes."""


class EntrySigner:
    """Append and check a keyed MAC over a cache entry and the Redis key it is stored under.

    The tag covers the key, so an entry copied to another key (a forged UUID-to-id mapping made of a genuine
    one) fails too. The entry layout is unchanged before the tag: the version stays at bytes 2-9, where the
    compare-and-set in Lua reads it. Several keys support rotation: the first signs, every one verifies.
    A signer never shows its keys (no repr of them, no log line).
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: Sequence[bytes]) -> None:
        """Sign with `keys[0]`, accept a tag made with any of `keys`.

        Raises:
            ValueError: No key, or a key shorter than 16 or longer than 64 bytes.
        """
        if not keys:
            raise ValueError("at least one signing key is required")
        if any(not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES for key in keys):
            raise ValueError(f"signing keys are {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes long")
        self._keys = tuple(bytes(key) for key in keys)

    @classmethod
    def from_setting(cls, value: str) -> EntrySigner:
        """Build from `CACHE_SIGNING_KEY`: comma-separated keys, the first signs."""
        return cls([key.strip().encode() for key in value.split(",") if key.strip()])

    def __repr__(self) -> str:
        return f"EntrySigner(keys={len(self._keys)})"

    @staticmethod
    def _tag(secret: bytes, key: str, entry: bytes | memoryview) -> bytes:
        encoded = key.encode()
        mac = hashlib.blake2b(len(encoded).to_bytes(4, "big"), key=secret, digest_size=TAG_SIZE)
        mac.update(encoded)
        mac.update(entry)
        return mac.digest()

    def sign(self, key: str, entry: bytes) -> bytes:
        """Return `entry` with its tag for `key` appended."""
        return entry + self._tag(self._keys[0], key, entry)

    def verify(self, key: str, data: bytes) -> memoryview:
        """Return the entry without its tag.

        Raises:
            ValueError: The tag is missing or was not made with any accepted key for `key`.
        """
        if len(data) <= TAG_SIZE:
            raise ValueError("cache entry too short to carry a tag")
        view = memoryview(data)
        entry, tag = view[:-TAG_SIZE], view[-TAG_SIZE:]
        for secret in self._keys:
            if hmac.compare_digest(self._tag(secret, key, entry), tag):
                return entry
        raise ValueError("cache entry tag does not verify")
