"""Client SDK of split inference: obfuscate on the device, send only ``z``, get the prediction.

Example (with ``noisyarl serve RUN_DIR`` running)::

    obfuscator = LocalObfuscator("runs/x/export/client.onnx")
    images = obfuscator.prepare(["face1.jpg", "face2.jpg"])  # cropped and resized like the run's
    with SplitInferenceClient("http://127.0.0.1:8000", obfuscator, token="...") as client:
        prediction = client.predict(images)   # images [B, 3, S, S] in [0, 1]
        prediction.predictions                # e.g. [1, 0] for "Smiling"

Images must be prepared as the run's training images were, or the predictions are meaningless:
:func:`prepare_images` does it (RGB, centre crop for CelebA runs, resize to the run's size,
float32 in [0, 1], NCHW), and :meth:`LocalObfuscator.prepare` reads the size and the crop from
the exported file's metadata.

The image never leaves the process: :class:`LocalObfuscator` runs the exported client (ONNX
Runtime or TorchScript, noise inside) and :class:`SplitInferenceClient` sends the resulting z in
the wire format of :mod:`noisyarl.deploy.wire`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from noisyarl.data.celeba import centre_square_box
from noisyarl.data.folder import image_to_tensor, open_rgb, resize_square
from noisyarl.deploy.export import CROP_WORDS, ExportedClient
from noisyarl.deploy.wire import MEDIA_TYPE, encode_z

#: An image for :func:`prepare_images`: a PIL image or the path of an image file.
ImageSource = str | Path | Image.Image


class ServiceError(RuntimeError):
    """The server rejected a request; ``status`` is its HTTP status, the message its reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def prepare_images(sources: ImageSource | Sequence[ImageSource], image_size: int,
                   crop: str = "center") -> torch.Tensor:
    """Images as a run's client takes them: float32 [B, 3, image_size, image_size] in [0, 1].

    sources: one or several PIL images or image file paths (any mode; converted to RGB).
    crop: ``"center"`` crops the centred square of side min(width, height) first, as CelebA
    runs do; ``"none"`` resizes the whole image, as FairFace, CIFAR-10 and folder runs do.
    The resize is the data layer's (bilinear), so the pixels match the run's training images.
    """
    if crop not in CROP_WORDS:
        raise ValueError(f"crop must be one of {', '.join(map(repr, CROP_WORDS))}, got {crop!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be an integer >= 1, got {image_size!r}")
    if isinstance(sources, (str, Path, Image.Image)):
        sources = [sources]
    if len(sources) == 0:
        raise ValueError("no images to prepare")
    squares = [resize_square(_cropped(_rgb(source), crop), image_size) for source in sources]
    return torch.stack([image_to_tensor(square) for square in squares]).float().div_(255.0)


def _rgb(source: ImageSource) -> Image.Image:
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    if isinstance(source, (str, Path)):
        return open_rgb(Path(source))
    raise TypeError(f"expected a PIL image or an image file path, got {type(source).__name__}")


def _cropped(image: Image.Image, crop: str) -> Image.Image:
    if crop == "none":
        return image
    left, top, side = centre_square_box(*image.size)
    return image.crop((left, top, left + side, top + side))


class LocalObfuscator(ExportedClient):
    """An exported client for use on the device.

    A file exported with ``--no-noise`` is for verification only: opening one raises
    ``ValueError`` unless ``allow_no_noise=True``.
    """

    def __init__(self, path: str | Path, threads: int | None = None,
                 allow_no_noise: bool = False) -> None:
        super().__init__(path, threads)
        if self.metadata.get("verification_only") and not allow_no_noise:
            raise ValueError(f"{self.path} was exported with --no-noise (verification only); "
                             "ship the default export, which keeps the noise inside")

    def prepare(self, sources: ImageSource | Sequence[ImageSource],
                crop: str | None = None) -> torch.Tensor:
        """``sources`` prepared like the run's images (:func:`prepare_images`).

        The size comes from the file; the crop too, unless the file predates that record (then
        pass ``crop="center"`` for a CelebA run, ``"none"`` otherwise).
        """
        crop = crop or self.metadata.get("preprocessing", {}).get("crop")
        if crop is None:
            raise ValueError(f"{self.path} does not record how its run cropped images; pass "
                             "crop='center' (CelebA runs) or crop='none' (the other datasets)")
        return prepare_images(sources, int(self.image_shape[-1]), crop)


@dataclass
class Prediction:
    """The server's answer. outputs: [B, n] raw utility outputs (logits or regression values);
    predictions: class per sample (or the values); probabilities: per sample (binary: P(class
    1); multi-class: [B, k]), None for regression."""

    outputs: np.ndarray
    predictions: list[Any]
    probabilities: list[Any] | None
    class_names: list[str] | None
    task: str


class SplitInferenceClient:
    """Talks to ``noisyarl serve``: sends z in ``wire_dtype`` (float32, bfloat16 or float16)."""

    def __init__(self, server_url: str, obfuscator: LocalObfuscator | str | Path,
                 token: str | None = None, wire_dtype: str = "float32",
                 timeout: float = 30.0) -> None:
        import httpx

        self.obfuscator = (obfuscator if isinstance(obfuscator, LocalObfuscator)
                           else LocalObfuscator(obfuscator))
        self.wire_dtype = wire_dtype
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=server_url.rstrip("/"), headers=headers,
                                  timeout=timeout)
        self._checked_contract = False

    def __enter__(self) -> SplitInferenceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def health(self) -> dict[str, Any]:
        return self._answer(self._http.get("/health"))

    def model_info(self) -> dict[str, Any]:
        return self._answer(self._http.get("/v1/model"))

    def predict(self, images: np.ndarray | torch.Tensor) -> Prediction:
        """Obfuscate ``images`` [B, 3, S, S] in [0, 1] locally and ask for the utility."""
        return self.predict_z(self.obfuscator(images))

    def predict_z(self, z: np.ndarray | torch.Tensor) -> Prediction:
        """Send an already obfuscated z [B, *z_shape]."""
        if not self._checked_contract:
            self._check_contract()
        tensor = torch.as_tensor(np.asarray(z)) if not isinstance(z, torch.Tensor) else z
        body = encode_z(tensor, self.wire_dtype)
        answer = self._answer(self._http.post("/v1/predict", content=body,
                                              headers={"Content-Type": MEDIA_TYPE}))
        return Prediction(np.asarray(answer["outputs"], dtype=np.float32), answer["predictions"],
                          answer["probabilities"], answer["class_names"], answer["task"])

    def _check_contract(self) -> None:
        expected = list(self.model_info()["z_shape"])
        if list(self.obfuscator.z_shape) != expected:
            raise ValueError(f"the obfuscator makes z of shape {list(self.obfuscator.z_shape)} "
                             f"but the server expects {expected}: export and serve the same run")
        self._checked_contract = True

    @staticmethod
    def _answer(response: Any) -> dict[str, Any]:
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text
            raise ServiceError(response.status_code, message)
        return response.json()
