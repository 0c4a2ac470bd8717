"""The request-body limit: an ASGI middleware that answers 413 before an oversized body reaches the app."""

from __future__ import annotations

import asyncio
import json

from .schemas import envelope, new_log_id

__all__ = ["BodyLimitMiddleware"]


class BodyLimitMiddleware:
    """Refuse (413) bodies over ``max_bytes``: on ``Content-Length`` at once, else while reading.

    The body is read here (up to the limit) and replayed to the app, so no route ever sees more.
    Before answering 413 the rest of the body is read and dropped for a moment (at most
    :attr:`linger_s` seconds and ``max_bytes`` more bytes; never for ``Expect: 100-continue``
    or a declared length over twice the limit): a server that closes a connection with unread
    data makes the kernel reset it and drop the unsent answer, so the client would see
    "connection reset" instead of the 413 (nginx's "lingering close", in small).
    """

    linger_s = 1.0

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                return await self._refuse(send, 400, f"Content-Length {declared[:32]!r} is not a number")
            if length > self.max_bytes:
                if length <= 2 * self.max_bytes and b"expect" not in headers:
                    await self._drain(receive, length)
                return await self._refuse(send, 413, self._too_large(f"{length:,} bytes"))
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                del chunks
                if message.get("more_body", False):
                    await self._drain(receive, self.max_bytes)
                return await self._refuse(send, 413, self._too_large(f"more than {self.max_bytes:,} bytes"))
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
        del chunks

        async def receive_again():
            if replay:
                return replay.pop()
            return await receive()

        return await self.app(scope, receive_again, send)

    async def _drain(self, receive, budget: int) -> None:
        """Read and drop up to ``budget`` bytes of the body, for at most :attr:`linger_s` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger_s
        dropped = 0
        while dropped <= budget:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                message = await asyncio.wait_for(receive(), remaining)
            except asyncio.TimeoutError:
                return
            if message["type"] != "http.request":
                return
            dropped += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    def _too_large(self, what: str) -> str:
        return (
            f"the request body is {what}, above this server's limit of {self.max_bytes:,} bytes; send a smaller "
            "image, or an image URL (or start the server with a larger --max-body-mb)"
        )

    async def _refuse(self, send, status: int, message: str) -> None:
        log_id = new_log_id()
        body = json.dumps(envelope(log_id, status, message)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-log-id", log_id.encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
