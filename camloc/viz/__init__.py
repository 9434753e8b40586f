"""The pictures: overlays on photos, the results gallery, and the figures of evaluation and training.

- :mod:`camloc.viz.render`: a photo with its heat map, boxes and label (``camloc.show``, overlays).
- :mod:`camloc.viz.panels`: the panels of ``camloc.show``: which result on which photo, where in the grid.
- :mod:`camloc.viz.drawing`: lines, dashes and labels of the OpenCV pictures, sized by the picture.
- :mod:`camloc.viz.filenames`: how each image's files under ``--out`` are named (after the image, unique).
- :mod:`camloc.viz.jupyter`: how a ``camloc.show`` figure shows once in Jupyter.
- :mod:`camloc.viz.gallery`: the browsable ``index.html`` of a ``--out`` folder; its page template,
  style and script are package data under ``templates/``.
- :mod:`camloc.viz.figures`: accuracy-against-threshold curves, the diagnosis plots, the shared
  figure style (matplotlib, loaded only when a figure is drawn).
- :mod:`camloc.viz.training`: the training curves of ``camloc train``.

It reads maps and boxes (``camloc.cam``, ``camloc.data``) and nothing above them.
"""
