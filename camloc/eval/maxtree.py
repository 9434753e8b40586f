"""The max-tree sweep in compiled code.

It gives the box hits of every contour of ``U > t`` at all 256 thresholds of a uint8 map from one
union-find pass, and the Euler numbers that count its holes.

:func:`camloc.eval.boxacc.all_contour_table` is the interface and its module docs the algorithm:
outer contours are the 8-connected components of ``U > t``, grown from level 255 down; holes the
4-connected components of ``U <= t`` off the border, grown from level 0 up (:func:`sweep`).
"""

from __future__ import annotations

import numpy as np

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; keep the module importable
    def njit(*_args, **_kwargs):
        """Stand-in for numba's ``njit`` decorator: the function stays plain Python."""
        return lambda fn: fn


#: The levels of a uint8 map.
LEVELS = 256


@njit(cache=True, inline="always")
def _find(parent, i):
    """The root of pixel i's component, halving the path on the way."""
    while parent[i] != i:  # path halving
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True)
def best_iou(bx0, by0, bx1, by1, gt):
    """The best inclusive-pixel IoU of the box ``[bx0, by0, bx1, by1]`` with a G x 4 ground truth.

    It is computed as :func:`camloc.eval.boxacc.iou_matrix` computes it; 0 without ground truth.
    """
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


@njit(cache=True)
def _level_order(u8, w2):
    """The pixels in level order (a counting sort), with their x and y.

    ``order[counts[v]:counts[v + 1]]`` are the pixels of level v, as indices into the image padded by
    one pixel (row length ``w2``).
    """
    height, width = u8.shape
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
    return counts, order, order_x, order_y


@njit(cache=True, inline="always")
def _union(parent, size, box, border, counted, live, rp, rq):
    """Merge the components of roots ``rp`` and ``rq``; returns the surviving root.

    The smaller joins the larger, which takes the union of their boxes; the absorbed root leaves ``live``.
    """
    if size[rp] >= size[rq]:
        a, b = rp, rq
    else:
        a, b = rq, rp
    for d in range(live.shape[0]):  # b stops being a component
        if counted[b, d]:
            live[d] -= 1
            counted[b, d] = False
    parent[b] = a
    size[a] += size[b]
    box[a, 0] = min(box[a, 0], box[b, 0])
    box[a, 1] = min(box[a, 1], box[b, 1])
    box[a, 2] = max(box[a, 2], box[b, 2])
    box[a, 3] = max(box[a, 3], box[b, 3])
    border[a] = border[a] or border[b]
    return a


@njit(cache=True, inline="always")
def _add_pixel(p, px, py, edge, offs, parent, size, box, border, counted, stamp, live):
    """Add pixel ``p`` (at ``px, py``; ``edge``: on the image border) to the union-find.

    It joins its first added neighbour's component, merging any other neighbour's into it, or founds its own.

    Returns:
        ``(root, changed, n)``: p's root, whether that root's box or border changed (its IoU is then
        recomputed), and the change in the number of components (+1 new, -1 per merge).
    """
    rp = -1  # p's root; -1 until p joins a neighbour's component or founds its own
    changed = False
    n = 0
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
        rp = _union(parent, size, box, border, counted, live, rp, rq)
        n -= 1
        changed = True
    if rp < 0:  # no added neighbour: a new component
        parent[p] = p
        size[p] = 1
        stamp[p] = 0
        counted[p, :] = False
        n += 1
        box[p, 0] = px
        box[p, 1] = py
        box[p, 2] = px
        box[p, 3] = py
        border[p] = edge
        rp = p
        changed = True
    return rp, changed, n


@njit(cache=True, inline="always")
def _update_live(dirty, n_dirty, parent, box, border, counted, live, gt, cut, holes, width, height):
    """At the end of a level, recompute the best IoU of each dirty root's contour box once and update ``live``.

    ``live[d]`` is the number of components whose box reaches ``cut[d]``. An outer contour's box is
    ``[x0, y0, x1 + 1, y1 + 1]`` of its pixels, a hole's ``[x0 - 1, y0 - 1, x1 + 2, y1 + 2]``, both
    clipped at ``W - 1, H - 1``; a hole touching the border is background and reaches nothing.
    """
    for k in range(n_dirty):
        r = dirty[k]
        if parent[r] != r:  # absorbed later in this level; its part was already removed
            continue
        if border[r]:  # touches the image border: background, not a hole
            best = -1.0
        elif holes:
            best = best_iou(box[r, 0] - 1, box[r, 1] - 1, min(box[r, 2] + 2, width - 1),
                            min(box[r, 3] + 2, height - 1), gt)
        else:
            best = best_iou(box[r, 0], box[r, 1], min(box[r, 2] + 1, width - 1), min(box[r, 3] + 1, height - 1), gt)
        for d in range(cut.shape[0]):
            reach = best >= cut[d]
            if counted[r, d] != reach:
                live[d] += 1 if reach else -1
                counted[r, d] = reach


@njit(cache=True, nogil=True)
def sweep(u8, gt, cut, holes, last_level):
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
    counts, order, order_x, order_y = _level_order(u8, w2)

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
            rp, changed, n = _add_pixel(p, px, py, edge, offs, parent, size, box, border, counted, stamp, live)
            n_comp += n
            if changed and stamp[rp] != level + 1:
                stamp[rp] = level + 1
                dirty[n_dirty] = rp
                n_dirty += 1
        _update_live(dirty, n_dirty, parent, box, border, counted, live, gt, cut, holes, width, height)
        # after this level: holes are components of U <= level (t = level);
        # outer contours are components of U >= level, i.e. U > t for t = level - 1
        t = level if holes else level - 1
        if t >= 0:
            components[t] = n_comp
            for d in range(n_d):
                hits[t, d] = live[d] > 0
    return hits, components


@njit(cache=True, nogil=True)
def euler_numbers(u8):
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
def all_contour_sweep(u8, gt, cut):
    """The sequential path in one compiled call.

    That is the outer sweep, Euler numbers, the hole sweep where it can matter, and the no-contour
    rows. Returns the hits, the number of components of ``U > t`` per t, and the Euler numbers
    (empty where they were not needed).
    """
    hits, components = sweep(u8, gt, cut, False, LEVELS)
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
                euler = euler_numbers(u8)
            if components[t] - euler[t] > 0:
                last = t
                break
    if last >= 0:
        holes = sweep(u8, gt, cut, True, last)[0]
        for t in range(LEVELS):
            for d in range(cut.shape[0]):
                hits[t, d] = hits[t, d] or holes[t, d]
    empty = best_iou(0, 0, 0, 0, gt)
    for t in range(top, LEVELS):
        for d in range(cut.shape[0]):
            hits[t, d] = empty >= cut[d]
    return hits, components, euler
