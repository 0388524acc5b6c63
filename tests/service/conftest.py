"""Shared pieces of the service tests: the default model loaded once, small images, a server."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "example.jpg"
VARIANT = REPO / "docs" / "example-variant.jpg"


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def small_example(size: int = 128, path: Path = EXAMPLE) -> bytes:
    """The example photo shrunk to ``size`` pixels square, as PNG bytes: cheap to render."""
    with Image.open(path) as im:
        return png_bytes(np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR)))


@pytest.fixture(scope="session")
def predictor():
    """The shipped default model, loaded once for every service test."""
    from salience.predictor import Predictor

    return Predictor.from_pretrained()


class ThreadedServer:
    """The app on uvicorn in a background thread, on a free loopback port."""

    def __init__(self, app) -> None:
        import uvicorn

        from salience.service.server import bind, url_of

        self.sock = bind("127.0.0.1", 0)
        self.url = url_of(self.sock)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@pytest.fixture(scope="session")
def live_server(predictor) -> Iterator[str]:
    """The service around the default model (and its ``ui`` condition, for web pages), served
    on 127.0.0.1: its base URL."""
    from salience.predictor import Predictor
    from salience.service import ServiceSettings, create_app

    others = {"ui": Predictor.from_pretrained(condition="ui")}
    app = create_app(predictor, ServiceSettings(max_upload_mb=5), others)
    with ThreadedServer(app) as server:
        yield server.url
