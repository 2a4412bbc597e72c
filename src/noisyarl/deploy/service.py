"""The server half of split inference: a FastAPI app that hosts a run's utility head.

Endpoints (JSON answers; errors are ``{"error": {"status": int, "message": str}}``):

* ``GET /health``: ``{"status": "ok"}``, no authentication (for load balancers).
* ``GET /v1/model``: the contract: expected z shape, accepted wire dtypes, batch and body limits,
  the utility task (label, kind, class names), the method and run, and the input images'
  ``image_size`` and ``preprocessing`` (see :func:`noisyarl.deploy.export.run_preprocessing`).
* ``POST /v1/predict``: body = one z tensor in the wire format of :mod:`noisyarl.deploy.wire`;
  answer = the utility head's outputs, predictions and (for classification) probabilities.

Every request is validated before the model sees it: body size (413, checked on the declared
length and again while reading), readable safetensors (400), tensor name, dtype, shape, finite
values (422), batch size (413). A z that is finite but so extreme that the utility head's
outputs are not (NaN or infinite logits or values) is refused too (422), so an answer never
carries a ``null`` where a number belongs. Error messages quote at most a short excerpt of the
body. ``/v1/model`` also says how the device must prepare images (``image_size`` and
``preprocessing``: crop, resize, range, layout), as the utility head only answers sensibly for z
made from images prepared like the run's. With a token configured, ``/v1/*`` needs
``Authorization: Bearer <token>`` (401 otherwise). A rejected request never stops the server.
The server only ever receives z: the image stays on the device.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from torch import nn

from noisyarl.data.tasks import Task
from noisyarl.deploy.export import run_preprocessing
from noisyarl.deploy.wire import MEDIA_TYPE, WIRE_DTYPES, RequestRejected, decode_z, max_body_bytes


@dataclass
class ServiceSettings:
    """token: bearer token required on ``/v1/*`` (None: no authentication).
    max_batch: most samples per request. max_body_bytes: None = ``max_batch`` float32 samples
    plus the header allowance (:func:`noisyarl.deploy.wire.max_body_bytes`)."""

    token: str | None = None
    max_batch: int = 64
    max_body_bytes: int | None = None


class UtilityModel:
    """The utility head with its contract: z shape [C, h, w] (or [D]) and the utility task."""

    def __init__(self, utility_head: nn.Module, task: Task, z_shape: Sequence[int],
                 info: dict[str, Any] | None = None) -> None:
        self.utility_head = utility_head.cpu().float().eval()
        self.task = task
        self.z_shape = tuple(int(size) for size in z_shape)
        self.info = dict(info or {})

    def predict(self, z: torch.Tensor) -> dict[str, Any]:
        """Outputs for z [B, *z_shape]: raw outputs, predicted classes, probabilities.

        Raises :class:`RequestRejected` (422) when any output is NaN or infinite (finite
        logits always give finite probabilities: sigmoid and softmax are computed stably).
        """
        with torch.inference_mode():
            outputs = self.utility_head(z).float()
        if not bool(torch.isfinite(outputs).all()):
            raise RequestRejected(422, "the utility head's outputs are not finite for this z "
                                       f"(max |z| = {float(z.abs().max()):.3g}); z must come "
                                       "from the run's exported client")
        return prediction_payload(outputs, self.task)


def prediction_payload(outputs: torch.Tensor, task: Task) -> dict[str, Any]:
    """JSON-ready answer for utility-head outputs [B, n] (logits, or regression values)."""
    probabilities: list | None = None
    if task.kind == "binary":
        logits = outputs.reshape(-1)
        predictions = (logits > 0).long().tolist()
        probabilities = torch.sigmoid(logits).tolist()
    elif task.kind == "multiclass":
        predictions = outputs.argmax(dim=1).tolist()
        probabilities = torch.softmax(outputs, dim=1).tolist()
    else:
        predictions = outputs.tolist()
    class_names = list(task.info.class_names) if task.info.class_names else None
    return {"task": task.label, "kind": task.kind, "batch_size": int(outputs.shape[0]),
            "outputs": outputs.tolist(), "predictions": predictions,
            "probabilities": probabilities, "class_names": class_names}


def utility_model_from_run(run_dir: str | Path) -> UtilityModel:
    """The utility head of a finished run, with the z shape its client produces."""
    from noisyarl.runners.runs import load_run

    run = load_run(run_dir)
    with torch.no_grad():
        z = run.defence.client.eval()(torch.zeros(1, *run.image_shape))
    info = {"method": run.defence.name, "run": run.config.run_name(),
            "split": run.config.method.split, "sigma": run.config.method.sigma,
            "image_size": run.config.data.image_size, "preprocessing": run_preprocessing(run)}
    return UtilityModel(run.defence.utility_head, run.utility, z.shape[1:], info)


def create_app(model: UtilityModel, settings: ServiceSettings | None = None) -> FastAPI:
    """The FastAPI application serving ``model`` (see the module docstring for the API)."""
    settings = settings or ServiceSettings()
    body_limit = settings.max_body_bytes or max_body_bytes(model.z_shape, settings.max_batch)
    app = FastAPI(title="noisyarl utility service", docs_url=None, redoc_url=None,
                  openapi_url=None)

    @app.exception_handler(RequestRejected)
    async def rejected(request: Request, error: RequestRejected) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return JSONResponse({"error": {"status": error.status, "message": str(error)}},
                            status_code=error.status, headers=headers)

    async def authorised(request: Request) -> None:
        if settings.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), settings.token.encode()):
            raise RequestRejected(401, "missing or wrong bearer token")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/model", dependencies=[Depends(authorised)])
    async def model_info() -> dict[str, Any]:
        task = model.task
        return {**model.info, "z_shape": list(model.z_shape), "wire_dtypes": list(WIRE_DTYPES),
                "media_type": MEDIA_TYPE, "max_batch": settings.max_batch,
                "max_body_bytes": body_limit, "auth": settings.token is not None,
                "utility_task": {"label": task.label, "kind": task.kind,
                                 "num_outputs": task.num_outputs,
                                 "class_names": list(task.info.class_names or []) or None}}

    @app.post("/v1/predict", dependencies=[Depends(authorised)])
    async def predict(request: Request) -> dict[str, Any]:
        body = await read_body(request, body_limit)
        z = decode_z(body, model.z_shape, settings.max_batch)
        return await run_in_threadpool(model.predict, z)

    return app


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestRejected(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise RequestRejected(413, f"body of {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestRejected(413, f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8000,
          settings: ServiceSettings | None = None) -> None:
    """Serve the utility head of ``run_dir`` with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(utility_model_from_run(run_dir), settings), host=host, port=port,
                log_level="info")
