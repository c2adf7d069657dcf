"""The learner service: ``POST /transcribe`` over HTTP and the page at ``/``.

One FastAPI app serves one or more packaged models (one per language, say).
A request carries a recording (multipart field ``audio``), optionally the
sentence the learner meant (``text``) and which model to use (``model`` or
``language``); the answer is ``Transcription.to_dict()``, the same JSON as
``dualasr transcribe --format json``. Endpoints, limits and errors: docs/serve.md.

Inference is blocking (torch), so it runs in worker threads, at most
``workers`` at a time; requests beyond that wait without holding the event
loop, which keeps answering ``/models`` and the page meanwhile. Nothing of a
request is kept after its response unless ``keep_uploads`` names a directory.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import anyio
import soundfile as sf
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from dualasr.errors import DualasrError

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_SECONDS = 60.0
MAX_TEXT_CHARS = 1000
# Multipart boundaries and the small form fields ride in the same request body
# as the file; the body limit leaves them this much room above the file limit.
FORM_OVERHEAD_BYTES = 64 * 1024


class Error(BaseModel):
    """Every error the API returns: one sentence naming the input."""

    detail: str


ERRORS = {
    413: {"model": Error, "description": "The upload is larger than the server's limit."},
    422: {"model": Error, "description": "Not audio, empty, truncated, too long, or an unknown model."},
}


def model_key(package) -> str:
    """How a request names a package: ``<language>-<name>``, e.g. ``en-do``."""
    return f"{package.language}-{package.name}"


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.3g} MB"


class UploadLimit:
    """Refuses a request body over ``limit`` bytes with 413: by its Content-Length
    before a byte is read, else (a chunked body) as soon as the bytes read pass
    the limit, so an oversize upload is never buffered whole."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            too_large = JSONResponse({"detail": upload_too_large(self.limit)}, status_code=413)
            return await too_large(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                # Raised inside the form parser; FastAPI passes an HTTPException on
                # to the app's handlers, which answer with JSON.
                raise HTTPException(413, upload_too_large(self.limit))
            return message

        await self.app(scope, counted, send)


def upload_too_large(limit: int) -> str:
    return f"the upload is larger than this server's limit of {_mb(limit - FORM_OVERHEAD_BYTES)}"


def create_app(
    packages: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    *,
    transcribe_fn: Callable | None = None,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_seconds: float = MAX_SECONDS,
    workers: int = 2,
    keep_uploads: Path | None = None,
) -> FastAPI:
    """The service's ASGI app.

    ``packages`` maps a model key to a loaded package (``load_package``), the
    first being the default, or is a function returning that mapping, called
    once when the server starts. ``transcribe_fn(package, audio, *, text=None)``
    defaults to ``dualasr.learner.transcribe.transcribe``; ``audio`` is what
    ``load_audio`` returns (float32, 16 kHz, mono). ``workers`` bounds how
    many transcriptions run at once; ``keep_uploads`` is a directory where
    each recording and its result are saved (otherwise nothing is written).
    """
    # Imported here, not at module level: the learner API is loaded only by a
    # process that serves.
    from dualasr.learner.transcribe import load_audio

    if transcribe_fn is None:
        from dualasr.learner.transcribe import transcribe as transcribe_fn
    if keep_uploads is not None:
        keep_uploads.mkdir(parents=True, exist_ok=True)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        loaded = packages() if callable(packages) else packages
        if not loaded:
            raise DualasrError("dualasr serve needs at least one model package")
        app.state.packages = dict(loaded)
        app.state.limiter = anyio.CapacityLimiter(workers)
        yield

    app = FastAPI(
        title="dualasr learner service",
        summary="What a learner said (surface), what they meant (meaning), and where the two differ.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        # One sentence instead of pydantic's list, like every other error here.
        parts = [f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(parts)}, status_code=422)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        # uvicorn logs the traceback; the client gets JSON like every other error.
        return JSONResponse({"detail": "Internal Server Error"}, status_code=500)

    app.add_middleware(UploadLimit, limit=max_upload_bytes + FORM_OVERHEAD_BYTES)

    def choose(model: str | None, language: str | None):
        loaded = app.state.packages
        if model:
            if model not in loaded:
                raise HTTPException(422, f"unknown model {model!r}; this server has: {', '.join(loaded)}")
            return loaded[model]
        if language:
            for package in loaded.values():
                if package.language == language:
                    return package
            langs = sorted({p.language for p in loaded.values()})
            raise HTTPException(422, f"no model for language {language!r}; this server has: {', '.join(langs)}")
        return next(iter(loaded.values()))

    def check_duration(name: str, seconds: float) -> None:
        if seconds > max_seconds:
            raise HTTPException(422, f"{name}: {seconds:.1f} s of audio is longer than this server's "
                                     f"limit of {max_seconds:g} s")  # fmt: skip

    def run(package, data: bytes, name: str, text: str | None) -> dict:
        """Decode and transcribe one upload (in a worker thread)."""
        # The header alone tells the length: a long recording is refused before it
        # is decoded. A header soundfile cannot read is load_audio's to explain.
        with contextlib.suppress(sf.SoundFileError):
            check_duration(name, sf.info(io.BytesIO(data)).duration)
        try:
            audio, duration = load_audio(data)
            check_duration(name, duration)
            result = transcribe_fn(package, audio, text=text).to_dict()
        except DualasrError as e:
            raise HTTPException(422, f"{name}: {e}") from None
        if keep_uploads is not None:
            stem = keep_uploads / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
            stem.with_suffix(Path(name).suffix or ".audio").write_bytes(data)
            stem.with_suffix(".json").write_text(json.dumps({"text": text, "result": result}, ensure_ascii=False))
        return result

    @app.post(
        "/transcribe",
        responses=ERRORS,
        summary="Transcribe a recording: surface, meaning and their differences, with times.",
    )
    async def transcribe(
        audio: Annotated[UploadFile, File(description="The recording: WAV, FLAC or OGG, any sample rate.")],
        text: Annotated[str | None, Form(description="The sentence the learner meant; else the model's meaning output.",
                                         max_length=MAX_TEXT_CHARS)] = None,  # fmt: skip
        model: Annotated[str | None, Form(description="A key from GET /models; default: the first.")] = None,
        language: Annotated[str | None, Form(description="Or the first model of this language (en, ko).")] = None,
    ) -> dict:
        """The JSON of ``dualasr transcribe --format json`` (version 1): ``surface``,
        ``meaning``, ``diff`` with Azure's ``ErrorType`` / ``Offset`` / ``Duration``
        (100-ns ticks), ``reliable`` and ``warnings``."""
        package = choose(model, language)
        name = audio.filename or "audio"
        data = await audio.read()
        if len(data) > max_upload_bytes:  # under the body limit only thanks to the form overhead
            raise HTTPException(413, upload_too_large(max_upload_bytes + FORM_OVERHEAD_BYTES))
        if not data:
            raise HTTPException(422, f"{name}: the file is empty")
        text = text.strip() if text else None
        return await anyio.to_thread.run_sync(run, package, data, name, text, limiter=app.state.limiter)

    @app.get("/models", summary="The loaded model packages, what they were trained on, and the limits.")
    async def models() -> dict:
        return {
            "models": [
                {"model": key, "name": p.name, "label": p.label, "language": p.language,
                 "trained_on": jsonable_encoder(p.provenance)}
                for key, p in app.state.packages.items()
            ],  # fmt: skip
            "limits": {"max_upload_bytes": max_upload_bytes, "max_seconds": max_seconds,
                       "max_text_chars": MAX_TEXT_CHARS},  # fmt: skip
        }

    page = resources.files(__package__).joinpath("serve_page.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    return app


@contextlib.contextmanager
def running(app: FastAPI, host: str = "127.0.0.1", port: int = 0, **uvicorn_options) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread; yields its base URL
    (``port=0``: a free port) and stops the server on exit. For tests,
    benchmarks and notebooks; ``dualasr serve`` runs uvicorn in the foreground."""
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **uvicorn_options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start (see the log above)")
            time.sleep(0.01)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
