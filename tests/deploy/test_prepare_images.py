"""Preparing a device's own images like the run's training images (`noisyarl.client`)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from noisyarl.client import LocalObfuscator, prepare_images
from noisyarl.data.base import DatasetError
from noisyarl.data.celeba import CelebAFaces
from noisyarl.data.fairface import FairFaceDataset
from noisyarl.deploy.service import ServiceSettings, create_app, utility_model_from_run

README = Path(__file__).resolve().parents[2] / "README.md"


def _bands(width: int = 20, height: int = 40) -> Image.Image:
    """Red top quarter, blue bottom quarter, green in between."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, :, 1] = 255
    pixels[: height // 4] = (255, 0, 0)
    pixels[-height // 4:] = (0, 0, 255)
    return Image.fromarray(pixels)


def test_centre_crop_keeps_the_middle_square_and_none_keeps_everything():
    centre = prepare_images(_bands(), 10, crop="center")
    assert centre.shape == (1, 3, 10, 10) and centre.dtype == torch.float32
    assert torch.equal(centre[0, 1], torch.ones(10, 10)) and centre[0, [0, 2]].max() == 0
    whole = prepare_images(_bands(), 10, crop="none")
    assert whole[0, 0, 0].min() == 1.0 and whole[0, 2, -1].min() == 1.0  # red top, blue bottom
    assert 0.0 <= float(whole.min()) and float(whole.max()) <= 1.0


def test_a_file_path_gives_the_celeba_training_pixels(tiny_celeba_root):
    faces = CelebAFaces(tiny_celeba_root, split="train", image_size=40)
    path = faces._image_path(0)
    expected = faces.load_image(0).float() / 255
    from_path = prepare_images(path, 40, crop="center")
    assert torch.equal(from_path[0], expected)
    from_pil = prepare_images([Image.open(path), str(path)], 40, crop="center")
    assert from_pil.shape == (2, 3, 40, 40)
    assert torch.equal(from_pil[0], expected) and torch.equal(from_pil[1], expected)


def test_no_crop_gives_the_fairface_training_pixels(tiny_fairface_root):
    faces = FairFaceDataset(tiny_fairface_root, split="train", image_size=32)
    path = faces.folder / faces.files[0]
    assert torch.equal(prepare_images(path, 32, crop="none")[0], faces.load_image(0) / 255)


def test_grey_and_transparent_images_become_rgb():
    grey = Image.new("L", (16, 16), 51)
    rgba = Image.new("RGBA", (16, 16), (255, 0, 0, 128))
    images = prepare_images([grey, rgba], 8, crop="none")
    assert images.shape == (2, 3, 8, 8)
    assert torch.allclose(images[0], torch.full((3, 8, 8), 0.2))
    assert torch.equal(images[1, 0], torch.ones(8, 8))


def test_bad_requests_are_refused_with_a_reason(tmp_path):
    with pytest.raises(ValueError, match="crop must be one of"):
        prepare_images(_bands(), 10, crop="middle")
    with pytest.raises(ValueError, match="image_size"):
        prepare_images(_bands(), 0)
    with pytest.raises(ValueError, match="no images"):
        prepare_images([], 10)
    with pytest.raises(DatasetError, match="missing image file"):
        prepare_images(tmp_path / "nope.jpg", 10)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="broken.jpg"):
        prepare_images(tmp_path / "broken.jpg", 10)


def test_the_obfuscator_prepares_with_the_size_and_crop_of_its_run(tiny_onnx_export):
    obfuscator = LocalObfuscator(tiny_onnx_export)
    images = obfuscator.prepare(_bands(30, 70))
    assert torch.equal(images, prepare_images(_bands(30, 70), 40, crop="center"))
    assert obfuscator(images).shape == (1, 128, 5, 5)


def _readme_client_snippet() -> str:
    section = README.read_text(encoding="utf-8").split("## Shipping the client")[1]
    return re.search(r"```python\n(.*?)\n```", section, flags=re.DOTALL).group(1)


def test_the_readme_client_snippet_runs_as_written(tiny_run_dir, tiny_onnx_export, tmp_path,
                                                   loopback_server, capsys):
    snippet = _readme_client_snippet()
    photos = re.findall(r'"([\w-]+\.(?:jpg|png))"', snippet)
    assert photos, "the snippet should prepare image files"
    for index, name in enumerate(photos):
        _bands(30 + index, 60).save(tmp_path / name)
    app = create_app(utility_model_from_run(tiny_run_dir), ServiceSettings(token="..."))
    with loopback_server(app) as server:
        code = (snippet.replace("runs/x/export/client.onnx", str(tiny_onnx_export))
                .replace("http://127.0.0.1:8000", server.url))
        for name in photos:
            code = code.replace(f'"{name}"', repr(str(tmp_path / name)))
        exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert re.match(r"\[[01](, [01])*\] \[", printed), printed
