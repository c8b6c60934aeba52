"""`MultiplexedConnection.from_url` reads a URL the way redis-py does (through its public `ConnectionPool.from_url`)."""

from __future__ import annotations

import ssl

from app.cache.multiplex import MultiplexedConnection, pack_command


def test_host_port_db_and_credentials() -> None:
    connection = MultiplexedConnection.from_url("redis://alice:p%40ss@cache.internal:6380/3", timeout=0.25)
    assert connection._target == ("cache.internal", 6380, None)
    assert connection._handshake == [pack_command(["AUTH", "alice", "p@ss"]), pack_command(["SELECT", 3])]
    assert connection._ssl is None
    assert connection.timeout == 0.25


def test_defaults() -> None:
    connection = MultiplexedConnection.from_url("redis://localhost")
    assert connection._target == ("localhost", 6379, None)
    assert connection._handshake == []


def test_password_only_and_db_from_the_query() -> None:
    connection = MultiplexedConnection.from_url("redis://:secret@127.0.0.1:7000?db=5")
    assert connection._handshake == [pack_command(["AUTH", "secret"]), pack_command(["SELECT", 5])]


def test_unix_socket() -> None:
    connection = MultiplexedConnection.from_url("unix:///run/redis/redis.sock?db=2")
    assert connection._target[2] == "/run/redis/redis.sock"
    assert connection._handshake == [pack_command(["SELECT", 2])]


def test_rediss_builds_a_tls_context_from_the_ssl_options() -> None:
    verified = MultiplexedConnection.from_url(
        "rediss://cache.internal:6380/0?ssl_cert_reqs=required&ssl_check_hostname=true"
    )
    assert isinstance(verified._ssl, ssl.SSLContext)
    assert verified._ssl.verify_mode == ssl.CERT_REQUIRED
    assert verified._ssl.check_hostname
    assert verified._target == ("cache.internal", 6380, None)
    # The same TLS as redis-py's own connections: a bare rediss:// URL verifies the certificate and host name.
    default = MultiplexedConnection.from_url("rediss://cache.internal:6380/0")
    assert isinstance(default._ssl, ssl.SSLContext)
    assert default._ssl.verify_mode == ssl.CERT_REQUIRED
    assert default._ssl.check_hostname
    unverified = MultiplexedConnection.from_url("rediss://cache.internal:6380/0?ssl_cert_reqs=none")
    assert isinstance(unverified._ssl, ssl.SSLContext)
    assert unverified._ssl.verify_mode == ssl.CERT_NONE
    assert not unverified._ssl.check_hostname
