"""uvicorn's HTTP protocol with TCP_NODELAY set on every connection, whatever the workers.

With one process uvicorn makes its own listening socket and asyncio sets TCP_NODELAY on
each accepted connection. With `--workers N` the parent binds the socket and the
children get it back from a file descriptor, with protocol number 0: asyncio's check
(`proto == IPPROTO_TCP`) then fails and Nagle's algorithm stays on. A response written
in two parts waits for the client's delayed ACK, about 40 ms: 19 requests/s instead of
107 at concurrency 1 (issue 16). Setting the option on the connection itself holds with
any number of workers.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.auto import AutoHTTPProtocol

__all__ = ["NoDelayHTTPProtocol", "set_no_delay"]


def set_no_delay(transport: asyncio.BaseTransport) -> None:
    """TCP_NODELAY on the transport's socket, if it is a TCP one."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6) \
            and sock.type == socket.SOCK_STREAM:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayHTTPProtocol(AutoHTTPProtocol):  # type: ignore[valid-type,misc]
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        set_no_delay(transport)
        super().connection_made(transport)
