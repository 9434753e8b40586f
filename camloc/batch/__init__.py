"""Batch runs: many images in, a results folder out, resumable and split across processes.

- :mod:`camloc.batch.pipeline`: what ``camloc localize`` runs over files and folders (decoding
  workers, a journal that makes ``--resume`` exact, results files, overlays).
- :mod:`camloc.batch.formats`: the records as a table, JSON lines, CSV, COCO results or a COCO instances file.
- :mod:`camloc.batch.gallery`: a run's ``index.html`` from its journal.
- :mod:`camloc.batch.distributed`: the same run split over torchrun processes, merged in input order.
- :mod:`camloc.batch.torchrun`: torchrun's environment and the process group, which training
  uses too.

Importing this package itself loads nothing; each module is imported by name.
"""
