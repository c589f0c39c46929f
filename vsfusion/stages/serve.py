"""``serve.py``: a page in the browser that names the action of an uploaded clip or the webcam.

Loads a fusion run's :class:`vsfusion.inference.Predictor`, checks the ``--sensor`` recording,
warms the models up (so the first request is as fast as the next) and serves
:func:`vsfusion.server.create_app` with uvicorn on ``--host`` (127.0.0.1: this machine only)
and ``--port`` until Ctrl-C.
"""

from __future__ import annotations

import errno
import logging
import socket
from pathlib import Path
from typing import Any

import numpy as np

from vsfusion.config import ConfigError, ServeConfig
from vsfusion.data.errors import DataError

__all__ = ["bind", "run_serve", "warm_up"]

logger = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one), or a one-line error.

    Raises:
        ConfigError: The port is taken or the address is not this machine's.

    Example:
        >>> sock = bind("127.0.0.1", 0)
        >>> sock.getsockname()[1] > 0
        True
        >>> sock.close()
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(
            f"--host {host}: not an address of this machine ({exc.strerror})"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"--port {port}: already in use on {host}; pass another --port (or stop the "
                "program holding it)"
            ) from None
        raise ConfigError(
            f"--host {host} --port {port}: cannot listen there ({exc.strerror})"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def warm_up(predictor: Any, window: int, sensor: str | None = None) -> bool:
    """Load the models and predict once on a blank window of webcam frames, so the first request
    is not slowed by loading and the backend's first-call set-up.

    Returns:
        Whether the run takes frames (the live page needs that; a run whose clips were read by a
        file-only reader, or are not RGB, serves uploads only: a warning says so).
    """
    predictor.model(False)
    if predictor.has_sensor_model():
        predictor.model(True)
    frames = [np.zeros((120, 160, 3), np.uint8)] * window
    try:
        predictor.predict_video(frames)
        if sensor is not None:
            predictor.predict_video(frames, sensor=sensor)
    except DataError as exc:
        logger.warning("the webcam stream will not work with this run: %s", exc)
        return False
    return True


def run_serve(cfg: ServeConfig) -> None:
    """Serve the page of ``cfg.run`` until interrupted.

    Raises:
        ConfigError: No run, a bad limit, or a host/port that cannot be listened on.
        DataError: Not a fusion run, a missing or unreadable ``--sensor`` recording, or one given
            to a run without the video + real-sensor model.

    Example:
        >>> run_serve(ServeConfig(run="checkpoints/demo/fusion/latest"))  # doctest: +SKIP
    """
    import uvicorn

    from vsfusion.inference import Predictor
    from vsfusion.server import create_app, window_length

    if not cfg.run:
        raise ConfigError(
            "no run; pass a fusion run, e.g. python serve.py checkpoints/<dataset>/fusion/latest"
        )
    if not cfg.max_upload_mb > 0:
        raise ConfigError(f"--max_upload_mb {cfg.max_upload_mb}: must be positive")
    if cfg.every < 1:
        raise ConfigError(f"--every {cfg.every}: must be at least 1")
    predictor = Predictor.load(cfg.run, engine=cfg.engine)
    sensor = None
    if cfg.sensor is not None:
        sensor = Path(cfg.sensor)
        if not sensor.is_file():
            raise DataError(f"{sensor}: sensor file not found; check the --sensor path")
        predictor.model_file(True)  # the run has a video + real-sensor model, or why not
        predictor.prepare_sensor(sensor)  # readable, with the training data's channels
    window = window_length(predictor)
    sock = bind(cfg.host, cfg.port)
    try:
        logger.info("loading %s and warming up (window %d frames)", predictor.run, window)
        warm_up(predictor, window, str(sensor) if sensor else None)  # the models load now
        app = create_app(
            predictor,
            sensor=sensor,
            max_upload_mb=cfg.max_upload_mb,
            every=cfg.every,
            window=window,
        )
        host, port = sock.getsockname()[:2]
        if cfg.host not in LOOPBACK:
            logger.warning(
                "listening on %s: anyone who can reach this machine can use the page (no "
                "password); pass --host 127.0.0.1 to keep it to this machine",
                cfg.host,
            )
        logger.info("serving http://%s:%d/ (Ctrl-C to stop)", cfg.host, port)
        config = uvicorn.Config(
            app,
            log_level="info" if cfg.verbose else "warning",
            ws_max_size=16 * 2**20,
            timeout_graceful_shutdown=2,
        )
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
