"""An HTTP server that closes a connection the way a proxy on a Unix socket can bear.

configurable-http-proxy asks the gateway for ``Connection: close`` and writes each request in two
steps. A refusal that the gateway answers at once (403 without reading anything upstream) was
followed by ``close()`` before the proxy had finished with the socket; on a Unix socket the proxy's
next write then fails at once with EPIPE, and the proxy answered the caller 503 instead of the
refusal (about one PUT in seven in a tight loop).

So the server *lingers*, as Apache's lingering close does: the first clean ``close()`` of a
connection (the response is fully written) leaves the socket open; the connection's own loop goes on
reading, and the socket closes for real when the peer closes its end, on any error or further close,
or after ``LINGER`` seconds, whichever comes first.
"""

from __future__ import annotations

from tornado import iostream
from tornado.httpserver import HTTPServer

LINGER = 2.0  # seconds a closed connection waits for the peer's end


def linger_on_close(stream: iostream.IOStream) -> None:
    """Make the first clean ``stream.close()`` a lingering close."""
    close = stream.close

    def real_close(exc_info=False) -> None:
        stream.close = close  # type: ignore[method-assign]
        close(exc_info)

    def lingering_close(exc_info=False) -> None:
        if exc_info or stream.closed() or stream.writing() or stream.socket is None:
            return real_close(exc_info)
        stream.close = real_close  # type: ignore[method-assign]  (the peer's end, an error, a timeout)
        stream.io_loop.call_later(LINGER, real_close)

    stream.close = lingering_close  # type: ignore[method-assign]


class LingeringHTTPServer(HTTPServer):
    def handle_stream(self, stream: iostream.IOStream, address: tuple) -> None:
        linger_on_close(stream)
        super().handle_stream(stream, address)
