"""Listening sockets opened before the HTTP commands start anything (app/listening.py)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from app.errors import ConfigError
from app.listening import SkipAccessLines, open_listeners


@contextmanager
def listeners_on(host: str, port: int) -> Iterator[list[socket.socket]]:
    listeners = open_listeners(host, port, host_setting="HOST", port_setting="PORT")
    try:
        yield listeners
    finally:
        for sock in listeners:
            sock.close()


def test_a_port_in_use_is_one_error_naming_the_setting_the_address_and_the_cause() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            open_listeners("127.0.0.1", port, host_setting="HOST", port_setting="--port")
    assert caught.value.message == (
        f"--port: cannot listen on 127.0.0.1:{port}: address already in use"
    )


def test_a_second_listener_is_refused_although_both_reuse_addresses() -> None:
    # SO_REUSEADDR lets two sockets bind one port until one listens: ours listen at once.
    with listeners_on("127.0.0.1", 0) as first:
        port = first[0].getsockname()[1]
        with pytest.raises(ConfigError, match="address already in use"):
            open_listeners("127.0.0.1", port, host_setting="HOST", port_setting="PORT")


def test_a_restart_listens_while_the_last_runs_connections_are_in_time_wait() -> None:
    with listeners_on("127.0.0.1", 0) as first:
        port = first[0].getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = first[0].accept()
        accepted.close()  # the server closes first: its side of the connection waits in TIME_WAIT
        client.recv(1)
        client.close()
    with listeners_on("127.0.0.1", port) as again:
        assert again[0].getsockname() == ("127.0.0.1", port)


def test_the_sockets_listen_before_anything_serves() -> None:
    with listeners_on("127.0.0.1", 0) as listeners:
        port = listeners[0].getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # accepted into the backlog: nothing else can take the port meanwhile


def test_an_unresolvable_host_names_the_host_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        open_listeners("no-such-host.invalid", 8000, host_setting="--host", port_setting="PORT")
    assert caught.value.message.startswith(
        "--host: cannot listen on no-such-host.invalid:8000: "
    ), caught.value.message


def test_an_address_of_another_machine_names_the_host_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        open_listeners("192.0.2.1", 8000, host_setting="HOST", port_setting="PORT")
    assert caught.value.message == (
        "HOST: cannot listen on 192.0.2.1:8000: cannot assign requested address"
    )


def test_a_port_out_of_range_is_refused_rather_than_wrapped() -> None:
    # getaddrinfo would take 70000 as 70000 - 65536 = 4464.
    with pytest.raises(ConfigError, match=r"--port: cannot listen on 127.0.0.1:70000: not a port"):
        open_listeners("127.0.0.1", 70000, host_setting="HOST", port_setting="--port")


def _access_line(path: str, status: int) -> logging.LogRecord:
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 0, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", path, "1.1", status), None,
    )  # fmt: skip


def test_a_path_that_logs_its_own_requests_gets_no_access_line_unless_it_fails() -> None:
    skip = SkipAccessLines(["/webhooks/voucherify"])
    assert not skip.filter(_access_line("/webhooks/voucherify", 202))
    assert not skip.filter(_access_line("/webhooks/voucherify", 200))
    assert skip.filter(_access_line("/webhooks/voucherify", 401))
    assert skip.filter(_access_line("/webhooks/voucherify", 503))
    assert skip.filter(_access_line("/api/v1/events", 200))
    assert skip.filter(_access_line("/webhooks/voucherify?probe=1", 202))
