"""Images and datasets: everything before the network.

* :mod:`~camloc.data.imaging`: robust decoding to RGB, :class:`Preprocess` (resize, crop,
  normalise) and the :class:`Geometry` that maps boxes back to original pixels;
* :mod:`~camloc.data.transforms`: the protocols' test transforms and the training augmentation;
* :mod:`~camloc.data.metadata`: the wsolevaluation metadata reader (:class:`Sample`);
* :mod:`~camloc.data.dataset`: :class:`ImageDataset`, the one Dataset every consumer reads through;
* :mod:`~camloc.data.inputs`: files, folders and ``@lists`` of a batch run;
* :mod:`~camloc.data.synthetic`: the synthetic WSOL benchmark (``camloc synthetic OUT``).

This package imports nothing of camloc's above it (only :mod:`camloc.utils.errors`).
"""

from .dataset import Batch, ImageDataset, Item
from .imaging import Geometry, ImageInput, Preprocess, load_image
from .inputs import Inputs, expand_inputs, find_inputs
from .metadata import MetadataError, Sample, read_dataset
from .transforms import protocol_transform, rethinking_crop, train_transform, wsol_resize

__all__ = [
    "Batch", "Geometry", "ImageDataset", "ImageInput", "Item", "MetadataError", "Preprocess", "Sample",
    "Inputs", "expand_inputs", "find_inputs", "load_image", "protocol_transform", "read_dataset", "rethinking_crop", "train_transform",
    "wsol_resize",
]
