"""``noisyarl study serve``: the questionnaire as a small offline web app (FastAPI).

The page (``static/``: HTML, JS and CSS served by this app, nothing from elsewhere) asks for the
participant's code, then shows one image at a time in the participant's own random order with
the private-attribute question, and stores each answer at once (:mod:`noisyarl.study.store`).

API (every ``/api`` call but the first carries the code in the ``X-Participant-Code`` header):

* ``POST /api/session`` ``{"code": ...}`` -> the question, its options and the progress;
* ``GET /api/next`` -> ``{"image_id", "answered", "total", "done"}``;
* ``GET /api/images/{image_id}`` -> the PNG of the participant's current image;
* ``POST /api/answers`` ``{"image_id", "choice"}`` -> the new progress (201).

Responses never carry a method or a true label: images go out under opaque random ids, and the
manifest that maps them stays on the server. Wrong input gets a 4xx JSON answer: 401 for an
unknown code, 404 for an unknown image id, 409 for an image already answered or not the
current one, 422 for a malformed body or a choice that is not an option, 413 for a body over
``max_body_bytes`` (16 KiB by default; refused before it is parsed, whether or not it declares
its length). Error answers never echo the request: a 422 names the field and the problem only.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from noisyarl.study.build import CODES_FILE, IMAGES_DIR, load_study
from noisyarl.study.store import DATABASE_FILE, AnswerRejected, AnswerStore, Progress
from noisyarl.utils.text import excerpt

STATIC_DIR = Path(__file__).parent / "static"
CODE_HEADER = "X-Participant-Code"
#: Largest request body accepted; the API's bodies are a few dozen bytes.
MAX_BODY_BYTES = 16 * 1024
#: Longest piece of a request (a field name, a message) repeated in an error answer.
MAX_ECHO_CHARS = 40
#: Most validation problems listed in one 422 answer.
MAX_LISTED_ERRORS = 5

#: The page loads nothing from other origins; images come back as blobs from our own API.
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: StrictStr = Field(min_length=1, max_length=64)


class AnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image_id: StrictStr = Field(min_length=1, max_length=64)
    choice: StrictInt | StrictStr


def normalise_code(code: str) -> str:
    """Codes are typed by people: ignore case and surrounding spaces.

    >>> normalise_code("  k7qm-2xhd-9rta ")
    'K7QM-2XHD-9RTA'
    """
    return code.strip().upper()


def validation_problems(errors: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic's errors without the offending input: location, message and type, cut short."""
    return [{"loc": [part if isinstance(part, int) else excerpt(str(part), MAX_ECHO_CHARS)
                     for part in error.get("loc", ())],
             "msg": excerpt(str(error.get("msg", "")), 2 * MAX_ECHO_CHARS),
             "type": excerpt(str(error.get("type", "")), MAX_ECHO_CHARS)}
            for error in list(errors)[:MAX_LISTED_ERRORS]]


class BodyLimit:
    """ASGI middleware: refuse (413) a request body over ``limit`` bytes before anything parses it.

    The declared Content-Length is checked first; the body is then read here, keeping at most
    ``limit`` bytes, so a body sent without a length (chunked) or longer than it claims is cut
    off too. The app gets the complete body only when it is within the limit.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self._check_declared_length(scope)
            body = await self._read(receive)
        except HTTPException as refusal:
            answer = JSONResponse({"detail": refusal.detail}, status_code=refusal.status_code)
            await answer(scope, receive, send)
            return
        if body is not None:  # None: the client left before sending all of it
            await self.app(scope, _replay(body, receive), send)

    def _too_large(self) -> HTTPException:
        return HTTPException(413, f"request body exceeds the limit of {self.limit} bytes")

    def _check_declared_length(self, scope: Scope) -> None:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit():
                    raise HTTPException(400, "Content-Length is not a number")
                if int(value) > self.limit:
                    raise self._too_large()

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body (413 as soon as it passes the limit); None if the client left."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields ``body`` once, then passes on to the real one (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def create_app(study_dir: str | Path, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The questionnaire app of the study in ``study_dir``; bodies over ``max_body_bytes``: 413."""
    study_dir = Path(study_dir)
    manifest = load_study(study_dir)
    codes = {normalise_code(line) for line in
             (study_dir / CODES_FILE).read_text(encoding="utf-8").splitlines() if line.strip()}
    image_ids = [item["id"] for item in manifest["items"]]
    store = AnswerStore(study_dir / DATABASE_FILE, image_ids)
    choices = {str(option["value"]) for option in manifest["question"]["options"]}
    public_question = {"text": manifest["question"]["text"],
                       "options": manifest["question"]["options"]}

    app = FastAPI(title="noisyarl user study", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, limit=max_body_bytes)  # inside the security headers

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_problems(error.errors())}, status_code=422)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def participant(code: str | None) -> str:
        """The normalised code, if it is one of the study's (constant-time comparison)."""
        if code is not None:
            code = normalise_code(code)
            if any(hmac.compare_digest(code.encode(), known.encode()) for known in codes):
                return code
        raise HTTPException(401, "unknown participant code")

    def progress_body(progress: Progress) -> dict[str, Any]:
        return {"answered": progress.answered, "total": progress.total,
                "done": progress.next_image is None, "image_id": progress.next_image}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.post("/api/session")
    def session(body: SessionRequest) -> dict[str, Any]:
        code = participant(body.code)
        return {"code": code, "question": public_question, **progress_body(store.start(code))}

    @app.get("/api/next")
    def next_image(code: Annotated[str | None, Header(alias=CODE_HEADER)] = None):
        return progress_body(store.start(participant(code)))

    @app.get("/api/images/{image_id}")
    def image(image_id: str, code: Annotated[str | None, Header(alias=CODE_HEADER)] = None):
        progress = store.start(participant(code))
        if image_id not in store.image_ids:
            raise HTTPException(404, "unknown image id")
        if image_id != progress.next_image:
            raise HTTPException(409, "only the current image is shown")
        return Response((study_dir / IMAGES_DIR / f"{image_id}.png").read_bytes(),
                        media_type="image/png")

    @app.post("/api/answers", status_code=201)
    def answer(body: AnswerRequest,
               code: Annotated[str | None, Header(alias=CODE_HEADER)] = None):
        code = participant(code)
        store.start(code)
        if str(body.choice) not in choices:
            raise HTTPException(422, "choice is not one of the question's options")
        try:
            return progress_body(store.answer(code, body.image_id, str(body.choice)))
        except AnswerRejected as error:
            return JSONResponse({"detail": str(error)}, status_code=error.status)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def serve_study(study_dir: str | Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the study until interrupted (Ctrl-C); answers are in ``study_dir/answers.sqlite``."""
    import uvicorn

    app = create_app(study_dir)
    print(f"user study on http://{host}:{port}/ (answers in {Path(study_dir) / DATABASE_FILE})")
    uvicorn.run(app, host=host, port=port, log_level="warning")
