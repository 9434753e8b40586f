"""The transforms the protocols and the recipes prescribe (docs/protocols.md: both protocols, "Training settings").

Each is written here once; evaluation, calibration and training take them from here.

Example:
    >>> from camloc.data.imaging import load_image
    >>> from camloc.data.transforms import rethinking_crop
    >>> pre = rethinking_crop()                  # resize 256 x 256, center crop 224
    >>> x, geometry = pre(load_image("examples/images/cat.jpg"))
    >>> x.shape, (geometry.left, geometry.top)
    (torch.Size([3, 224, 224]), (16, 16))
"""

from __future__ import annotations

from collections.abc import Callable

from ..utils.defaults import SIZE
from .imaging import IMAGENET_MEAN, IMAGENET_STD, Preprocess

Triple = tuple[float, float, float]


def rethinking_crop(mean: Triple = IMAGENET_MEAN, std: Triple = IMAGENET_STD) -> Preprocess:
    """The rethinking protocol's test transform: resize to 256 x 256 (aspect not kept), center crop 224."""
    return Preprocess((SIZE, SIZE), "crop", (256, 256), tuple(mean), tuple(std), "bilinear")


def wsol_resize(mean: Triple = IMAGENET_MEAN, std: Triple = IMAGENET_STD) -> Preprocess:
    """The wsolevaluation protocol's test transform: resize the whole image to 224 x 224."""
    return Preprocess((SIZE, SIZE), "resize", None, tuple(mean), tuple(std), "bilinear")


def protocol_transform(protocol: str, mean: Triple = IMAGENET_MEAN, std: Triple = IMAGENET_STD) -> Preprocess:
    """The test transform of a protocol by name (``rethinking`` or ``wsolevaluation``)."""
    if protocol == "rethinking":
        return rethinking_crop(mean, std)
    if protocol == "wsolevaluation":
        return wsol_resize(mean, std)
    raise ValueError(f"unknown protocol {protocol!r}")


def train_transform(mean: Triple = IMAGENET_MEAN, std: Triple = IMAGENET_STD, resize: int = 256,
                    crop: int = SIZE) -> Callable:
    """The training augmentation of the authors' recipe: resize ``resize x resize``, random crop, flip.

    Returns a torchvision transform from an RGB PIL image to a normalised 3 x crop x crop tensor.
    """
    import torchvision.transforms as T

    return T.Compose([
        T.Resize((resize, resize), interpolation=T.InterpolationMode.BILINEAR),
        T.RandomCrop(crop),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])
