"""Python clients of the served page's endpoints (the benchmark and the tests use them).

Standard library only for HTTP; the live stream's client is any WebSocket library (the tests and
``bench/serve.py`` use ``websockets``) sending :func:`encode_frame` bytes.

Example:
    >>> status, body = post_clip("http://127.0.0.1:8000", "clip.mp4")  # doctest: +SKIP
    >>> status, body["results"]["video"][0]  # doctest: +SKIP
    (200, ['wave', 0.91])
"""

from __future__ import annotations

import http.client
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

__all__ = ["encode_frame", "encode_multipart", "post_clip"]


def encode_multipart(files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body of files: ``{field: (filename, content)}``.

    Returns:
        ``(body, content type with its boundary)``.

    Example:
        >>> body, kind = encode_multipart({"video": ("a.mp4", b"xyz")})
        >>> kind.startswith("multipart/form-data; boundary="), b'filename="a.mp4"' in body
        (True, True)
    """
    boundary = uuid.uuid4().hex
    parts = []
    for field, (filename, content) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts += [head.encode(), content, b"\r\n"]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _chunks(body: bytes, size: int = 1 << 16) -> Iterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


def post_clip(
    url: str,
    video: str | os.PathLike | tuple[str, bytes],
    sensor: str | os.PathLike | tuple[str, bytes] | None = None,
    *,
    chunked: bool = False,
    timeout: float = 120.0,
) -> tuple[int, dict[str, Any]]:
    """POST a clip (and a sensor recording) to ``{url}/api/predict`` as the page does.

    Args:
        url: The server, e.g. ``http://127.0.0.1:8000``.
        video: A file, or ``(filename, content)``.
        sensor: None, a file, or ``(filename, content)``.
        chunked: Send the body in chunks without a ``Content-Length`` (the server then counts
            the size as it streams in).
        timeout: Seconds to wait for the answer.

    Returns:
        ``(HTTP status, the JSON answer)``.
    """
    files = {"video": video} if sensor is None else {"video": video, "sensor": sensor}
    named = {
        k: v if isinstance(v, tuple) else (Path(v).name, Path(v).read_bytes())
        for k, v in files.items()
    }
    body, kind = encode_multipart(named)
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        headers = {"Content-Type": kind}
        if chunked:
            conn.request("POST", "/api/predict", _chunks(body), headers, encode_chunked=True)
        else:
            conn.request("POST", "/api/predict", body, headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def encode_frame(frame: np.ndarray, kind: str = ".jpg", quality: int = 80) -> bytes:
    """An RGB uint8 frame ``(H, W, 3)`` as JPEG (or ``".png"``) bytes: a live-stream message.

    Example:
        >>> encode_frame(np.zeros((24, 32, 3), np.uint8))[:3]
        b'\\xff\\xd8\\xff'
    """
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if kind == ".jpg" else []
    ok, data = cv2.imencode(kind, cv2.cvtColor(np.asarray(frame), cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"cannot encode a {np.asarray(frame).shape} frame as {kind}")
    return data.tobytes()
