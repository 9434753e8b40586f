"""A synthetic WSOL benchmark that shows the failure the paper describes, generated from a seed in seconds.

Every image holds one *object*: an ellipse of a random size and aspect filled with a body texture
that is the same for every class (diagonal stripes in one colour pair). The class is told only by a
small *part* (a square, disc, triangle, cross, ... in a class colour) at a random place on the body.
The background is cluttered: smooth noise and *distractors*, smaller ellipses with the same body
texture and no part. A classifier can be right by looking at the part alone, so the CAM of a
vanilla model covers the part, and its box is too small: the box and mask of the ground truth are
the whole body.

Layout (wsolevaluation's, PROTOCOLS.md section 4): ``OUT/metadata/{train,train-fullsup,test}/`` with
``image_ids.txt``, ``class_labels.txt``, ``image_sizes.txt``, ``localization.txt`` (the body's box,
``x1 = x + w`` as wsolevaluation stores it) and ``mask_localization.txt`` (its mask); images under
``OUT/images/<split>/`` and masks under ``OUT/masks/<split>/``, paths relative to ``OUT`` (so
``--images OUT``; masks default to the same root).

Knobs (:class:`SyntheticSpec`): the number of classes, image side, split sizes, the part's size
relative to the body (smaller: a CAM focused on the part is further from the box), the object's
scale and aspect ranges, the number of distractors, and ``clutter`` (the strength of the background
noise).

Example:
    >>> spec = SyntheticSpec(classes=4, size=96, train=200, train_fullsup=50, test=100, seed=0)
    >>> write_synthetic("data/synthetic", spec)          # seconds
    >>> read_dataset("data/synthetic/metadata/test")[0].boxes
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
from PIL import Image

from ..atomic import atomic_write_bytes, atomic_write_text
from ..errors import UsageError

SPLITS = ("train", "train-fullsup", "test")
#: Part shapes, one per class in turn; the class colour changes every len(SHAPES) classes.
SHAPES = ("square", "disc", "triangle", "cross", "ring", "bar")
_CLASS_COLOURS = [(230, 40, 40), (40, 200, 60), (40, 90, 230), (240, 200, 30), (200, 60, 220), (30, 210, 210)]
_BODY = ((150, 110, 70), (95, 65, 40))  # the body texture's two colours: every class shares them


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that defines a synthetic split set (recorded in ``OUT/synthetic.json``).

    Attributes:
        classes: number of classes (each a part shape and colour), 2 to 36.
        size: image side in pixels (images are square).
        train, train_fullsup, test: images per split.
        part: the part's side as a fraction of the body's shorter axis (the difficulty: smaller parts
            make part-only CAMs smaller than the body).
        scale: the body's longer axis as a fraction of the image side, drawn uniformly in this range.
        aspect: the body's shorter / longer axis, drawn uniformly in this range.
        distractors: textured ellipses without a part in the background, per image (0 to this many).
        clutter: strength of the smooth background noise, 0 (flat) to 1.
        seed: the seed; the same spec gives the same bytes.
    """

    classes: int = 4
    size: int = 96
    train: int = 400
    train_fullsup: int = 100
    test: int = 200
    part: float = 0.3
    scale: tuple[float, float] = (0.45, 0.85)
    aspect: tuple[float, float] = (0.45, 1.0)
    distractors: int = 3
    clutter: float = 0.5
    seed: int = 0

    def check(self) -> "SyntheticSpec":
        """One clear line for a value that cannot work."""
        problems = [
            (not 2 <= self.classes <= len(SHAPES) * len(_CLASS_COLOURS), f"classes={self.classes}: give 2 to 36"),
            (self.size < 32, f"size={self.size}: images need at least 32 px (camloc refuses smaller ones)"),
            (min(self.train, self.train_fullsup, self.test) < 1, "every split needs at least one image"),
            (not 0.05 <= self.part <= 0.8, f"part={self.part}: give 0.05 to 0.8 of the body's shorter axis"),
            (not 0.1 <= self.scale[0] <= self.scale[1] <= 1.0, f"scale={self.scale}: give 0.1 <= low <= high <= 1"),
            (not 0.2 <= self.aspect[0] <= self.aspect[1] <= 1.0, f"aspect={self.aspect}: give 0.2 <= low <= high <= 1"),
            (self.distractors < 0, "distractors must not be negative"),
            (not 0.0 <= self.clutter <= 1.0, f"clutter={self.clutter}: give 0 to 1"),
        ]
        for bad, message in problems:
            if bad:
                raise UsageError(message)
        return self

    def count(self, split: str) -> int:
        return {"train": self.train, "train-fullsup": self.train_fullsup, "test": self.test}[split]


@dataclass(frozen=True)
class Rendered:
    """One image: RGB pixels, the body's mask, its box ``(x0, y0, x1, y1)`` with exclusive ends, the class."""

    image: np.ndarray
    mask: np.ndarray
    box: tuple[int, int, int, int]
    label: int


def _ellipse(size: int, cx: float, cy: float, a: float, b: float, angle: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    c, s = np.cos(angle), np.sin(angle)
    u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _texture(size: int, period: float) -> np.ndarray:
    """The shared body texture: diagonal stripes (H x W x 3 uint8)."""
    yy, xx = np.mgrid[0:size, 0:size]
    stripe = ((xx + yy) // max(int(period), 2)) % 2 == 0
    return np.where(stripe[..., None], np.uint8(_BODY[0]), np.uint8(_BODY[1])).astype(np.uint8)


def _part_mask(shape: str, size: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    dx, dy = xx - cx, yy - cy
    if shape == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if shape == "disc":
        return dx ** 2 + dy ** 2 <= r ** 2
    if shape == "triangle":
        return (dy <= r) & (dy >= -r) & (np.abs(dx) <= (dy + r) / 2)
    if shape == "cross":
        return ((np.abs(dx) <= r / 3) & (np.abs(dy) <= r)) | ((np.abs(dy) <= r / 3) & (np.abs(dx) <= r))
    if shape == "ring":
        d = dx ** 2 + dy ** 2
        return (d <= r ** 2) & (d >= (0.5 * r) ** 2)
    return (np.abs(dx) <= r) & (np.abs(dy) <= r / 3)  # bar


def _smooth_noise(rng: np.random.Generator, size: int, strength: float) -> np.ndarray:
    """Low-frequency colour noise: a coarse random grid upsampled bilinearly (H x W x 3, float)."""
    cells = 6
    coarse = rng.normal(0.0, 1.0, (cells, cells, 3))
    img = Image.fromarray(np.uint8(np.clip(128 + 40 * coarse, 0, 255)), "RGB").resize((size, size), Image.BILINEAR)
    return 110.0 + strength * (np.asarray(img, np.float64) - 128.0) * 1.5


def render(spec: SyntheticSpec, label: int, rng: np.random.Generator) -> Rendered:
    """One image of class ``label`` drawn with ``rng`` (see the module docs)."""
    n = spec.size
    canvas = _smooth_noise(rng, n, spec.clutter)
    texture = _texture(n, max(3.0, n / 24)).astype(np.float64)
    # the object body
    long_axis = rng.uniform(*spec.scale) * n / 2
    short_axis = long_axis * rng.uniform(*spec.aspect)
    angle = rng.uniform(0, np.pi)
    reach = long_axis
    cx, cy = rng.uniform(reach * 0.9, n - reach * 0.9), rng.uniform(reach * 0.9, n - reach * 0.9)
    body = _ellipse(n, cx, cy, long_axis, short_axis, angle)
    # distractors: smaller textured ellipses, kept a gap away from the body (a distinct region)
    gap = 0.06 * n
    keep_out = _ellipse(n, cx, cy, long_axis + gap, short_axis + gap, angle)
    for _ in range(int(rng.integers(0, spec.distractors + 1))):
        a = rng.uniform(0.08, 0.18) * n
        blob = _ellipse(n, rng.uniform(0, n), rng.uniform(0, n), a, a * rng.uniform(0.5, 1.0), rng.uniform(0, np.pi))
        if (blob & keep_out).any():
            continue  # would touch the object: this draw places no distractor
        canvas[blob] = texture[blob]
    canvas[body] = texture[body]
    # the class part, inside the body
    r = max(3.0, spec.part * short_axis / 2)
    t = rng.uniform(0, 2 * np.pi)
    rho = np.sqrt(rng.uniform(0, 1)) * 0.55
    px = cx + rho * (long_axis - r) * np.cos(t) * np.cos(angle) - rho * (short_axis - r) * np.sin(t) * np.sin(angle)
    py = cy + rho * (long_axis - r) * np.cos(t) * np.sin(angle) + rho * (short_axis - r) * np.sin(t) * np.cos(angle)
    part = _part_mask(SHAPES[label % len(SHAPES)], n, px, py, r) & body
    canvas[part] = _CLASS_COLOURS[(label // len(SHAPES)) % len(_CLASS_COLOURS)]
    canvas += rng.normal(0.0, 4.0 + 6.0 * spec.clutter, canvas.shape)
    ys, xs = np.nonzero(body)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return Rendered(np.uint8(np.clip(canvas, 0, 255)), body, box, label)


def _png(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def write_synthetic(out: Union[str, Path], spec: SyntheticSpec = SyntheticSpec(),
                    progress: Optional[Callable[[str, int, int], None]] = None) -> dict[str, Path]:
    """Write the three splits of ``spec`` under ``out``; returns each split's metadata folder.

    Classes are balanced (image ``i`` of a split has class ``i mod classes``); image ``i`` of a split is
    drawn from its own generator, seeded by ``(seed, split, i)``, so any image can be rebuilt alone.
    """
    spec.check()
    out = Path(out)
    folders = {}
    for s_index, split in enumerate(SPLITS):
        rows, boxes, masks = [], [], []
        total = spec.count(split)
        for i in range(total):
            rng = np.random.default_rng([spec.seed, s_index, i])
            item = render(spec, i % spec.classes, rng)
            image_id, mask_id = f"images/{split}/{i:05d}.png", f"masks/{split}/{i:05d}.png"
            atomic_write_bytes(out / image_id, _png(item.image))
            atomic_write_bytes(out / mask_id, _png(np.uint8(item.mask) * 255))
            rows.append((image_id, item.label))
            boxes.append(f"{image_id},{item.box[0]},{item.box[1]},{item.box[2]},{item.box[3]}")
            masks.append(f"{image_id},{mask_id},")
            if progress is not None:
                progress(split, i + 1, total)
        meta = out / "metadata" / split
        atomic_write_text(meta / "image_ids.txt", "\n".join(r[0] for r in rows) + "\n")
        atomic_write_text(meta / "class_labels.txt", "\n".join(f"{r[0]},{r[1]}" for r in rows) + "\n")
        atomic_write_text(meta / "image_sizes.txt", "\n".join(f"{r[0]},{spec.size},{spec.size}" for r in rows) + "\n")
        atomic_write_text(meta / "localization.txt", "\n".join(boxes) + "\n")
        atomic_write_text(meta / "mask_localization.txt", "\n".join(masks) + "\n")
        folders[split] = meta
    atomic_write_text(out / "synthetic.json", json.dumps(asdict(spec), indent=2) + "\n")
    return folders
