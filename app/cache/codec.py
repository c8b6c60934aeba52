"""Key and value codecs. Each typed cache builds its msgspec Encoder and Decoder once."""

from __future__ import annotations

from binascii import b2a_base64
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from uuid import UUID

import msgspec

from app.cache.entry import schema_fingerprint

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ("ValueCodec", "key_encoder_for", "schema_fingerprint")

K = TypeVar("K")
V = TypeVar("V")


def _encode_int(key: int) -> str:
    return str(key)


_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def _encode_uuid(key: UUID) -> str:
    """22 characters of URL-safe base64 without padding (32 as hex)."""
    return b2a_base64(key.bytes, newline=False)[:22].translate(_URL_SAFE).decode()


def _encode_str(key: str) -> str:
    return key


_KEY_ENCODERS: dict[type[Any], Callable[[Any], str]] = {
    int: _encode_int,
    UUID: _encode_uuid,
    str: _encode_str,
}


def key_encoder_for(key_type: type[K]) -> Callable[[K], str]:
    """Return the function that turns a key of `key_type` into the text used in the backend key.

    Raises:
        TypeError: `key_type` has no built-in encoder; pass `key_encoder` to the cache instead.
    """
    try:
        return _KEY_ENCODERS[key_type]
    except KeyError:
        raise TypeError(f"no key encoder for {key_type!r}: pass key_encoder=") from None


class ValueCodec(Generic[V]):
    """msgpack encoding of one value type, with the Encoder and Decoder built once."""

    __slots__ = ("_decoder", "_encoder", "fingerprint", "value_type")

    def __init__(self, value_type: type[V], layout: bytes = b"") -> None:
        """Build the codec for `value_type` (any type msgspec supports); `layout` goes into the fingerprint."""
        self.value_type = value_type
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[V] = msgspec.msgpack.Decoder(value_type)
        self.fingerprint = schema_fingerprint(value_type, layout)

    def encode(self, value: V) -> bytes:
        """Encode one value."""
        return self._encoder.encode(value)

    def decode(self, data: bytes | memoryview) -> V:
        """Decode one value.

        Raises:
            msgspec.DecodeError: The bytes are not a valid `value_type`.
        """
        return self._decoder.decode(data)
