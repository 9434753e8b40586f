"""A synthetic WSOL benchmark that shows the failure the paper describes, generated from a seed in seconds.

Every image holds one *object*: an ellipse of a random size and aspect filled with a striped *body
texture*, and a small *part* (a square, disc, triangle, cross, ... in a class colour) at a random
place on the body. The background is cluttered: smooth noise and *distractors* (decoys), smaller
striped ellipses without a part. The ground truth (box and mask) is the whole body.

Body textures. The stripes alternate the same two body colours everywhere; only their orientation
changes. With ``p = max(int(max(3, size / 24)), 2)`` and the stripes' normal at angle ``phi``
(degrees, from the x axis towards y, which points down), pixel ``(x, y)`` takes the first colour when

    floor((x cos(phi) + y sin(phi)) * sqrt(2) / p) is even.

The *shared* texture is ``phi = 45`` (``floor((x + y) / p)``: the diagonal stripes of every body in
generator version 1). Class ``k`` of ``C`` has its own texture at

    phi_k = (45 + 180 (k + 1) / (C + 1)) mod 180,

so no class's angle is the shared one and neighbouring angles are ``180 / (C + 1)`` degrees apart
(3 classes: 90, 135 and 0).

Class evidence (``body_signal = Q``, 0 to 1). The object's body wears its class's texture with
probability ``Q``, otherwise the shared one; each decoy wears a *random* class's texture with
probability ``Q``, otherwise the shared one. A class texture somewhere in the image is then no
shortcut: the class is the texture of the body that carries the part. At ``Q = 0`` every class
shares the body and only the part tells them apart, so a classifier can be right by
looking at the part alone: the CAM of a vanilla model covers the part, and its box is too small. At
``Q > 0`` the body's own channels can carry class evidence too; the default, :data:`BODY_SIGNAL`
(0.5), was chosen so that a classifier learns each cue alone.

Cues (``cue``), for training or testing a classifier on one cue only: ``"both"`` (the default, the
images above), ``"part"`` (every class texture is replaced by the shared one, on the body and the
decoys alike: only the part tells the class, and the pixels are those of ``Q = 0``), ``"body"`` (the
part is not drawn and the body's texture shows there instead: only the body tells the class, so
``Q`` must be above 0).

Random draws. Image ``i`` of split ``s`` draws its geometry, part, decoy placement and noise from one
generator, ``default_rng([seed, s, i])``, and its texture choices (one ``u ~ U[0, 1)`` for the body,
one ``u`` and a class for each decoy; a texture is a class's when ``u < Q``) from a second one,
``default_rng([seed, s, i, 1])`` (:func:`generators`). So the same seed gives the same geometry,
part, decoys and noise at every ``body_signal`` and ``cue``, only the textures and the part's
presence change (a body with its class texture at ``Q`` keeps it at any larger ``Q``), and
``body_signal = 0`` with ``cue = "both"`` writes the same images, masks and metadata as generator
version 1, byte for byte; only ``synthetic.json`` gained keys (``generator``, ``body_signal``,
``cue``).

Layout (wsolevaluation's, docs/protocols.md, "Metadata files"): ``OUT/metadata/{train,train-fullsup,test}/`` with
``image_ids.txt``, ``class_labels.txt``, ``image_sizes.txt``, ``localization.txt`` (the body's box,
``x1 = x + w`` as wsolevaluation stores it) and ``mask_localization.txt`` (its mask); images under
``OUT/images/<split>/`` and masks under ``OUT/masks/<split>/``, paths relative to ``OUT`` (so
``--images OUT``; masks default to the same root). ``OUT/synthetic.json`` records every knob and the
generator version (:data:`GENERATOR_VERSION`).

Knobs (:class:`SyntheticSpec`): the number of classes, image side, split sizes, the part's size
relative to the body (smaller: a CAM focused on the part is further from the box), the object's
scale and aspect ranges, the number of distractors, ``clutter`` (the strength of the background
noise), ``body_signal`` and ``cue``.

Example:
    >>> import tempfile
    >>> from camloc.data.metadata import read_dataset
    >>> from camloc.data.synthetic import SyntheticSpec, class_angle, write_synthetic
    >>> root = tempfile.mkdtemp()
    >>> spec = SyntheticSpec(classes=4, size=96, train=8, train_fullsup=4, test=4, seed=0)
    >>> folders = write_synthetic(root, spec)          # a fraction of a second (the default 700 images: seconds)
    >>> sorted(folders)
    ['test', 'train', 'train-fullsup']
    >>> read_dataset(folders["test"])[0].boxes           # the body's box, x1 = x + w
    ((13.0, 14.0, 69.0, 78.0),)
    >>> half = SyntheticSpec(classes=4, body_signal=0.5)     # about half the bodies wear their class texture
    >>> body_only = SyntheticSpec(classes=4, body_signal=1.0, cue="body", train=8, train_fullsup=4, test=4)
    >>> write_synthetic(tempfile.mkdtemp(), body_only)["test"].name
    'test'
    >>> class_angle(0, 3), class_angle(2, 3)               # the texture of class 0 and 2 of 3
    (90.0, 0.0)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from ..utils.atomic import atomic_write_bytes, atomic_write_text
from ..utils.errors import UsageError

#: The generator's version, recorded in ``synthetic.json``. Version 2 added ``body_signal`` and ``cue``;
#: with ``body_signal=0`` and ``cue="both"`` it writes version 1's images, masks and metadata.
GENERATOR_VERSION = 2
#: The default body signal, chosen by measurement: at 0.5 (4 classes, 256 px, 400 training images),
#: smallcnn trained 20 epochs on the part alone (``cue="part"``) reaches 95.5 % Top-1 on the test split
#: and on the body alone (``cue="body"``) 67.5 % (chance 25 %; the body-only ceiling is about
#: 0.5 + 0.5 / 4 = 62.5 %, as a body wearing the shared texture tells nothing), so the part stays the
#: stronger cue and the body is a real one (docs/reproduction.md, "The mechanism").
BODY_SIGNAL = 0.5
SPLITS = ("train", "train-fullsup", "test")
#: What tells the class apart: both cues, the part alone, or the body's texture alone.
CUES = ("both", "part", "body")
#: The angle (degrees) of the shared body texture's stripe normal: the diagonal stripes.
SHARED_ANGLE = 45.0
#: Part shapes, one per class in turn; the class colour changes every len(SHAPES) classes.
SHAPES = ("square", "disc", "triangle", "cross", "ring", "bar")
_CLASS_COLOURS = [(230, 40, 40), (40, 200, 60), (40, 90, 230), (240, 200, 30), (200, 60, 220), (30, 210, 210)]
_BODY = ((150, 110, 70), (95, 65, 40))  # the body textures' two colours: every texture uses them


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
        body_signal: ``Q``, 0 to 1: the object's body wears its class's texture with probability ``Q``
            (otherwise the shared one), and each decoy a random class's texture with probability ``Q``.
            0: every body and decoy wears the shared texture, as in generator version 1. The default,
            :data:`BODY_SIGNAL` (0.5), is where both cues are learnable alone (see :data:`BODY_SIGNAL`).
        cue: ``"both"`` (default), ``"part"`` (every class texture replaced by the shared one: the part
            alone tells the class) or ``"body"`` (no part drawn: the body's texture alone tells the
            class; needs ``body_signal > 0``).

    Example:
        >>> SyntheticSpec(classes=3, body_signal=1.0, cue="body").check().cue
        'body'
        >>> SyntheticSpec(body_signal=1.5).check()
        Traceback (most recent call last):
        camloc.utils.errors.UsageError: body_signal=1.5: give 0 (every body wears the shared texture) to 1 (...)
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
    body_signal: float = BODY_SIGNAL
    cue: str = "both"

    def check(self) -> SyntheticSpec:
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
            (not 0.0 <= self.body_signal <= 1.0,
             (f"body_signal={self.body_signal}: give 0 (every body wears the shared texture) to 1 "
              "(every body wears its class's texture)")),
            (self.cue not in CUES, f"cue={self.cue!r}: give one of {', '.join(CUES)}"),
            (self.cue == "body" and self.body_signal == 0,
             ("cue='body' with body_signal=0 leaves no class evidence (no part, only the shared texture): "
              "give body_signal above 0")),
        ]
        for bad, message in problems:
            if bad:
                raise UsageError(message)
        return self

    def count(self, split: str) -> int:
        """The number of images of ``split`` (``"train"``, ``"train-fullsup"`` or ``"test"``)."""
        return {"train": self.train, "train-fullsup": self.train_fullsup, "test": self.test}[split]


@dataclass(frozen=True)
class Rendered:
    """One image and what it is made of.

    Attributes:
        image: RGB pixels (H x W x 3 uint8).
        mask: the body's mask (H x W bool), the ground truth.
        box: the body's box ``(x0, y0, x1, y1)`` with exclusive ends.
        label: the class.
        part: the part's mask (H x W bool, inside the body); with ``cue="body"`` it is where the part
            would be, but not drawn.
        body_texture: the class whose texture the body wears, -1 for the shared texture.
        decoy_textures: the same for each decoy drawn, in drawing order.
    """

    image: np.ndarray
    mask: np.ndarray
    box: tuple[int, int, int, int]
    label: int
    part: np.ndarray
    body_texture: int
    decoy_textures: tuple[int, ...]


def _ellipse(size: int, cx: float, cy: float, a: float, b: float, angle: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    c, s = np.cos(angle), np.sin(angle)
    u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def class_angle(label: int, classes: int) -> float:
    """The angle (degrees, in [0, 180)) of class ``label``'s stripe normal.

    ``phi_k = (45 + 180 (k + 1) / (C + 1)) mod 180`` for class ``k`` of ``C``: never the shared 45, and
    at least ``180 / (C + 1)`` degrees from it and from every other class.

    Example:
        >>> [class_angle(k, 3) for k in range(3)]
        [90.0, 135.0, 0.0]
    """
    return (SHARED_ANGLE + 180.0 * (label + 1) / (classes + 1)) % 180.0


def _period(size: int) -> int:
    return max(int(max(3.0, size / 24)), 2)


def _texture(size: int, period: float) -> np.ndarray:
    """The shared body texture: diagonal stripes (H x W x 3 uint8)."""
    yy, xx = np.mgrid[0:size, 0:size]
    stripe = ((xx + yy) // max(int(period), 2)) % 2 == 0
    return np.where(stripe[..., None], np.uint8(_BODY[0]), np.uint8(_BODY[1])).astype(np.uint8)


def texture(size: int, angle: float = SHARED_ANGLE) -> np.ndarray:
    """A body texture: stripes in the two body colours, their normal at ``angle`` degrees (H x W x 3 uint8).

    Pixel ``(x, y)`` takes the first colour when ``floor((x cos(phi) + y sin(phi)) sqrt(2) / p)`` is
    even, ``p = max(int(max(3, size / 24)), 2)``; at 45 degrees (the shared texture) that is
    ``floor((x + y) / p)``, computed in integers.

    Example:
        >>> shared, cls0 = texture(64), texture(64, class_angle(0, 3))  # diagonal, horizontal stripes
        >>> bool((shared == cls0).all())
        False
    """
    p = _period(size)
    if angle % 180.0 == SHARED_ANGLE:
        return _texture(size, p)
    phi = np.deg2rad(angle % 180.0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    stripe = np.floor((xx * np.cos(phi) + yy * np.sin(phi)) * np.sqrt(2.0) / p) % 2 == 0
    return np.where(stripe[..., None], np.uint8(_BODY[0]), np.uint8(_BODY[1])).astype(np.uint8)


@lru_cache(maxsize=64)
def _texture_pixels(size: int, angle: float) -> np.ndarray:
    """:func:`texture` as float64, computed once per size and angle (read-only)."""
    pixels = texture(size, angle).astype(np.float64)
    pixels.setflags(write=False)
    return pixels


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


def generators(spec: SyntheticSpec, split_index: int, i: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The two generators of image ``i`` of split ``SPLITS[split_index]``, as :func:`write_synthetic` seeds them.

    ``default_rng([seed, split_index, i])`` draws the geometry, part, decoy placement and noise;
    ``default_rng([seed, split_index, i, 1])`` draws only the texture choices, so ``body_signal`` and
    ``cue`` change no other draw.

    Example:
        >>> from camloc.data.synthetic import SyntheticSpec, generators, render
        >>> spec = SyntheticSpec(classes=3, size=64)
        >>> item = render(spec, 1 % spec.classes, *generators(spec, 0, 1))  # image 1 of train
        >>> again = render(spec, 1, *generators(spec, 0, 1))              # rebuilt alone: the same pixels
        >>> item.label, item.image.shape, bool((item.image == again.image).all())
        (1, (64, 64, 3), True)
    """
    return (np.random.default_rng([spec.seed, split_index, i]),
            np.random.default_rng([spec.seed, split_index, i, 1]))


def render(spec: SyntheticSpec, label: int, rng: np.random.Generator,
           texture_rng: np.random.Generator | None = None) -> Rendered:
    """One image of class ``label`` (see the module docs).

    Args:
        spec: the knobs (``size``, ``part``, ``scale``, ``aspect``, ``distractors``, ``clutter``,
            ``body_signal``, ``cue``, and ``classes`` for the textures).
        label: the class, 0 to ``classes - 1``.
        rng: draws the background noise, the body (axes, angle, centre), the decoys (count, place,
            size), the part's place and the pixel noise, in this order, the same for every
            ``body_signal`` and ``cue``.
        texture_rng: draws the texture choices: ``u ~ U[0, 1)`` for the body, then ``u`` and a class
            for each decoy draw; a texture is a class's when ``u < body_signal`` and ``cue`` is not
            ``"part"``. None: a child of ``rng`` (``rng.spawn``), which leaves ``rng``'s own draws as
            they are. :func:`generators` gives the pair :func:`write_synthetic` uses.

    Returns:
        The pixels, the body's mask and box, the part's mask and the textures worn.

    Example:
        >>> item = render(SyntheticSpec(size=96, body_signal=1.0), 0, *generators(SyntheticSpec(), 2, 0))
        >>> item.body_texture                       # body_signal=1: the body wears class 0's texture
        0
    """
    n = spec.size
    if texture_rng is None:
        texture_rng = rng.spawn(1)[0]
    textures = _Textures(spec)
    canvas = _smooth_noise(rng, n, spec.clutter)
    body_texture = textures.choose(float(texture_rng.random()), label)
    shape = _place_body(rng, spec)
    body = _ellipse(n, shape.cx, shape.cy, shape.a, shape.b, shape.angle)
    decoys = _draw_decoys(canvas, rng, texture_rng, spec, textures, shape)
    canvas[body] = textures.pixels(body_texture)[body]
    # the class part, inside the body (drawn unless the body alone is to tell the class)
    part = _place_part(rng, spec, shape, label) & body
    if spec.cue != "body":
        canvas[part] = _CLASS_COLOURS[(label // len(SHAPES)) % len(_CLASS_COLOURS)]
    canvas += rng.normal(0.0, 4.0 + 6.0 * spec.clutter, canvas.shape)
    ys, xs = np.nonzero(body)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return Rendered(np.uint8(np.clip(canvas, 0, 255)), body, box, label, part, body_texture, tuple(decoys))


@dataclass(frozen=True)
class _Textures:
    """The textures of a spec's images: which one a body or decoy wears, and its pixels."""

    spec: SyntheticSpec

    def choose(self, u: float, k: int) -> int:
        """Class ``k``'s texture when ``u < body_signal`` (and the cue is not ``"part"``), else the shared one (-1)."""
        return k if self.spec.cue != "part" and u < self.spec.body_signal else -1

    def pixels(self, choice: int) -> np.ndarray:
        """The pixels (float64, read-only) of texture ``choice``: a class, or -1 for the shared one."""
        return _texture_pixels(self.spec.size, SHARED_ANGLE if choice < 0 else class_angle(choice, self.spec.classes))


@dataclass(frozen=True)
class _Shape:
    """An ellipse: centre ``(cx, cy)``, semi-axes ``a`` (the longer) and ``b``, ``angle`` in radians."""

    cx: float
    cy: float
    a: float
    b: float
    angle: float


def _place_body(rng: np.random.Generator, spec: SyntheticSpec) -> _Shape:
    """The object's body: its axes, angle and centre drawn from ``rng`` in this order, all of it on the image."""
    n = spec.size
    long_axis = rng.uniform(*spec.scale) * n / 2
    short_axis = long_axis * rng.uniform(*spec.aspect)
    angle = rng.uniform(0, np.pi)
    reach = long_axis
    cx, cy = rng.uniform(reach * 0.9, n - reach * 0.9), rng.uniform(reach * 0.9, n - reach * 0.9)
    return _Shape(cx, cy, long_axis, short_axis, angle)


def _draw_decoys(canvas: np.ndarray, rng: np.random.Generator, texture_rng: np.random.Generator,
                 spec: SyntheticSpec, textures: _Textures, body: _Shape) -> list[int]:
    """Draw the distractors on ``canvas``: smaller textured ellipses, kept a gap away from the body.

    Returns the texture of each decoy drawn, in drawing order. A draw that would touch the object
    places no decoy (its random draws are made all the same).
    """
    n = spec.size
    gap = 0.06 * n
    keep_out = _ellipse(n, body.cx, body.cy, body.a + gap, body.b + gap, body.angle)
    decoys = []
    for _ in range(int(rng.integers(0, spec.distractors + 1))):
        a = rng.uniform(0.08, 0.18) * n
        blob = _ellipse(n, rng.uniform(0, n), rng.uniform(0, n), a, a * rng.uniform(0.5, 1.0), rng.uniform(0, np.pi))
        choice = textures.choose(float(texture_rng.random()), int(texture_rng.integers(spec.classes)))
        if (blob & keep_out).any():
            continue  # would touch the object: this draw places no distractor
        canvas[blob] = textures.pixels(choice)[blob]
        decoys.append(choice)
    return decoys


def _place_part(rng: np.random.Generator, spec: SyntheticSpec, body: _Shape, label: int) -> np.ndarray:
    """The mask of class ``label``'s part shape at a random place well inside the body (not yet clipped to it)."""
    r = max(3.0, spec.part * body.b / 2)
    t = rng.uniform(0, 2 * np.pi)
    rho = np.sqrt(rng.uniform(0, 1)) * 0.55
    cx, cy, long_axis, short_axis, angle = body.cx, body.cy, body.a, body.b, body.angle
    px = cx + rho * (long_axis - r) * np.cos(t) * np.cos(angle) - rho * (short_axis - r) * np.sin(t) * np.sin(angle)
    py = cy + rho * (long_axis - r) * np.cos(t) * np.sin(angle) + rho * (short_axis - r) * np.sin(t) * np.cos(angle)
    return _part_mask(SHAPES[label % len(SHAPES)], spec.size, px, py, r)


def _png(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def write_synthetic(out: str | Path, spec: SyntheticSpec = SyntheticSpec(),
                    progress: Callable[[str, int, int], None] | None = None) -> dict[str, Path]:
    """Write the three splits of ``spec`` under ``out``; returns each split's metadata folder.

    Classes are balanced (image ``i`` of a split has class ``i mod classes``); image ``i`` of a split is
    drawn from its own two generators (:func:`generators`, seeded by ``(seed, split, i)`` and
    ``(seed, split, i, 1)``), so any image can be rebuilt alone. ``OUT/synthetic.json`` records
    ``{"generator": GENERATOR_VERSION, **asdict(spec)}``. With ``body_signal=0`` and ``cue="both"``
    the images, masks and metadata are byte for byte those of generator version 1.

    Args:
        out: the dataset root (created).
        spec: the knobs, checked first (:meth:`SyntheticSpec.check`).
        progress: called as ``progress(split, done, total)`` after each image.

    Returns:
        ``{split: OUT/metadata/<split>}``.

    Raises:
        UsageError: a knob that cannot work.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from camloc.data.synthetic import SyntheticSpec, write_synthetic
        >>> root = Path(tempfile.mkdtemp())
        >>> spec = SyntheticSpec(body_signal=0.5, train=8, train_fullsup=4, test=4)
        >>> write_synthetic(root / "body", spec)["test"].relative_to(root)
        PosixPath('body/metadata/test')
    """
    spec.check()
    out = Path(out)
    folders = {}
    for s_index, split in enumerate(SPLITS):
        rows, boxes, masks = [], [], []
        total = spec.count(split)
        for i in range(total):
            item = render(spec, i % spec.classes, *generators(spec, s_index, i))
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
    record = {"generator": GENERATOR_VERSION, **asdict(spec)}
    atomic_write_text(out / "synthetic.json", json.dumps(record, indent=2) + "\n")
    return folders
