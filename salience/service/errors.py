"""Every failure as an HTTP status and a JSON body (:class:`~salience.service.schemas.ErrorBody`),
and the upload limit that refuses a large body without reading it.

Codes: 400 a request the service cannot make sense of (unknown option, malformed multipart),
413 a body over the upload limit, 415 a body that is not multipart or an upload that is no
image, 422 values that do not validate (corrupt image, too many pixels, bad regions, unknown
colormap, out-of-range numbers), 503 all workers busy and the wait queue full, 500 a fault of
the service (logged with its traceback; the process keeps serving).
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("salience.service")

# The code of an error that Starlette or FastAPI raise themselves, by status.
_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "busy",
}


class ApiError(Exception):
    """A request the service refuses: its HTTP status, a short code and a readable message."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def _body(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    """FastAPI's validation errors as one line: ``opacity: Input should be ...; image: ...``."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", ""))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` a JSON :class:`~salience.service.schemas.ErrorBody`."""

    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _body(exc.status, exc.code, exc.message, exc.headers)

    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _body(422, "invalid_request", _validation_message(exc))

    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(exc.status_code, "error")
        return _body(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("request %s %s failed", request.method, request.url.path, exc_info=exc)
        return _body(500, "internal", f"internal error ({type(exc).__name__}); see the server log")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)


class BodyTooLarge(StarletteHTTPException):
    """Raised from inside ``receive`` when a streamed body passes the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the {_megabytes(limit)} allowed")


def _megabytes(n: int) -> str:
    return f"{n / 1e6:g} MB"


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413, without keeping them.

    A declared ``Content-Length`` past ``3 * max_bytes`` is answered at once, before a byte of
    the body is read. A smaller overshoot, and a body without a length (chunked) once its count
    passes ``max_bytes``, is read on to its end and thrown away (up to ``3 * max_bytes``, one
    chunk at a time) before the 413 goes out: a server that stops reading and closes while the
    client is still sending resets the connection, and the client never sees the answer.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = 3 * max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await self._refuse(send, 400, "bad_request", "Content-Length is not a number")
                return
            if length > self.max_bytes:
                if length <= self.drain_bytes:
                    await self._drain(receive, 0)
                await self._refuse(send, 413, "too_large", BodyTooLarge(self.max_bytes).detail)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if message.get("more_body", False):
                        await self._drain(receive, received)
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted, send)

    async def _drain(self, receive: Receive, received: int) -> None:
        """Read and drop the rest of the body, up to ``drain_bytes`` in all (``received``:
        the bytes already read)."""
        while received <= self.drain_bytes:
            message = await receive()
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if not message.get("more_body", False):
                break

    @staticmethod
    async def _refuse(send: Send, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": code, "message": message}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
