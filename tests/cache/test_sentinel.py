"""`redis+sentinel://` URLs, and a backend that follows the master through a failover."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from app.cache import Entry, RedisBackend
from app.cache.sentinel import SentinelURL
from app.config import ConfigError, Settings
from tests.servers import SentinelServer


def test_a_url_names_sentinels_master_db_and_credentials() -> None:
    parsed = SentinelURL.parse("redis+sentinel://alice:p%40ss@10.0.0.1:26379,[::1]:26380/cache/3")
    assert parsed.sentinels == (("10.0.0.1", 26379), ("::1", 26380))
    assert parsed.master_name == "cache"
    assert parsed.db == 3
    assert (parsed.username, parsed.password) == ("alice", "p@ss")
    bare = SentinelURL.parse("redis+sentinel://127.0.0.1:26379/mymaster")
    assert (bare.db, bare.username, bare.password) == (0, None, None)
    assert SentinelURL.parse("redis+sentinel://:secret@h:1/m").password == "secret"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://127.0.0.1:26379", "master's name is missing"),
        ("redis+sentinel://127.0.0.1:26379/", "master's name is missing"),
        ("redis+sentinel://127.0.0.1/mymaster", "host:port"),
        ("redis+sentinel://127.0.0.1:26379,:1/mymaster", "host:port"),
        ("redis+sentinel://127.0.0.1:99999/mymaster", "host:port"),
        ("redis+sentinel://127.0.0.1:26379/mymaster/x", "master_name"),
        ("redis+sentinel://127.0.0.1:26379/mymaster/0/1", "master_name"),
    ],
)
def test_a_malformed_url_is_a_one_line_config_error_without_the_password(url: str, message: str) -> None:
    url = url.replace("redis+sentinel://", "redis+sentinel://u:hunter2@")
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"REDIS_URL": url})
    text = str(caught.value)
    assert text.startswith("REDIS_URL: ")
    assert message in text
    assert "\n" not in text
    assert "hunter2" not in text


def test_sentinel_and_cluster_exclude_each_other() -> None:
    with pytest.raises(ConfigError, match="REDIS_CLUSTER"):
        Settings.from_env({"REDIS_URL": "redis+sentinel://127.0.0.1:26379/m", "REDIS_CLUSTER": "true"})


def test_the_sentinel_password_is_a_setting_and_never_shown() -> None:
    settings = Settings.from_env(
        {"REDIS_URL": "redis+sentinel://127.0.0.1:26379/m", "REDIS_SENTINEL_PASSWORD": "s3cret-sentinel"}
    )
    assert settings.redis_sentinel_password == "s3cret-sentinel"
    assert "s3cret-sentinel" not in repr(settings)


async def test_the_backend_follows_the_master_through_a_failover(sentinel_server: SentinelServer) -> None:
    backend = RedisBackend.from_url(sentinel_server.url, socket_timeout=0.2)
    reads = backend.reads
    assert reads is not None
    connected: list[int] = []
    reads.on_connect = lambda: connected.append(reads.connects)  # the consistency fence's reconnect hook
    old = sentinel_server.master
    new = sentinel_server.replica
    assert old is not None
    assert new is not None
    try:
        await backend.set_many([Entry("s:a", b"1", 60_000)])
        assert await backend.get_many(["s:a"]) == [b"1"]
        with redis.Redis(port=old.port) as direct:
            assert direct.wait(1, 5000) == 1  # replicated, so the promoted replica has it
        old.stop()  # SIGKILL
        sentinel_server.failover()
        deadline = time.monotonic() + 30
        while sentinel_server.current_master_port() != new.port:
            assert time.monotonic() < deadline, "no failover"
            await asyncio.sleep(0.05)
        announced = time.monotonic()
        with redis.Redis(port=new.port) as direct:
            direct.set("s:only-new", b"n")
            attempt = 0
            while True:
                attempt += 1
                try:
                    await backend.set_many([Entry("s:b", str(attempt).encode(), 60_000)])
                    read = await backend.get_many(["s:only-new"])
                except Exception:
                    read = [None]
                if direct.get("s:b") == str(attempt).encode() and read == [b"n"]:
                    break
                assert time.monotonic() - announced < 10, "the backend did not follow the new master"
                await asyncio.sleep(0.02)
            followed = time.monotonic() - announced
            assert len(connected) >= 2, connected  # the read connection reopened to the new master: the hook fired
            assert direct.get("s:a") == b"1"  # replicated before the failover
            await backend.delete_many(["s:a", "s:b"])
            assert direct.exists("s:a", "s:b") == 0
        print(f"sentinel: followed the new master {followed * 1000:.0f} ms after it was announced")
    finally:
        await backend.close()
