"""Images and datasets: everything before the network.

* :mod:`~camloc.data.imaging`: robust decoding to RGB, :class:`Preprocess` (resize, crop,
  normalise) and the :class:`Geometry` that maps boxes back to original pixels;
* :mod:`~camloc.data.transforms`: the protocols' test transforms and the training augmentation;
* :mod:`~camloc.data.metadata`: the wsolevaluation metadata reader (:class:`Sample`);
* :mod:`~camloc.data.dataset`: :class:`ImageDataset`, the one Dataset every consumer reads through;
* :mod:`~camloc.data.inputs`: files, folders and ``@lists`` of a batch run;
* :mod:`~camloc.data.location`: where the real photos live (``CAMLOC_DATA``, :func:`data_root`);
* :mod:`~camloc.data.synthetic`: the synthetic WSOL benchmark (``camloc synthetic OUT``).

This package imports nothing of camloc's above it (only :mod:`camloc.utils`). Importing it loads
nothing: each name is imported on first use, so the metadata reader works without torch.
"""

from ..utils.lazy import lazy_namespace

_NAMES = {
    "Batch": ("dataset", "Batch"), "ImageDataset": ("dataset", "ImageDataset"), "Item": ("dataset", "Item"),
    "Geometry": ("imaging", "Geometry"), "ImageInput": ("imaging", "ImageInput"),
    "Preprocess": ("imaging", "Preprocess"), "load_image": ("imaging", "load_image"),
    "data_root": ("location", "data_root"),
    "Inputs": ("inputs", "Inputs"), "expand_inputs": ("inputs", "expand_inputs"),
    "find_inputs": ("inputs", "find_inputs"),
    "MetadataError": ("metadata", "MetadataError"), "Sample": ("metadata", "Sample"),
    "read_dataset": ("metadata", "read_dataset"),
    "protocol_transform": ("transforms", "protocol_transform"), "rethinking_crop": ("transforms", "rethinking_crop"),
    "train_transform": ("transforms", "train_transform"), "wsol_resize": ("transforms", "wsol_resize"),
}
__getattr__, __dir__ = lazy_namespace(__name__, _NAMES)
__all__ = sorted(_NAMES)
