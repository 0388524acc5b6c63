"""``salience serve`` as a process on 127.0.0.1: 50 clients at once all answered, a huge declared
body refused unread, and bad requests that leave it serving. Bounded in count and time."""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.service.conftest import REPO, png_bytes

CLIENTS = 50


@pytest.fixture(scope="module")
def server(tiny_weights, tmp_path_factory) -> Iterator[str]:
    """``salience serve --port 0`` with a small random model (fast inference: the queue is
    what is tested), one worker; its printed address."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "salience", "serve", "--port", "0", "--workers", "1"]
    command += ["--checkpoint", str(tiny_weights), "--max-upload-mb", "1"]
    log = tmp_path_factory.mktemp("serve") / "stderr.txt"
    with log.open("w") as stderr:  # a file, not a pipe: a full pipe would stall the server
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    try:
        url = _address(process, log, timeout=180)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _address(process: subprocess.Popen, log: Path, timeout: float) -> str:
    """The address the server prints once its model is loaded."""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"salience serve exited: {log.read_text()}")
            if selector.select(timeout=0.5):
                line = process.stdout.readline()
                if line.startswith("salience serve: http://127.0.0.1:"):
                    return line.split()[2]
    raise RuntimeError("salience serve printed no address in time")


def test_fifty_concurrent_clients_all_get_200(server: str) -> None:
    rng = np.random.default_rng(0)
    images = [png_bytes(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)) for _ in range(CLIENTS)]

    async def one(client: httpx.AsyncClient, i: int) -> tuple[int, dict]:
        response = await client.post(
            "/v1/predict", files={"image": (f"{i}.png", images[i])}, data={"scanpaths": "1"}
        )
        return response.status_code, response.json()

    async def all_at_once() -> list[tuple[int, dict]]:
        limits = httpx.Limits(max_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=server, timeout=120, limits=limits) as client:
            return await asyncio.wait_for(
                asyncio.gather(*(one(client, i) for i in range(CLIENTS))), timeout=240
            )

    results = asyncio.run(all_at_once())
    assert [status for status, _ in results] == [200] * CLIENTS, [b for s, b in results if s != 200]
    assert all((body["width"], body["height"]) == (64, 48) for _, body in results)
    assert [body["image"] for _, body in results] == [f"{i}.png" for i in range(CLIENTS)]


def test_huge_declared_body_is_refused_without_being_sent(server: str) -> None:
    host, port = server.removeprefix("http://").rstrip("/").split(":")
    head = (
        "POST /v1/predict HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        "Content-Length: 5000000000\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode())  # and not one byte of the 5 GB
        answer = b""
        while b"}" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "too_large"


def test_bad_requests_leave_the_server_serving(server: str) -> None:
    with httpx.Client(base_url=server, timeout=60) as client:
        statuses = [
            client.post("/v1/predict", files={"image": ("x.png", b"GIF89a broken")}).status_code,
            client.post(
                "/v1/predict", content=b"\x00" * 100, headers={"content-type": "x/y"}
            ).status_code,
            client.post(
                "/v1/predict",
                content=b"--b\r\nbroken",
                headers={"content-type": "multipart/form-data; boundary=b"},
            ).status_code,
            client.post("/v1/predict", files={"image": ("x.png", b"\x00" * 1_200_000)}).status_code,
        ]
        assert all(400 <= s < 500 for s in statuses), statuses
        assert client.get("/healthz").json()["status"] == "ok"
        good = png_bytes(np.full((20, 30, 3), 128, np.uint8))
        assert client.post("/v1/predict", files={"image": ("ok.png", good)}).status_code == 200
