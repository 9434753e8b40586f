"""Box hits at every threshold of a uint8 score map, in one pass (the MaxBoxAcc core).

The wsolevaluation protocol (docs/protocols.md, "The wsolevaluation protocol") thresholds ``U = uint8(255 * map)`` at
``t = int(tau * max(U))`` for 1,000 values of tau, runs OpenCV's contour search (``RETR_TREE``) on
each ``U > t``, and asks whether some box of some contour reaches IoU >= delta with some
ground-truth box. Done straightforwardly (:func:`reference_hits`) that is 1,000 contour searches
per image.

A uint8 map has at most 256 distinct thresholds, and the regions at all thresholds nest into one
tree (the max-tree). :func:`all_contour_table` walks it once with a union-find in compiled code
(:mod:`camloc.eval.maxtree`):

* outer contours of ``U > t`` are its 8-connected components; adding pixels from level 255 down
  to 1 grows and merges them, each component's bounding box being the union of its parts. An
  outer contour's box is ``[x0, y0, x1 + 1, y1 + 1]`` of the component's pixel bounding box;
* hole contours are the 4-connected components of ``U <= t`` that do not touch the image border;
  adding pixels from level 0 up grows them. OpenCV traces a hole along the foreground pixels
  4-adjacent to it, so its box is the hole's pixel box grown by one: ``[x0 - 1, y0 - 1, x1 + 2, y1 + 2]``;
* both clip ``x1, y1`` at ``W - 1, H - 1`` as the reference does; with no contour at all the box
  is ``[0, 0, 0, 0]``.

For each IoU threshold a running count of boxes that reach it gives the hit at every ``t``.
The largest-contour rule of MaxBoxAcc (V1) depends on OpenCV's polygon areas, so
:func:`largest_contour_table` runs OpenCV once per distinct mask (at most 256) rather than per tau,
and only where ``U > t`` has two contours or more and some contour box reaches the IoU threshold:
the number of contours ``RETR_TREE`` reports at every t is known from the sweep (outer contours =
components, holes = components minus the Euler number, :func:`contour_counts`); with one contour
the largest is the only one, whose hit the all-contour sweep already has, and where no contour box
reaches the threshold the largest does not either. On real CAMs about four thresholds in five
have one contour.
The tests and ``benchmarks/evaluate.py`` check all of this against :func:`reference_hits`.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..cam.rules import ThresholdRule, contour_boxes
from .maxtree import LEVELS, all_contour_sweep, best_iou, euler_numbers, sweep


def thresholds_list(interval: float = 0.001) -> np.ndarray:
    """The protocol's tau values: ``numpy.arange(0, 1, interval)``."""
    return np.arange(0, 1, interval)


def iou_matrix(boxes: np.ndarray, gt: np.ndarray, inclusive: bool = True) -> np.ndarray:
    """IoU of every box (N x 4, ``[x0, y0, x1, y1]``) with every ground-truth box (G x 4): N x G.

    ``inclusive``: a box covers the pixels x0..x1 and y0..y1, both ends included (the WSOL protocols': its
    width is ``x1 - x0 + 1``); False: COCO's continuous coordinates (width ``x1 - x0``), 0 where both boxes
    are empty. Integer boxes (the protocols') are computed in int64, float boxes (original pixels) in float64.

    Example:
        >>> iou_matrix([[0, 0, 10, 10]], [[5, 0, 15, 10]]).round(4).tolist()        # 6 x 11 of 16 x 11
        [[0.375]]
        >>> iou_matrix([[0, 0, 10, 10]], [[5, 0, 15, 10]], inclusive=False).round(4).tolist()   # 5 of 15
        [[0.3333]]
    """
    boxes, gt = np.asarray(boxes), np.asarray(gt)
    dtype = np.float64 if "f" in (boxes.dtype.kind, gt.dtype.kind) else np.int64
    boxes = boxes.astype(dtype).reshape(-1, 1, 4)
    gt = gt.astype(dtype).reshape(1, -1, 4)
    one = 1 if inclusive else 0
    iw = np.maximum(0, np.minimum(boxes[..., 2], gt[..., 2]) - np.maximum(boxes[..., 0], gt[..., 0]) + one)
    ih = np.maximum(0, np.minimum(boxes[..., 3], gt[..., 3]) - np.maximum(boxes[..., 1], gt[..., 1]) + one)
    inter = iw * ih
    area_a = (boxes[..., 2] - boxes[..., 0] + one) * (boxes[..., 3] - boxes[..., 1] + one)
    area_b = (gt[..., 2] - gt[..., 0] + one) * (gt[..., 3] - gt[..., 1] + one)
    union = area_a + area_b - inter
    if inclusive:  # every box covers at least one pixel
        return inter / union
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def contour_boxes_at(u8: np.ndarray, t: int, all_contours: bool, rethinking: bool = False) -> np.ndarray:
    """Boxes of ``U > t`` by the protocol's conventions.

    wsolevaluation (default): per contour ``(x, y, min(x+w, W-1), min(y+h, H-1))``, no contour gives
    ``[0, 0, 0, 0]``. ``rethinking=True``: ``(x, y, x+w, y+h)`` unclipped, no contour gives the whole
    image ``[0, 0, W, H]`` (docs/protocols.md, "The box rule").
    """
    if rethinking:
        if all_contours:
            raise ValueError("the rethinking protocol draws one box: all_contours does not apply")
        return np.asarray([contour_boxes(u8 > t)[0]], np.int64)  # the one box rule of camloc.cam.boxes
    h, w = u8.shape
    contours, _ = cv2.findContours((u8 > t).astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.asarray([[0, 0, 0, 0]], np.int64)
    if not all_contours:
        contours = [max(contours, key=cv2.contourArea)]
    out = []
    for c in contours:
        x, y, bw, bh = cv2.boundingRect(c)
        out.append((x, y, min(x + bw, w - 1), min(y + bh, h - 1)))
    return np.asarray(out, np.int64)


def threshold_levels(u8: np.ndarray, taus: np.ndarray, percentile: float = 100.0, rule: str = "percentile"
                     ) -> np.ndarray:
    """``t = int(tau * s)`` per tau, with ``s = max(U)`` or (PaS) ``percentile(U)``.

    ``s`` is computed as :func:`camloc.cam.boxes.standard_values` computes it for a single threshold.

    With an automatic ``rule`` (``otsu``, ``li``, ``triangle``, ``yen``) ``percentile`` is not used:
    every tau gets the rule's threshold of the map (:func:`camloc.cam.boxes.thresholds`), so the
    sweep's best is the accuracy at that one threshold.

    Example:
        >>> u = np.array([[0, 0, 10, 200, 210, 220]], np.uint8)
        >>> (threshold_levels(u, np.array([0.0, 0.5])).tolist(),
        ...  threshold_levels(u, np.array([0.0, 0.5]), rule="otsu").tolist())
        ([0, 110], [10, 10])
    """
    if rule != "percentile" or percentile < 100.0:  # torch only here: scoring maps at the max stays torch-free
        import torch

        from ..cam.boxes import standard_values, thresholds
    if rule != "percentile":
        t = int(thresholds(torch.from_numpy(np.ascontiguousarray(u8))[None], ThresholdRule.adaptive(rule))[0])
        return np.full(len(taus), t, np.int64)
    if percentile >= 100.0:  # the max: what standard_values gives, without a torch call per map
        s = float(np.max(u8))
    else:
        s = float(standard_values(torch.from_numpy(np.ascontiguousarray(u8))[None], percentile)[0])
    return (taus * s).astype(np.int64)


def reference_hits(
    u8: np.ndarray, gt: np.ndarray, deltas, taus: np.ndarray, all_contours: bool, percentile: float = 100.0
) -> np.ndarray:
    """The straightforward algorithm: one contour search per tau. Returns T x D booleans."""
    deltas = np.asarray(deltas, dtype=np.float64)
    hits = np.zeros((len(taus), len(deltas)), bool)
    for i, t in enumerate(threshold_levels(u8, taus, percentile)):
        best = iou_matrix(contour_boxes_at(u8, int(t), all_contours), gt).max()
        hits[i] = best >= deltas / 100.0
    return hits


_POOL = None


def _pool():
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="camloc-sweep")
    return _POOL


def all_contour_table(u8: np.ndarray, gt: np.ndarray, deltas, parallel: bool = False, counts: bool = False):
    """``hits[t, d]`` (t = 0..255): does any contour box of ``U > t`` reach IoU >= deltas[d] / 100?

    Identical to running the reference's ``RETR_TREE`` contour search with all contours at each t.
    Sequentially (one compiled call), the hole sweep stops at the last t that has a hole (holes =
    components minus the Euler number) where the outer contours miss some IoU threshold. With
    ``parallel`` the outer and hole sweeps run at once on two threads (the compiled code releases the
    GIL): less wall time, a little more CPU time.

    Args:
        u8: the H x W uint8 map.
        gt: G x 4 ground-truth boxes on the map.
        deltas: IoU thresholds in percent.
        parallel: run the outer and hole sweeps on two threads.
        counts: also return :func:`contour_counts` of the map, from the same sweep.

    Returns:
        ``hits`` (256 x D booleans), or ``(hits, counts)`` with ``counts``.
    """
    u8 = np.ascontiguousarray(u8, dtype=np.uint8)
    gt = np.ascontiguousarray(gt, dtype=np.int64).reshape(-1, 4)
    cut = np.asarray(deltas, dtype=np.float64) / 100.0
    top = int(u8.max())
    if parallel:
        outer = _pool().submit(sweep, u8, gt, cut, False, LEVELS)
        hole_hits = sweep(u8, gt, cut, True, LEVELS)[0]
        euler = euler_numbers(u8) if counts else None
        outer_hits, components = outer.result()
        hits = outer_hits | hole_hits
        # no contour at all (t >= max U): the reference's box [0, 0, 0, 0]
        hits[top:] = best_iou(0, 0, 0, 0, gt) >= cut
    else:
        hits, components, euler = all_contour_sweep(u8, gt, cut)
        if counts and euler.shape[0] == 0:
            euler = euler_numbers(u8)
    if not counts:
        return hits
    return hits, 2 * components - euler  # outer contours + holes (components - Euler number)


def contour_counts(u8: np.ndarray) -> np.ndarray:
    """How many contours OpenCV's ``RETR_TREE`` search finds in ``U > t``, for t = 0..255.

    Outer contours are the 8-connected components of ``U > t`` and holes the components minus the
    Euler number, both from one sweep (no OpenCV call).
    """
    return all_contour_table(u8, np.zeros((0, 4), np.int64), (), counts=True)[1]


def largest_contour_table(
    u8: np.ndarray, gt: np.ndarray, deltas, levels: np.ndarray, rethinking: bool = False,
    shortcut: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """``hits[t, d]`` with the largest contour only (MaxBoxAcc V1), for the t values in ``levels``.

    ``U > t`` only changes where t crosses a level present in U, so OpenCV runs once per distinct
    mask among the requested t values, and (wsolevaluation's conventions) only where ``U > t`` has
    two contours or more and some contour box reaches an IoU threshold: with none or one contour, the
    all-contour hits are the largest contour's, and where no contour box reaches a threshold, the
    largest contour's does not either. Entries
    of unrequested t stay False. ``rethinking`` switches to that protocol's box conventions (see
    :func:`contour_boxes_at`), where OpenCV decides every mask.

    Args:
        u8: the H x W uint8 map.
        gt: G x 4 ground-truth boxes on the map.
        deltas: IoU thresholds in percent.
        levels: the thresholds t wanted.
        rethinking: the rethinking protocol's boxes.
        shortcut: ``(hits, counts)`` of :func:`all_contour_table` with ``counts=True`` for the same
            map, ground truth and deltas, when the caller has them (computed here otherwise).
    """
    cut = np.asarray(deltas, dtype=np.float64) / 100.0
    gt = np.ascontiguousarray(gt, dtype=np.int64).reshape(-1, 4)
    hits = np.zeros((LEVELS, len(cut)), bool)
    present = np.flatnonzero(np.bincount(u8.ravel(), minlength=LEVELS))
    wanted = np.unique(np.clip(levels, 0, LEVELS - 1))
    if not rethinking:
        all_hits, counts = shortcut if shortcut is not None else all_contour_table(u8, gt, deltas, counts=True)
        # one contour or none: it is the largest; no contour box reaches any delta: neither does the largest
        decided = (counts[wanted] <= 1) | ~all_hits[wanted].any(axis=1)
        hits[wanted[decided]] = all_hits[wanted[decided]]
        wanted = wanted[~decided]
    groups = np.searchsorted(present, wanted, side="right")  # same group <=> same mask
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if len(wanted) else np.zeros(0, np.int64)
    # not strict: with no level wanted, ``starts`` is empty while the stops still hold len(wanted)
    for start, stop in zip(starts, np.r_[starts[1:], len(wanted)], strict=False):
        (box,) = contour_boxes_at(u8, int(wanted[start]), False, rethinking)
        best = best_iou(int(box[0]), int(box[1]), int(box[2]), int(box[3]), gt)
        hits[wanted[start:stop]] = best >= cut
    return hits
