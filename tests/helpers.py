"""Shared test material: tiny models, image factories, synthetic splits and reference computations.

Test modules import from here (``from ..helpers import ...``), never from each other.

* models: :class:`Tiny` (identity features, a chosen pooling, a Linear), :class:`Brightness` (the map
  is the picture itself), :class:`GapLinear` (a small exact CNN), :class:`MLPHead` (a non-affine head);
* model state: :func:`snapshot` / :func:`assert_same`, :func:`hooks_left`, :func:`prepared`;
* references: :func:`gradient_reference` (plain autograd maps); :func:`assert_same_localizations`,
  :func:`pixel_tolerance`
  (an exported localizer's results against ``camloc.boxes``'s);
* images: :func:`painted`, :func:`noise_photo`, :func:`save_image`, :func:`png_declaring`,
  :func:`messy_folder`;
* splits (wsolevaluation metadata): :func:`write_split`, :func:`synthetic_split`, :func:`two_class_split`.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from .conftest import EXAMPLES

CAT = str(EXAMPLES / "cat.jpg")
COFFEE = str(EXAMPLES / "coffee.jpg")
ROCKET = str(EXAMPLES / "rocket.jpg")

#: Preprocessing without normalisation: network input = pixel / 255.
PLAIN = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), interpolation="bilinear")


# -- tiny models ------------------------------------------------------------------------------------


class Tiny(nn.Module):
    """Features = the input (a 1x1 identity conv), then a chosen pooling and a Linear.

    ``pool``: ``avg``, ``max``, ``catavgmax`` or ``reluavg`` (ReLU then average, as torchvision's
    DenseNet does it functionally); ``norm``: an optional module on the pooled vector.
    """

    def __init__(self, weight, bias, pool="avg", norm=None):
        super().__init__()
        c = weight.shape[1] if pool != "catavgmax" else weight.shape[1] // 2
        self.features = nn.Conv2d(c, c, 1, bias=False)
        with torch.no_grad():
            self.features.weight.copy_(torch.eye(c).view(c, c, 1, 1))
        self.pool = pool
        self.norm = norm
        self.fc = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(weight)
            self.fc.bias.copy_(bias)

    def forward(self, x):
        f = self.features(x)
        if self.pool == "avg":
            p = f.mean((2, 3))
        elif self.pool == "max":
            p = f.amax((2, 3))
        elif self.pool == "catavgmax":
            p = torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1)
        else:  # relu then avg
            p = torch.relu(f).mean((2, 3))
        if self.norm is not None:
            p = self.norm(p)
        return self.fc(p)


class Brightness(nn.Module):
    """features = relu(sum of RGB) at input resolution; GAP; Linear(1 -> 2) with weights +1 / -1.

    Class 0's CAM is the (summed) picture itself, so its box is the bright object we painted.
    """

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 1, 1), nn.ReLU())
        self.fc = nn.Linear(1, 2)
        with torch.no_grad():
            self.features[0].weight.fill_(1.0)
            self.features[0].bias.zero_()
            self.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


class GapLinear(nn.Module):
    """A tiny exact CNN: conv, ReLU, conv, ReLU (the feature map), GAP, Linear."""

    def __init__(self, num_classes: int = 5, width: int = 6):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


class MLPHead(nn.Module):
    """A non-affine head: features (conv, ReLU), GAP, Linear, ReLU, Linear.

    ``features`` and ``head`` are separate so a test can run them apart (the reference gradient).
    """

    def __init__(self, num_classes: int = 4, width: int = 8, hidden: int = 16):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, hidden), nn.ReLU(),
                                  nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


# -- model state --------------------------------------------------------------------------------------

#: The per-module hook registries a hook-free model has empty.
HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def hook_counts(model: nn.Module) -> list[tuple[int, ...]]:
    return [tuple(len(getattr(m, d, {})) for d in HOOK_DICTS) for m in model.modules()]


def hooks_left(model: nn.Module) -> dict[str, list[str]]:
    """``{module name: [non-empty hook dicts]}``, empty for a hook-free model (global hooks under ``*``)."""
    found = {name or "<root>": [d for d in HOOK_DICTS if getattr(m, d, None)] for name, m in model.named_modules()}
    from torch.nn.modules import module as torch_module

    found["*"] = [d for d in ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                              "_global_backward_pre_hooks") if getattr(torch_module, d, None)]
    return {k: v for k, v in found.items() if v}


def snapshot(model: nn.Module) -> dict:
    """Everything camloc promises not to change on a user's model."""
    return {
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grad": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "hooks": hook_counts(model),
        "attributes": sorted(vars(model)),
    }


def assert_same(before: dict, after: dict) -> None:
    assert before["training"] == after["training"]
    assert before["requires_grad"] == after["requires_grad"]
    for a, b in zip(before["grad"], after["grad"], strict=True):
        assert (a is None and b is None) or torch.equal(a, b)
    assert before["state"].keys() == after["state"].keys()
    for k in before["state"]:
        assert torch.equal(before["state"][k], after["state"][k]), k
    assert before["hooks"] == after["hooks"]
    assert before["attributes"] == after["attributes"]


def prepared(name: str, num_classes: int = 6) -> nn.Module:
    """A timm model as a user may hand it over: training mode with one submodule in eval, a frozen
    parameter, a ``.grad`` set, and a forward hook of the user's own."""
    import timm

    model = timm.create_model(name, num_classes=num_classes)
    model.train()
    list(model.modules())[3].eval()  # mixed flags must come back as they were
    params = list(model.parameters())
    params[0].requires_grad_(False)
    params[-1].grad = torch.ones_like(params[-1])
    model.register_forward_hook(lambda *a: None)
    return model


# -- references ----------------------------------------------------------------------------------------


def gradient_reference(model: nn.Module, feature_layer: str, x: torch.Tensor, classes: torch.Tensor,
                       nwc: bool = False) -> torch.Tensor:
    """Gradient maps by plain autograd: ``w[b,k,c] = sum_xy d logit_k / d F_c``, ``M = sum_c w F_c``.

    The whole model runs in eval mode with gradients on; the feature layer's output is replaced by a
    leaf tensor so autograd gives ``d logit / d F``. The model's flags are restored afterwards.
    """
    layer = model.get_submodule(feature_layer)
    kept: dict[str, torch.Tensor] = {}

    def as_leaf(_m, _args, out):
        kept["F"] = out.detach().requires_grad_(True)
        return kept["F"] * 1.0  # the head may work in place on its input

    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    handle = layer.register_forward_hook(as_leaf)
    try:
        with torch.enable_grad():
            logits = model(x)
            weights = []
            for j in range(classes.shape[1]):
                (g,) = torch.autograd.grad(logits.gather(1, classes[:, j:j + 1]).sum(), kept["F"], retain_graph=True)
                weights.append(g.sum((2, 3)))
    finally:
        handle.remove()
        for m, flag in flags:
            m.training = flag
    w = torch.stack(weights, 1)
    if nwc:
        w = w.clamp_min(0)
    return torch.einsum("bkc,bchw->bkhw", w, kept["F"].detach())


# -- images -----------------------------------------------------------------------------------------------


def painted(width: int, height: int, *rects: Sequence[int], value: int = 255) -> Image.Image:
    """A black RGB picture with white (``value``) rectangles ``(x0, y0, x1, y1)``, edges exclusive."""
    arr = np.zeros((height, width, 3), np.uint8)
    for x0, y0, x1, y1 in rects:
        arr[y0:y1, x0:x1] = value
    return Image.fromarray(arr)


def noise_photo(w: int = 64, h: int = 48, seed: int = 0) -> Image.Image:
    """Uniform random RGB noise."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def save_image(folder: Path, name: str, img: Image.Image, **kw) -> Path:
    path = Path(folder) / name
    img.save(path, **kw)
    return path


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (the pixel data is not there)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


def messy_folder(root: Path) -> Path:
    """A folder tree of good photos and every kind of bad file (5 good, 4 bad, one non-image)."""
    (root / "sub" / "deeper").mkdir(parents=True)
    shutil.copy(EXAMPLES / "cat.jpg", root / "a_cat.jpg")
    shutil.copy(EXAMPLES / "coffee.jpg", root / "sub" / "b_coffee.jpg")
    Image.open(EXAMPLES / "rocket.jpg").convert("CMYK").save(root / "sub" / "deeper" / "c_rocket_cmyk.jpg")
    Image.open(EXAMPLES / "cat.jpg").convert("L").save(root / "d_gray.png")
    (root / "e_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    data = (EXAMPLES / "coffee.jpg").read_bytes()
    (root / "f_truncated.jpg").write_bytes(data[: len(data) // 3])
    Image.new("RGB", (1, 1)).save(root / "g_tiny.png")
    (root / "h_bomb.png").write_bytes(png_declaring(100_000, 100_000))  # a huge header, no pixels
    Image.open(EXAMPLES / "cat.jpg").convert("P").save(root / "sub" / "i_palette.png")
    (root / "notes.txt").write_text("not an image, and not picked up by extension")
    return root


# -- splits (wsolevaluation metadata layout) --------------------------------------------------------------


def write_split(folder: Path, rows, boxes, final_newline: bool = False, masks: Optional[list[str]] = None) -> None:
    """Metadata files for ``rows`` ``(image_id, label, width, height)`` and box lines ``id,x0,y0,x1,y1``."""
    folder.mkdir(parents=True, exist_ok=True)
    end = "\n" if final_newline else ""
    (folder / "image_ids.txt").write_text("\n".join(r[0] for r in rows) + end)
    (folder / "class_labels.txt").write_text("\n".join(f"{r[0]},{r[1]}" for r in rows) + end)
    (folder / "image_sizes.txt").write_text("\n".join(f"{r[0]},{r[2]},{r[3]}" for r in rows) + end)
    (folder / "localization.txt").write_text("\n".join(boxes) + end)
    if masks is not None:
        (folder / "mask_localization.txt").write_text("\n".join(masks) + end)


def synthetic_split(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Six white rectangles on black, class 0, with boxes and masks: the Brightness model's CAM is the
    rectangle itself. Returns ``(metadata folder, images folder, masks folder)``."""
    images, meta = tmp_path / "images", tmp_path / "meta"
    images.mkdir()
    (tmp_path / "masks").mkdir()
    rows, boxes, masks = [], [], []
    rng = np.random.default_rng(0)
    for i in range(6):
        w, h = int(rng.integers(200, 400)), int(rng.integers(200, 400))
        x0, y0 = int(rng.integers(20, w // 3)), int(rng.integers(20, h // 3))
        x1, y1 = int(rng.integers(2 * w // 3, w - 20)), int(rng.integers(2 * h // 3, h - 20))
        arr = np.zeros((h, w, 3), np.uint8)
        arr[y0:y1, x0:x1] = 255
        Image.fromarray(arr).save(images / f"{i}.png")
        Image.fromarray(arr[..., 0]).save(tmp_path / "masks" / f"{i}.png")
        rows.append((f"{i}.png", 0, w, h))
        boxes.append(f"{i}.png,{x0},{y0},{x1 - 1},{y1 - 1}")
        masks.append(f"{i}.png,{i}.png,")
    write_split(meta, rows, boxes, masks=masks)
    return meta, images, tmp_path / "masks"


def two_class_split(tmp_path: Path, n: int = 8) -> Path:
    """``n`` 160 x 120 pictures of two classes (a red or a green rectangle over faint noise) with
    metadata in ``tmp_path/meta``, images in ``tmp_path/images``, and a random-init timm resnet18
    checkpoint (no network needed), whose path is returned."""
    import timm

    images = tmp_path / "images"
    images.mkdir()
    rows, boxes = [], []
    rng = np.random.default_rng(0)
    for i in range(n):
        arr = np.zeros((120, 160, 3), np.uint8)
        arr[30:90, 40:120, i % 2] = 255
        arr += rng.integers(0, 20, arr.shape, dtype=np.uint8)
        Image.fromarray(arr).save(images / f"{i}.png")
        rows.append((f"{i}.png", i % 2, 160, 120))
        boxes.append(f"{i}.png,40,30,119,89")
    write_split(tmp_path / "meta", rows, boxes)
    ckpt = tmp_path / "r18.pth"
    with torch.random.fork_rng():  # the same weights every time, the caller's random state untouched
        torch.manual_seed(0)
        torch.save(timm.create_model("resnet18").state_dict(), ckpt)
    return ckpt


def pixel_tolerance(result, px: float = 1.0) -> float:
    """``px`` pixels of the network input in the original's pixels (at least ``px``): one input pixel is 1.01
    original pixels of a 227-px photo squashed to 224, and a box edge moved by one input pixel moves by that."""
    g = result.geometry
    return px * max(1.0, 1.0 / g.sx, 1.0 / g.sy) if g is not None else px


def assert_same_localizations(got, want, box_px: float = 1.0, map_tol: float = 1e-4) -> None:
    """Two runs' results agree: per image and class, the same class, box within ``box_px`` pixels (of the network
    input, :func:`pixel_tolerance`), the same region seen, score within 1e-4 and the raw maps within ``map_tol``
    after min-max scaling."""
    from camloc.cam.rules import unit_range

    assert len(got) == len(want)
    for per_got, per_want in zip(got, want, strict=True):
        per_got = per_got if isinstance(per_got, list) else [per_got]
        per_want = per_want if isinstance(per_want, list) else [per_want]
        assert len(per_got) == len(per_want)
        for a, b in zip(per_got, per_want, strict=True):
            where = f"{b.image} class {b.class_index}"
            assert (a.image, a.class_index, a.label) == (b.image, b.class_index, b.label), where
            assert np.abs(np.subtract(a.input_box, b.input_box)).max() <= box_px, (where, a.input_box, b.input_box)
            assert np.abs(np.subtract(a.box, b.box)).max() <= pixel_tolerance(b, box_px) + 1e-9, (where, a.box, b.box)
            assert a.region == b.region and a.region_mode == b.region_mode, where
            assert abs(a.score - b.score) <= 1e-4, where
            assert np.abs(unit_range(a.cam) - unit_range(b.cam)).max() <= map_tol, where
            assert (a.method, a.nwc, a.standard, a.exact) == (b.method, b.nwc, b.standard, b.exact), where


def assert_same_runs(a: Path, b: Path, history: Sequence[str] = ("loss",)) -> None:
    """The ``last.pt`` of two training runs' folders: the same epoch, the same weights exactly, the same ``history``.

    What a resumed run owes the run it stands for (one uninterrupted).
    """
    from camloc.models.checkpoints import read_checkpoint

    first, second = read_checkpoint(Path(a) / "last.pt"), read_checkpoint(Path(b) / "last.pt")
    assert first["epoch"] == second["epoch"]
    for key, value in first["state_dict"].items():
        assert torch.equal(value, second["state_dict"][key]), key
    for key in history:
        assert [h[key] for h in first["history"]] == [h[key] for h in second["history"]], key
