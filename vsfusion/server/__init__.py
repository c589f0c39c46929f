"""A served page for a trained fusion run: upload a clip or stream the webcam, see the top 5.

The application is :func:`create_app` (FastAPI; the page is ``page.html`` and ``page.js`` beside
this file, plain HTML and JavaScript); ``serve.py`` (:func:`vsfusion.stages.serve.run_serve`)
serves it with uvicorn.
"""

from vsfusion.server.app import (
    FRAME_TYPES,
    MAX_FRAME_BYTES,
    MAX_FRAME_SIDE,
    TOP_K,
    LiveStream,
    ModelRunner,
    create_app,
    decode_frame,
    window_length,
)

__all__ = [
    "FRAME_TYPES",
    "MAX_FRAME_BYTES",
    "MAX_FRAME_SIDE",
    "TOP_K",
    "LiveStream",
    "ModelRunner",
    "create_app",
    "decode_frame",
    "window_length",
]
