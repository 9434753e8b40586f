"""Decoding images robustly and turning them into network input, reversibly.

Every image becomes 8-bit RGB whatever its mode (grayscale, RGBA, palette, CMYK, 16-bit), with its
EXIF orientation applied. :class:`Preprocess` resizes (and optionally center-crops) it and remembers
the :class:`Geometry` of that step, so boxes found on the network input map back to original pixels.

The module needs Pillow and NumPy only: torch is imported by :meth:`Preprocess.normalize` alone, so
the runtime that localizes with an exported model (:mod:`camloc.runtime`) reads images through the
same code without torch.
"""

from __future__ import annotations

import errno
import io
import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..utils.errors import ImageError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Smallest side, in pixels, that camloc accepts: a CAM of a smaller picture says nothing useful.
MIN_SIDE = 32
#: Largest pixel count decoded by default (about 16k x 11k); larger files are refused, not decoded.
MAX_PIXELS = 178_956_970
#: Environment variable that raises (or lowers) the pixel limit for every reader, the CLI included.
MAX_PIXELS_ENV = "CAMLOC_MAX_PIXELS"
#: How a refused image tells the user to get it read anyway.
_RAISE_LIMIT = f"downscale it, or raise the limit: {MAX_PIXELS_ENV}=N in the environment (max_pixels=N in Python)"


def max_pixels_limit() -> int:
    """The pixel limit in force: ``$CAMLOC_MAX_PIXELS`` where set, else :data:`MAX_PIXELS`.

    Raises:
        ImageError: naming the variable when it is not a positive integer.
    """
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if not raw:
        return MAX_PIXELS
    if not raw.isdigit() or int(raw) < 1:
        raise ImageError(MAX_PIXELS_ENV, f"is {raw!r}; set it to a positive number of pixels, e.g. 300000000")
    return int(raw)

ImageInput = str | os.PathLike | Image.Image | np.ndarray


def source_name(image: Any, index: int) -> str:
    """How results name an input: its path, else ``<image N>`` / ``<tensor N>`` by position.

    A torch tensor is recognised without importing torch (only a program that has torch loaded can hold one).

    Example:
        >>> source_name("examples/images/cat.jpg", 0), source_name(np.zeros((2, 2, 3)), 1)
        ('examples/images/cat.jpg', '<image 1>')
    """
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    torch = sys.modules.get("torch")
    return f"<tensor {index}>" if torch is not None and isinstance(image, torch.Tensor) else f"<image {index}>"


def image_list(images: Any) -> list:
    """One image (a path, a PIL image, a numpy array) as a list of one; a sequence of images as a list.

    Example:
        >>> image_list("examples/images/cat.jpg"), len(image_list(["a.jpg", "b.jpg"]))
        (['examples/images/cat.jpg'], 2)
    """
    if isinstance(images, (str, os.PathLike, np.ndarray, Image.Image)) or not isinstance(images, Iterable):
        return [images]
    return list(images)

_INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
#: Interpolation names a :class:`Preprocess` accepts.
INTERPOLATIONS = tuple(_INTERPOLATIONS)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _to_rgb(img: Image.Image, source: object) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; alpha is composited over white, 16-bit is scaled down."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode == "F":
            hi = 1.0 if arr.size and np.nanmax(arr) <= 1.0 else 255.0
        else:
            hi = 65535.0 if arr.size and arr.max() > 255 else 255.0
        arr = np.clip(np.nan_to_num(arr) / hi * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "P", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageError(source, f"cannot convert mode {mode} to RGB ({exc}); save it as 8-bit RGB") from exc


def _check_size(size: tuple[int, int], source: object, max_pixels: int | None) -> None:
    w, h = size
    if max_pixels is not None and w * h > max_pixels:
        raise ImageError(
            source,
            f"{w}x{h} px is over the {max_pixels:,}-pixel limit (possible decompression bomb); {_RAISE_LIMIT}",
        )
    if min(w, h) < MIN_SIDE:
        raise ImageError(
            source, f"{w}x{h} px is smaller than {MIN_SIDE} px on a side: too small to localize; use a larger image"
        )


def load_image(source: ImageInput, *, max_pixels: int | None | str = "env") -> Image.Image:
    """Open an image as 8-bit RGB with its EXIF orientation applied.

    Accepts a path, a PIL image or a numpy array (H x W or H x W x 3/4, uint8, uint16 or float in
    [0, 1]). Anything unusable raises :class:`ImageError` with one line naming the file and the fix.

    ``max_pixels``: the largest pixel count decoded (a guard against decompression bombs); the
    default ``"env"`` is :func:`max_pixels_limit`, None turns the guard off.

    Example:
        >>> load_image("examples/images/cat.jpg").mode
        'RGB'
    """
    if max_pixels == "env":
        max_pixels = max_pixels_limit()
    if isinstance(source, Image.Image):
        img, name = source, "<PIL image>"
    elif isinstance(source, np.ndarray):
        return _array_to_image(source, max_pixels)
    elif isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        if not os.path.exists(name):
            raise ImageError(name, _missing_reason(name))
        if os.path.isdir(name):
            raise ImageError(name, "is a folder, not an image file")
        try:
            with open(name, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise ImageError(name, f"cannot be read ({exc.strerror or exc}); check its permissions") from exc
        img = _open_bytes(data, name, max_pixels)
    else:
        raise ImageError(repr(type(source)), "is not an image: pass a path, a PIL image or a numpy array")
    _check_size(img.size, name, max_pixels)
    try:
        img = ImageOps.exif_transpose(img) or img
        img.load()
    except Exception as exc:  # noqa: BLE001 - PIL raises many types on broken data
        raise ImageError(name, f"is corrupt or truncated ({exc}); re-encode or replace the file") from exc
    return _to_rgb(img, name)


def encode_image(array: np.ndarray, ending: str, *params: int) -> bytes:
    r"""``array`` (uint8, OpenCV's BGR order for colour) encoded by OpenCV as ``ending`` (``.jpg``, ``.png``).

    Example:
        >>> encode_image(np.zeros((4, 4), np.uint8), ".png")[:4]
        b'\x89PNG'
    """
    import cv2

    ok, buf = cv2.imencode(ending, np.ascontiguousarray(array), list(params))
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise ValueError(f"OpenCV could not encode a {ending} picture")
    return buf.tobytes()


def _missing_reason(name: str) -> str:
    """Why an existing-looking path cannot be opened: a dangling or looping link, or nothing there."""
    if os.path.islink(name):
        try:
            os.stat(name)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "is a symbolic link loop (the link leads back to itself); point it at a real file"
        return f"is a broken symbolic link (to {os.readlink(name)}, which does not exist); fix or remove the link"
    try:
        os.stat(name)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "lies behind a symbolic link loop in its folders; fix the links on its path"
        if exc.errno == errno.ENAMETOOLONG:
            return "is a path too long for the file system; shorten it"
        if exc.errno == errno.EACCES:
            return "cannot be reached (a folder on its path is not searchable); check the permissions"
    return "no such file; check the path"


def _open_bytes(data: bytes, name: str, max_pixels: int | None) -> Image.Image:
    if not data:
        raise ImageError(name, "is empty (0 bytes); replace the file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            old_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = max_pixels
            try:
                img = Image.open(io.BytesIO(data))
            finally:
                Image.MAX_IMAGE_PIXELS = old_limit
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            name, f"declares too many pixels ({exc}); it may be a decompression bomb: {_RAISE_LIMIT}"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(name, "is not an image PIL can read; convert it to JPEG or PNG") from exc
    except Exception as exc:  # noqa: BLE001
        raise ImageError(name, f"cannot be opened ({exc}); re-encode or replace the file") from exc
    return img


def _array_to_image(arr: np.ndarray, max_pixels: int | None) -> Image.Image:
    name = f"<array {tuple(arr.shape)} {arr.dtype}>"
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ImageError(name, "is not H x W, H x W x 3 or H x W x 4; pass an image array")
    if arr.dtype == np.uint8:
        pass
    elif arr.dtype == np.uint16:
        arr = (arr.astype(np.float64) / 65535.0 * 255.0).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageError(name, "contains NaN or infinite values")
        scale = 255.0 if arr.max(initial=0.0) <= 1.0 else 1.0
        arr = np.clip(arr * scale, 0, 255).astype(np.uint8)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    else:
        raise ImageError(name, f"has dtype {arr.dtype}; pass uint8, uint16 or float in [0, 1]")
    img = Image.fromarray(np.ascontiguousarray(arr))
    _check_size(img.size, name, max_pixels)
    return _to_rgb(img, name)


#: The region each :class:`Preprocess` mode shows the network: ``"full"`` (the whole image) or ``"crop"``.
REGION_MODES = {"resize": "full", "crop": "crop"}


def mode_for_region(resize: str | None) -> str | None:
    """The :class:`Preprocess` mode for ``resize``: ``"full"`` squashes, ``"crop"`` crops, None keeps the model's.

    Raises:
        UsageError: ``resize`` is neither.

    Example:
        >>> mode_for_region("full"), mode_for_region("crop"), mode_for_region(None)
        ('resize', 'crop', None)
    """
    modes = {region: mode for mode, region in REGION_MODES.items()}
    if resize is not None and resize not in modes:
        raise UsageError(f"resize must be 'full' or 'crop', not {resize!r}")
    return modes.get(resize)


@dataclass(frozen=True)
class Geometry:
    """Where the network input came from in the original image.

    A point ``(u, v)`` of the network input is the original point ``((u + left) / sx, (v + top) / sy)``.
    ``mode`` says which part of the image that input shows: ``"full"`` (all of it, resized) or
    ``"crop"`` (a center crop of the resized image); :meth:`region` is that part in original pixels.
    """

    width: int
    height: int
    sx: float
    sy: float
    left: int
    top: int
    input_width: int
    input_height: int
    mode: str = "full"

    @classmethod
    def identity(cls, width: int, height: int) -> Geometry:
        """The geometry of an image that is its own network input (no resize, no crop).

        Example:
            >>> Geometry.identity(224, 224).box_to_original([10, 20, 30, 40])
            (10.0, 20.0, 30.0, 40.0)
        """
        return cls(width, height, 1.0, 1.0, 0, 0, width, height)

    def box_to_original(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        """Map ``[x0, y0, x1, y1]`` (pixel edges on the network input) to original pixels, clipped."""
        x0, y0, x1, y1 = box
        fx = lambda u: min(max((u + self.left) / self.sx, 0.0), float(self.width))  # noqa: E731
        fy = lambda v: min(max((v + self.top) / self.sy, 0.0), float(self.height))  # noqa: E731
        return (fx(x0), fy(y0), fx(x1), fy(y1))

    def region(self) -> tuple[float, float, float, float]:
        """The region of the original image the network saw, ``[x0, y0, x1, y1]`` in original pixels.

        The whole network input mapped back by :meth:`box_to_original`: the whole image in ``"full"``
        mode, the center-crop window in ``"crop"`` mode (a 227 x 227 image resized to 256 x 256 and
        cropped to 224 x 224 shows the model 16 .. 240 of 256, i.e. 14.1875 .. 212.8125 of 227).
        Rounded to a millionth of a pixel, so that float noise leaves the whole image whole.

        Example:
            >>> Preprocess((224, 224), "crop", 256).geometry(227, 227).region()
            (14.1875, 14.1875, 212.8125, 212.8125)
            >>> Preprocess((224, 224), "resize", None).geometry(400, 300).region()
            (0.0, 0.0, 400.0, 300.0)
        """
        x0, y0, x1, y1 = self.box_to_original((0, 0, self.input_width, self.input_height))
        return (round(x0, 6), round(y0, 6), round(x1, 6), round(y1, 6))

    def box_to_input(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        """Map ``[x0, y0, x1, y1]`` (pixel edges in the original image) onto the network input, clipped to it.

        This is the inverse of :meth:`box_to_original` (``u = x sx - left``, ``v = y sy - top``).

        Example:
            >>> Geometry(100, 100, 2.56, 2.56, 16, 16, 224, 224).box_to_input([0, 50, 100, 100])
            (0.0, 112.0, 224.0, 224.0)
        """
        x0, y0, x1, y1 = box
        fu = lambda x: min(max(x * self.sx - self.left, 0.0), float(self.input_width))  # noqa: E731
        fv = lambda y: min(max(y * self.sy - self.top, 0.0), float(self.input_height))  # noqa: E731
        return (fu(x0), fv(y0), fu(x1), fv(y1))


def _shorter_side_size(w: int, h: int, short: int) -> tuple[int, int]:
    """Torchvision's ``Resize(int)`` rule: the shorter side becomes ``short``, the other is truncated."""
    if w <= h:
        return short, int(short * h / w)
    return int(short * w / h), short


def region_text(mode: str, input_size: Sequence[int], resize_size: int | Sequence[int] | None) -> str:
    """What a :class:`Preprocess` of this ``mode``, ``input_size`` and ``resize_size`` shows the model, in words.

    Example:
        >>> region_text("crop", (224, 224), 256)
        'center crop 224x224 of the image resized to 256 px on its shorter side (crop_pct 0.875)'
        >>> region_text("resize", (224, 224), None)
        'the whole image, resized to 224x224'
    """
    ih, iw = input_size
    if REGION_MODES[mode] == "full":
        return f"the whole image, resized to {iw}x{ih}"
    if resize_size is None or isinstance(resize_size, int):
        short = min(ih, iw) if resize_size is None else resize_size
        return (f"center crop {iw}x{ih} of the image resized to {short} px on its shorter side "
                f"(crop_pct {min(ih, iw) / short:.3g})")
    rh, rw = resize_size
    return f"center crop {iw}x{ih} of the image resized to {rw}x{rh}"


@dataclass(frozen=True)
class Preprocess:
    """Resize (then optionally center-crop) and normalise an image, recording the geometry.

    Modes:
        * ``"resize"``: squash the whole image to ``input_size`` (aspect ratio not kept; the
          wsolevaluation protocol).
        * ``"crop"``: resize the shorter side to ``resize_size`` (an int) or the whole image to
          ``resize_size`` (a pair ``(h, w)``, as the rethinking protocol's 256 x 256), then take the
          center ``input_size`` crop (timm and torchvision evaluation transforms).

    Example:
        >>> from camloc.data.imaging import Preprocess, load_image
        >>> pre = Preprocess(input_size=(224, 224), mode="crop", resize_size=256)
        >>> x, geom = pre(load_image("examples/images/cat.jpg"))    # 451 x 300: resized to 384 x 256
        >>> x.shape, (geom.left, geom.top)
        (torch.Size([3, 224, 224]), (80, 16))
    """

    input_size: tuple[int, int] = (224, 224)
    mode: str = "crop"
    resize_size: int | tuple[int, int] | None = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.mode not in ("resize", "crop"):
            raise ValueError(f"mode must be 'resize' or 'crop', not {self.mode!r}")
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATIONS)}")

    @property
    def region_mode(self) -> str:
        """Which region of each image the network sees: ``"full"`` (mode ``"resize"``) or ``"crop"``."""
        return REGION_MODES[self.mode]

    def with_mode(self, mode: str) -> Preprocess:
        """The same normalisation with another geometry mode (``"resize"`` or ``"crop"``)."""
        return Preprocess(self.input_size, mode, self.resize_size, self.mean, self.std, self.interpolation)

    def geometry(self, width: int, height: int) -> Geometry:
        """The resize-and-crop geometry this preprocessing applies to a ``width x height`` image."""
        ih, iw = self.input_size
        if self.mode == "resize":
            rw, rh = iw, ih
        elif isinstance(self.resize_size, int):
            rw, rh = _shorter_side_size(width, height, self.resize_size)
        elif self.resize_size is None:
            rw, rh = _shorter_side_size(width, height, min(ih, iw))
        else:
            rh, rw = self.resize_size
        # torchvision's center_crop offsets
        left = int(round((rw - iw) / 2.0)) if self.mode == "crop" else 0
        top = int(round((rh - ih) / 2.0)) if self.mode == "crop" else 0
        return Geometry(width, height, rw / width, rh / height, left, top, iw, ih, self.region_mode)

    def resize_crop(self, img: Image.Image) -> tuple[Image.Image, Geometry]:
        """Apply the geometric part only; returns the network-size RGB image and its geometry."""
        geom = self.geometry(*img.size)
        rw, rh = round(geom.sx * geom.width), round(geom.sy * geom.height)
        out = img.resize((rw, rh), _INTERPOLATIONS[self.interpolation])
        if self.mode == "crop":
            # PIL pads with black outside the image, like torchvision's center_crop does.
            out = out.crop((geom.left, geom.top, geom.left + geom.input_width, geom.top + geom.input_height))
        return out, geom

    def array(self, img: Image.Image) -> np.ndarray:
        """RGB PIL image -> float32 array 3 x H x W, ``(x / 255 - mean) / std`` in float32 (NumPy only).

        Example:
            >>> pre = Preprocess((2, 2), "resize", None)
            >>> x = pre.array(Image.new("RGB", (2, 2), (255, 0, 0)))     # (1 - 0.485) / 0.229, (0 - 0.456) / 0.224, ...
            >>> x.shape, x.dtype, [round(float(v), 4) for v in x[:, 0, 0]]
            ((3, 2, 2), dtype('float32'), [2.2489, -2.0357, -1.8044])
        """
        arr = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
        mean = np.asarray(self.mean, dtype=np.float32).reshape(3, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(3, 1, 1)
        return np.ascontiguousarray((arr - mean) / std)

    def normalize(self, img: Image.Image) -> torch.Tensor:
        """RGB PIL image -> float tensor 3 x H x W: :meth:`array` as a tensor."""
        import torch

        return torch.from_numpy(self.array(img))

    def __call__(self, img: Image.Image) -> tuple[torch.Tensor, Geometry]:
        """Resize and crop (:meth:`resize_crop`), then normalize: the network input and its geometry."""
        resized, geom = self.resize_crop(img)
        return self.normalize(resized), geom

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        """The preprocessing :meth:`to_dict` recorded.

        Example:
            >>> pre = Preprocess((224, 224), "crop", (256, 256))
            >>> Preprocess.from_dict(pre.to_dict()) == pre
            True
        """
        resize = d["resize_size"]
        return cls(tuple(d["input_size"]), d["mode"], tuple(resize) if isinstance(resize, list) else resize,
                   tuple(d["mean"]), tuple(d["std"]), d["interpolation"])

    def to_dict(self) -> dict[str, Any]:
        """The preprocessing as JSON-ready values (recorded beside results)."""
        return {
            "input_size": list(self.input_size),
            "mode": self.mode,
            "resize_size": self.resize_size if not isinstance(self.resize_size, tuple) else list(self.resize_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
        }
