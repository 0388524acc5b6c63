"""Running the service: bind the address first (so port 0 gets a free port whose number can be
printed), then serve on uvicorn until interrupted."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping

import uvicorn

from salience.predictor import Predictor
from salience.service.app import ServiceSettings, create_app

# Connections uvicorn takes beyond the requests the pool admits (health checks, the page's
# static files); past workers + queue + this it answers 503 without reading the request.
EXTRA_CONNECTIONS = 32


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when the host is an IPv6 address):
    connections made before the server runs wait in its backlog instead of being refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    return sock


def url_of(sock: socket.socket) -> str:
    """The http address a bound socket serves, e.g. ``http://127.0.0.1:8000/``."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(
    predictor: Predictor,
    settings: ServiceSettings,
    sock: socket.socket,
    announce: Callable[[str], None] = print,
    log_level: str = "warning",
    others: Mapping[str, Predictor] | None = None,
) -> None:
    """Serve the app around ``predictor`` (and ``others``, the same model for its other
    conditions) on the bound ``sock`` until Ctrl+C (or SIGTERM); ``announce`` gets the address
    first."""
    app = create_app(predictor, settings, others)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        limit_concurrency=settings.workers + settings.queue + EXTRA_CONNECTIONS,
        timeout_graceful_shutdown=10,
    )
    announce(url_of(sock))
    uvicorn.Server(config).run(sockets=[sock])
