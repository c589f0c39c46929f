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
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

__all__ = ["ServerProcess", "encode_frame", "encode_multipart", "memory_mb", "post_clip"]

#: The repository root, where serve.py is.
REPO_ROOT = Path(__file__).resolve().parents[2]
#: The line serve.py logs once it listens (its URL in group 1).
SERVING = re.compile(r"serving (http://[^\s/]+)/")


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


def memory_mb(pid: int) -> dict[str, float]:
    """A process's resident memory now (``rss``) and its peak so far (``peak``), in MB (Linux
    ``/proc``).

    Example:
        >>> memory_mb(os.getpid())["rss"] > 0
        True
    """
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields["rss" if key == "VmRSS" else "peak"] = int(value.split()[0]) / 1024
    return fields


class ServerProcess:
    """``python serve.py RUN ... --port 0`` as a child process, ready once it listens.

    The child's log (stderr) is kept in :attr:`log`; :attr:`url` is where it serves.

    Args:
        args: serve.py's arguments (the run first); ``--port 0`` is added.
        env: Extra environment variables.
        timeout: Seconds to wait for the server to listen (loading and warming up the models).

    Raises:
        RuntimeError: The server exited or did not listen in time (its log in the message).

    Example:
        >>> with ServerProcess(["checkpoints/demo/fusion/latest"]) as server:  # doctest: +SKIP
        ...     post_clip(server.url, "clip.mp4")
    """

    def __init__(
        self, args: list[str], env: dict[str, str] | None = None, timeout: float = 300.0
    ) -> None:
        child_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, str(Path(REPO_ROOT) / "serve.py"), *map(str, args), "--port", "0"]
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env={**child_env, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[str] = []
        self.url = ""
        listening = threading.Event()

        def read() -> None:
            for line in self.proc.stderr:
                self.log.append(line)
                m = SERVING.search(line)
                if m and not self.url:
                    self.url = m.group(1)
                    listening.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not listening.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("serve.py did not start:\n" + "".join(self.log[-30:]))
        host, port = urlsplit(self.url).hostname, urlsplit(self.url).port
        for _ in range(100):  # the line is logged just before uvicorn accepts
            try:
                socket.create_connection((host, port), 1).close()
                break
            except OSError:
                time.sleep(0.1)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def memory_mb(self) -> dict[str, float]:
        """:func:`memory_mb` of the server."""
        return memory_mb(self.pid)

    def stop(self) -> None:
        """Stop the server (SIGTERM: uvicorn's graceful shutdown; SIGKILL after 20 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
