"""`redis+sentinel://` URLs: which sentinels to ask for which master, with which credentials."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ("SENTINEL_SCHEME", "SentinelURL")

SENTINEL_SCHEME = "redis+sentinel"


@dataclass(frozen=True, slots=True, kw_only=True)
class SentinelURL:
    """`redis+sentinel://[user:password@]host:port[,host:port...]/master_name[/db]`, parsed.

    The credentials are the master's (and its replicas'); the sentinels' own password is a separate setting.
    """

    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SentinelURL:
        """Parse `url`.

        Raises:
            ValueError: Not a sentinel URL, or a part is missing or malformed (the message is one line and
                never contains the password).
        """
        parts = urlsplit(url)
        if parts.scheme != SENTINEL_SCHEME:
            raise ValueError(f"expected a {SENTINEL_SCHEME}:// URL")
        userinfo, _, hosts = parts.netloc.rpartition("@")
        username = password = None
        if userinfo:
            user, has_password, secret = userinfo.partition(":")
            username = unquote(user) or None
            password = unquote(secret) if has_password else None
        sentinels: list[tuple[str, int]] = []
        for address in hosts.split(","):
            host, _, port = address.strip().rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port for each sentinel, got {address.strip()!r}")
            sentinels.append((host.strip("[]"), int(port)))
        segments = [unquote(segment) for segment in parts.path.split("/")[1:]]
        if not segments or not segments[0]:
            raise ValueError("the master's name is missing: .../master_name[/db]")
        if len(segments) > 2 or (len(segments) == 2 and not segments[1].isdigit()):
            raise ValueError(f"expected /master_name[/db] after the sentinels, got {parts.path!r}")
        db = int(segments[1]) if len(segments) == 2 else 0
        return cls(sentinels=tuple(sentinels), master_name=segments[0], db=db, username=username, password=password)
