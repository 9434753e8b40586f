"""Box hits at every threshold of a uint8 score map, in one pass (the MaxBoxAcc core).

The wsolevaluation protocol (PROTOCOLS.md section 3) thresholds ``U = uint8(255 * map)`` at
``t = int(tau * max(U))`` for 1,000 values of tau, runs OpenCV's contour search (``RETR_TREE``) on
each ``U > t``, and asks whether some box of some contour reaches IoU >= delta with some
ground-truth box. Done straightforwardly (:func:`reference_hits`) that is 1,000 contour searches
per image.

A uint8 map has at most 256 distinct thresholds, and the regions at all thresholds nest into one
tree (the max-tree). :func:`all_contour_table` walks it once with a union-find in compiled code:

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

from typing import Optional

import cv2
import numpy as np
import torch

from ..cam.boxes import Standard, contour_boxes, standard_values, thresholds

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; keep the module importable
    def njit(*_args, **_kwargs):
        return lambda fn: fn

LEVELS = 256


def thresholds_list(interval: float = 0.001) -> np.ndarray:
    """The protocol's tau values: ``numpy.arange(0, 1, interval)``."""
    return np.arange(0, 1, interval)


def iou_matrix(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Inclusive-pixel IoU of every box (N x 4) with every ground-truth box (G x 4): N x G.

    Integer boxes (the protocols') are computed in int64, float boxes (original pixels) in float64.
    """
    boxes, gt = np.asarray(boxes), np.asarray(gt)
    dtype = np.float64 if "f" in (boxes.dtype.kind, gt.dtype.kind) else np.int64
    boxes = boxes.astype(dtype).reshape(-1, 1, 4)
    gt = gt.astype(dtype).reshape(1, -1, 4)
    iw = np.maximum(0, np.minimum(boxes[..., 2], gt[..., 2]) - np.maximum(boxes[..., 0], gt[..., 0]) + 1)
    ih = np.maximum(0, np.minimum(boxes[..., 3], gt[..., 3]) - np.maximum(boxes[..., 1], gt[..., 1]) + 1)
    inter = iw * ih
    area_a = (boxes[..., 2] - boxes[..., 0] + 1) * (boxes[..., 3] - boxes[..., 1] + 1)
    area_b = (gt[..., 2] - gt[..., 0] + 1) * (gt[..., 3] - gt[..., 1] + 1)
    return inter / (area_a + area_b - inter)


def contour_boxes_at(u8: np.ndarray, t: int, all_contours: bool, rethinking: bool = False) -> np.ndarray:
    """Boxes of ``U > t`` by the protocol's conventions.

    wsolevaluation (default): per contour ``(x, y, min(x+w, W-1), min(y+h, H-1))``, no contour gives
    ``[0, 0, 0, 0]``. ``rethinking=True``: ``(x, y, x+w, y+h)`` unclipped, no contour gives the whole
    image ``[0, 0, W, H]`` (PROTOCOLS.md section 1).
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
    """``t = int(tau * s)`` per tau, with ``s = max(U)`` or (PaS) ``percentile(U)``, computed as
    :func:`camloc.cam.boxes.standard_values` computes it for a single threshold.

    With an automatic ``rule`` (``otsu``, ``li``, ``triangle``, ``yen``) ``percentile`` is not used:
    every tau gets the rule's threshold of the map (:func:`camloc.cam.boxes.thresholds`), so the
    sweep's best is the accuracy at that one threshold.

    Example:
        >>> u = np.array([[0, 0, 10, 200, 210, 220]], np.uint8)
        >>> threshold_levels(u, np.array([0.0, 0.5])).tolist(), threshold_levels(u, np.array([0.0, 0.5]), rule="otsu").tolist()
        ([0, 110], [10, 10])
    """
    if rule != "percentile":
        t = int(thresholds(torch.from_numpy(np.ascontiguousarray(u8))[None], Standard.adaptive(rule))[0])
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


@njit(cache=True, inline="always")
def _find(parent, i):
    while parent[i] != i:  # path halving
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True)
def _best_iou(bx0, by0, bx1, by1, gt):
    best = 0.0
    for g in range(gt.shape[0]):
        iw = min(bx1, gt[g, 2]) - max(bx0, gt[g, 0]) + 1
        ih = min(by1, gt[g, 3]) - max(by0, gt[g, 1]) + 1
        inter = max(0, iw) * max(0, ih)
        area_a = (bx1 - bx0 + 1) * (by1 - by0 + 1)
        area_b = (gt[g, 2] - gt[g, 0] + 1) * (gt[g, 3] - gt[g, 1] + 1)
        v = inter / (area_a + area_b - inter)
        if v > best:
            best = v
    return best


@njit(cache=True, nogil=True)
def _sweep(u8, gt, cut, holes, last_level):
    """Union-find over pixels in level order; returns hits[t, d] for t = 0..255 of one contour kind.

    The image is padded by a frame of never-added pixels so neighbours need no bounds checks.
    Within a level, unions only merge boxes and mark the surviving root dirty; at the end of the
    level each dirty root's IoU is computed once, keeping ``live[d]``, the number of components
    whose contour box reaches ``cut[d]``, exact at every threshold.
    """
    height, width = u8.shape
    w2 = width + 2
    n2 = (height + 2) * w2
    n_d = cut.shape[0]
    counts = np.zeros(LEVELS + 1, np.int64)  # counting sort of pixels by level
    for y in range(height):
        for x in range(width):
            counts[u8[y, x] + 1] += 1
    for v in range(LEVELS):
        counts[v + 1] += counts[v]
    order = np.empty(height * width, np.int32)
    order_x = np.empty(height * width, np.int32)
    order_y = np.empty(height * width, np.int32)
    fill = counts[:LEVELS].copy()
    for y in range(height):
        for x in range(width):
            v = u8[y, x]
            order[fill[v]] = (y + 1) * w2 + x + 1
            order_x[fill[v]] = x
            order_y[fill[v]] = y
            fill[v] += 1

    parent = np.full(n2, -1, np.int32)
    size = np.empty(n2, np.int32)  # per-root fields are set when a root is made
    box = np.empty((n2, 4), np.int32)  # x0, y0, x1, y1 of each root's pixels, packed for locality
    border = np.empty(n2, np.bool_)
    counted = np.empty((n2, n_d), np.bool_)  # this root's contribution to live[d]
    stamp = np.empty(n2, np.int32)  # level + 1 once queued as dirty in that level
    dirty = np.empty(height * width, np.int32)
    live = np.zeros(n_d, np.int64)
    hits = np.zeros((LEVELS, n_d), np.bool_)
    components = np.zeros(LEVELS, np.int64)  # outer sweep: number of components of U > t
    n_comp = 0
    if holes:
        offs = np.array([-w2, w2, -1, 1], np.int32)
    else:
        offs = np.array([-w2 - 1, -w2, -w2 + 1, -1, 1, w2 - 1, w2, w2 + 1], np.int32)

    for step in range(LEVELS):
        level = step if holes else LEVELS - 1 - step
        if holes and level > last_level:  # no hole exists above this level (Euler numbers)
            break
        n_dirty = 0
        for k in range(counts[level], counts[level + 1]):
            p, px, py = order[k], order_x[k], order_y[k]
            edge = holes and (px == 0 or py == 0 or px == width - 1 or py == height - 1)
            rp = -1  # p's root; -1 until p joins a neighbour's component or founds its own
            changed = False
            for j in range(offs.shape[0]):
                pq = parent[p + offs[j]]
                if pq < 0 or pq == rp:  # not added yet, or already joined directly
                    continue
                rq = _find(parent, pq)
                if rq == rp:
                    continue
                if rp < 0:  # first neighbour: p joins its component (cheapest, most common case)
                    parent[p] = rq
                    size[rq] += 1
                    rp = rq
                    if px < box[rq, 0] or py < box[rq, 1] or px > box[rq, 2] or py > box[rq, 3] or edge and not border[rq]:
                        box[rq, 0] = min(box[rq, 0], px)
                        box[rq, 1] = min(box[rq, 1], py)
                        box[rq, 2] = max(box[rq, 2], px)
                        box[rq, 3] = max(box[rq, 3], py)
                        border[rq] = border[rq] or edge
                        changed = True
                    continue
                if size[rp] >= size[rq]:
                    a, b = rp, rq
                else:
                    a, b = rq, rp
                for d in range(n_d):  # b stops being a component
                    if counted[b, d]:
                        live[d] -= 1
                        counted[b, d] = False
                parent[b] = a
                n_comp -= 1
                size[a] += size[b]
                box[a, 0] = min(box[a, 0], box[b, 0])
                box[a, 1] = min(box[a, 1], box[b, 1])
                box[a, 2] = max(box[a, 2], box[b, 2])
                box[a, 3] = max(box[a, 3], box[b, 3])
                border[a] = border[a] or border[b]
                rp = a
                changed = True
            if rp < 0:  # no added neighbour: a new component
                parent[p] = p
                size[p] = 1
                stamp[p] = 0
                counted[p, :] = False
                n_comp += 1
                box[p, 0] = px
                box[p, 1] = py
                box[p, 2] = px
                box[p, 3] = py
                border[p] = edge
                rp = p
                changed = True
            if changed and stamp[rp] != level + 1:
                stamp[rp] = level + 1
                dirty[n_dirty] = rp
                n_dirty += 1
        for k in range(n_dirty):
            r = dirty[k]
            if parent[r] != r:  # absorbed later in this level; its part was already removed
                continue
            if border[r]:  # touches the image border: background, not a hole
                best = -1.0
            elif holes:
                best = _best_iou(box[r, 0] - 1, box[r, 1] - 1, min(box[r, 2] + 2, width - 1), min(box[r, 3] + 2, height - 1), gt)
            else:
                best = _best_iou(box[r, 0], box[r, 1], min(box[r, 2] + 1, width - 1), min(box[r, 3] + 1, height - 1), gt)
            for d in range(n_d):
                reach = best >= cut[d]
                if counted[r, d] != reach:
                    live[d] += 1 if reach else -1
                    counted[r, d] = reach
        # after this level: holes are components of U <= level (t = level);
        # outer contours are components of U >= level, i.e. U > t for t = level - 1
        t = level if holes else level - 1
        if t >= 0:
            components[t] = n_comp
            for d in range(n_d):
                hits[t, d] = live[d] > 0
    return hits, components


@njit(cache=True, nogil=True)
def _euler_numbers(u8):
    """Euler number (8-connected foreground) of ``U > t`` for every t, from Gray's bit quads.

    ``E = (n1 - n3 - 2 nD) / 4`` over all 2 x 2 windows of the zero-padded image, n1 / n3 being
    windows with one / three foreground pixels and nD those with two on a diagonal. A window's
    pattern changes only where t crosses one of its four values, so difference arrays give every t.
    """
    height, width = u8.shape
    acc = np.zeros(LEVELS + 1, np.int64)  # 4 E(t) as differences
    pad = np.full((height + 2, width + 2), -1, np.int16)  # -1: never foreground
    for y in range(height):
        for x in range(width):
            pad[y + 1, x + 1] = u8[y, x]
    for y in range(height + 1):
        for x in range(width + 1):
            v0, v1, v2, v3 = pad[y, x], pad[y, x + 1], pad[y + 1, x], pad[y + 1, x + 1]
            a, b, c, d = v0, v1, v2, v3
            if a > b:  # five-comparator sorting network
                a, b = b, a
            if c > d:
                c, d = d, c
            if a > c:
                a, c = c, a
            if b > d:
                b, d = d, b
            if b > c:
                b, c = c, b
            # three foreground pixels for a <= t < b, one for c <= t < d (t >= 0 only)
            lo = max(a, 0)
            if b > lo:
                acc[lo] -= 1
                acc[b] += 1
            lo = max(c, 0)
            if d > lo:
                acc[lo] += 1
                acc[d] -= 1
            lo = max(b, 0)
            if c > lo:  # two foreground pixels, the two largest: diagonal if (v0, v3) or (v1, v2)
                if (v0 > b and v3 > b) or (v1 > b and v2 > b):
                    acc[lo] -= 2
                    acc[c] += 2
    euler4 = np.cumsum(acc)[:LEVELS]
    return euler4 // 4


@njit(cache=True, nogil=True)
def _all_contours(u8, gt, cut):
    """The sequential path in one compiled call: outer sweep, Euler numbers, the hole sweep where it
    can matter, and the no-contour rows. Returns the hits, the number of components of ``U > t``
    per t, and the Euler numbers (empty where they were not needed)."""
    hits, components = _sweep(u8, gt, cut, False, LEVELS)
    top = u8.max()
    last = -1  # last t below max(U) where a hole exists and the outer contours miss some IoU threshold
    euler = np.zeros(0, np.int64)
    for t in range(top - 1, -1, -1):
        miss = False
        for d in range(cut.shape[0]):
            if not hits[t, d]:
                miss = True
        if miss:
            if euler.shape[0] == 0:
                euler = _euler_numbers(u8)
            if components[t] - euler[t] > 0:
                last = t
                break
    if last >= 0:
        holes = _sweep(u8, gt, cut, True, last)[0]
        for t in range(LEVELS):
            for d in range(cut.shape[0]):
                hits[t, d] = hits[t, d] or holes[t, d]
    empty = _best_iou(0, 0, 0, 0, gt)
    for t in range(top, LEVELS):
        for d in range(cut.shape[0]):
            hits[t, d] = empty >= cut[d]
    return hits, components, euler


_POOL = None


def _pool():
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="camloc-sweep")
    return _POOL


def all_contour_table(u8: np.ndarray, gt: np.ndarray, deltas, parallel: bool = False, counts: bool = False):
    """``hits[t, d]``: does any contour box of ``U > t`` reach IoU >= deltas[d] / 100? (t = 0..255)

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
        outer = _pool().submit(_sweep, u8, gt, cut, False, LEVELS)
        hole_hits = _sweep(u8, gt, cut, True, LEVELS)[0]
        euler = _euler_numbers(u8) if counts else None
        outer_hits, components = outer.result()
        hits = outer_hits | hole_hits
        # no contour at all (t >= max U): the reference's box [0, 0, 0, 0]
        hits[top:] = _best_iou(0, 0, 0, 0, gt) >= cut
    else:
        hits, components, euler = _all_contours(u8, gt, cut)
        if counts and euler.shape[0] == 0:
            euler = _euler_numbers(u8)
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
    shortcut: Optional[tuple[np.ndarray, np.ndarray]] = None,
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
    for start, stop in zip(starts, np.r_[starts[1:], len(wanted)]):
        (box,) = contour_boxes_at(u8, int(wanted[start]), False, rethinking)
        best = _best_iou(int(box[0]), int(box[1]), int(box[2]), int(box[3]), gt)
        hits[wanted[start:stop]] = best >= cut
    return hits
