"""A results gallery: one self-contained ``index.html`` beside a run's results, opened from disk.

``camloc localize --out DIR`` and ``camloc evaluate --out DIR`` write ``DIR/index.html`` with this
module: a card per result (a thumbnail linking to the full picture, the class, score and box; for an
evaluation the ground-truth class and a hit or miss per row), a class filter (every class with its
count), a free-text filter on name and label, sorting by score or name, and the failed inputs in
their own section with their reasons.

The page needs no server and no network: its style and script are inline, a Content-Security-Policy
forbids fetching anything but pictures from its own folder, and every link is relative (the page
works from ``file://`` and after its folder is moved). The rows are embedded once as JSON in a
``<script type="application/json">`` and drawn by the page's script, a page of cards at a time, so
10,000 rows stay quick to open; every text from the data is set as text (never as markup) and the
JSON is escaped so that no file name or label can end the script element.

Example:
    >>> write_page(Path("out"), [{"image": "a.jpg", "class": 281, "label": "tabby", "score": 0.43,
    ...            "box": [1, 2, 30, 40], "picture": "overlays/a.jpg.png", "thumb": "thumbs/a.jpg.jpg"}],
    ...            [{"image": "b.jpg", "reason": "not an image"}], title="camloc localize")
    PosixPath('out/index.html')
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence
from urllib.parse import quote

import numpy as np

from .atomic import atomic_write_text

#: The page's file name in an output folder.
PAGE = "index.html"
#: Folder of the thumbnails in an output folder.
THUMBS = "thumbs"
#: A thumbnail's longest side, in pixels.
THUMB_SIZE = 256
#: JPEG quality of the thumbnails.
THUMB_QUALITY = 85
#: Cards drawn at once; "Show more" adds as many again.
PAGE_SIZE = 200
#: Colours of an evaluation's rows in its pictures and badges (Okabe-Ito, told apart with colour blindness;
#: orange is the ground truth's).
ROW_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
#: The ground truth's colour (dashed).
TRUTH_COLOUR = "#E69F00"


def link(relative: str) -> str:
    """A relative path (``/``-separated, inside the output folder) as a URL the page can use.

    Every character a URL gives a meaning to is percent-encoded (``%`` of the escaped artifact names
    included, ``#``, ``?``, spaces, non-ASCII), so the browser opens exactly that file.

    Example:
        >>> link("overlays/photos%2Fcat #1.jpg.png")
        'overlays/photos%252Fcat%20%231.jpg.png'
    """
    return quote(os.fsencode(relative), safe="/")


def thumbnail(bgr: np.ndarray, size: int = THUMB_SIZE) -> bytes:
    """A JPEG of ``bgr`` (H x W x 3 uint8, OpenCV's order), its longest side at most ``size`` pixels.

    Example:
        >>> jpeg = thumbnail(overlay("examples/images/cat.jpg", result))
    """
    import cv2

    h, w = bgr.shape[:2]
    scale = size / max(h, w)
    if scale < 1:
        bgr = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR image
        raise ValueError("OpenCV could not encode the thumbnail")
    return jpeg.tobytes()


def _number(v: Any, digits: int = 4) -> Any:
    return None if v is None else round(float(v), digits)


def _item(d: dict, rows: Sequence[str]) -> dict:
    """A card in the page's compact form (short keys: 10,000 rows stay a few MB)."""
    out: dict[str, Any] = {"n": str(d["image"])}
    if d.get("class") is not None:
        out["c"] = int(d["class"])
    out["l"] = str(d.get("label", d.get("class", "")))
    if d.get("score") is not None:
        out["s"] = _number(d["score"])
    if d.get("box") is not None:
        out["b"] = [_number(v, 1) for v in d["box"]]
    if d.get("picture"):
        out["o"] = link(d["picture"])
    if d.get("thumb") or d.get("picture"):
        out["t"] = link(d.get("thumb") or d["picture"])
    if d.get("predicted") is not None:
        out["p"] = str(d["predicted"])
    if rows:
        hits = d.get("hits") or {}
        out["h"] = [[hits[r].get("hit"), _number(hits[r].get("iou"), 3)] if r in hits else [None, None] for r in rows]
    return out


def _script_json(data: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` in it at all."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(
    items: Sequence[dict],
    errors: Sequence[dict] = (),
    *,
    title: str,
    notes: Sequence[str] = (),
    rows: Sequence[str] = (),
    table: Optional[tuple[Sequence[str], Sequence[Sequence[Any]]]] = None,
    class_name: str = "class",
) -> str:
    """The page's HTML (see :func:`write_page` for the arguments)."""
    colours = {r: ROW_COLOURS[i % len(ROW_COLOURS)] for i, r in enumerate(rows)}
    data = {"items": [_item(d, rows) for d in items],
            "errors": [{"n": str(e["image"]), "r": str(e["reason"])} for e in errors],
            "rows": [{"name": r, "colour": colours[r]} for r in rows], "pageSize": PAGE_SIZE, "className": class_name}
    esc = html.escape
    parts = [f"<h1>{esc(title)}</h1>"]
    summary = f"{len(items)} result{'s' * (len(items) != 1)}, {len(errors)} failed input{'s' * (len(errors) != 1)}"
    parts.append(f'<p class="summary">{esc(summary)}</p>')
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    if table is not None:
        head, body = table
        parts.append('<table class="metrics"><thead><tr>' + "".join(f"<th>{esc(str(h))}</th>" for h in head)
                     + "</tr></thead><tbody>" + "".join(
                         "<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in row) + "</tr>" for row in body)
                     + "</tbody></table>")
    outcome = ""
    if rows:
        options = "".join(f'<option value="{k}:{i}">{esc(word)} in {esc(r)}</option>'
                          for i, r in enumerate(rows) for k, word in (("miss", "miss"), ("hit", "hit")))
        outcome = f'<label>Outcome <select id="outcome"><option value="">all</option>{options}</select></label>'
    return _TEMPLATE.format(
        title=esc(title), header="\n".join(parts), class_name=esc(class_name.capitalize()), outcome=outcome,
        n=len(items), style=_STYLE, script=_SCRIPT, data=_script_json(data))


def write_page(
    out: Path,
    items: Sequence[dict],
    errors: Sequence[dict] = (),
    *,
    title: str,
    notes: Sequence[str] = (),
    rows: Sequence[str] = (),
    table: Optional[tuple[Sequence[str], Sequence[Sequence[Any]]]] = None,
    class_name: str = "class",
) -> Path:
    """Write ``out/index.html`` (atomically): the gallery of ``items``, then the failed ``errors``.

    Args:
        out: the output folder; every path in ``items`` is relative to it.
        items: one dict per card: ``image`` (its name), ``class`` (index) and ``label`` (the class the
            filter groups by), ``score``, ``box`` ([x0, y0, x1, y1]), ``picture`` (the full picture)
            and ``thumb`` (its thumbnail; the picture itself where absent), ``predicted`` (the
            predicted label, where ``label`` is the ground truth) and ``hits`` (``{row: {"hit":
            bool, "iou": float}}`` for each of ``rows``). Only ``image`` is required.
        errors: ``{"image", "reason"}`` per input that gave no result.
        title: the page's title.
        notes: lines said under the title (settings, what a hit means, what was left out).
        rows: an evaluation's rows (variants), each with its colour, a badge per card and an
            outcome filter.
        table: ``(header, rows)`` of a small table under the notes (an evaluation's metrics).
        class_name: what the class filter is called (``ground-truth class`` for an evaluation).

    Returns:
        The page's path.
    """
    path = Path(out) / PAGE
    atomic_write_text(path, render_page(items, errors, title=title, notes=notes, rows=rows, table=table,
                                        class_name=class_name))
    return path


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="camloc">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header>
{header}
</header>
<section id="errors" hidden>
<details><summary><h2>Failed inputs</h2></summary>
<table><thead><tr><th>input</th><th>reason</th></tr></thead><tbody id="error-rows"></tbody></table>
</details>
</section>
<nav class="controls">
<label>{class_name} <select id="class"><option value="">all ({n})</option></select></label>
<label>Filter <input id="text" type="search" placeholder="name or label" autocomplete="off"></label>
<label>Sort <select id="sort">
<option value="score-desc">score, high to low</option>
<option value="score-asc">score, low to high</option>
<option value="name-asc">name, A to Z</option>
<option value="name-desc">name, Z to A</option>
</select></label>
{outcome}
<span id="count" aria-live="polite"></span>
</nav>
<noscript><p class="warn">This page draws its {n} results with JavaScript; results.jsonl (or result.json) holds them too.</p></noscript>
<main id="grid"></main>
<p><button id="more" type="button" hidden>Show more</button></p>
<script type="application/json" id="data">{data}</script>
<script>{script}</script>
</body>
</html>
"""

_STYLE = """
:root{--fg:#1b1b1b;--muted:#555;--line:#d0d0d0;--bg:#fafafa;--card:#fff;--hit:#0a6b2d;--miss:#a3140f}
*{box-sizing:border-box}
body{margin:0;padding:16px 20px 40px;font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:var(--fg);background:var(--bg)}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:10px 0 8px;display:inline-block}
summary{cursor:pointer}#errors{margin-bottom:6px}#errors table{margin-bottom:8px}
.summary{margin:0 0 6px;color:var(--muted)}.notes{margin:4px 0 10px;padding-left:20px;color:var(--muted)}
.warn{color:var(--miss);font-weight:600}
table{border-collapse:collapse;background:var(--card)}th,td{border:1px solid var(--line);padding:4px 10px;text-align:left;vertical-align:top}
.metrics td+td,.metrics th+th{text-align:right;font-variant-numeric:tabular-nums}
.controls{position:sticky;top:0;z-index:2;display:flex;flex-wrap:wrap;gap:10px 18px;align-items:center;padding:10px 0;background:var(--bg);border-bottom:1px solid var(--line);margin-bottom:14px}
.controls label{font-weight:600}.controls select,.controls input{font:inherit;font-weight:400;margin-left:4px;padding:3px 6px;max-width:22em}
#count{color:var(--muted)}
#grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:14px}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;overflow:hidden;display:flex;flex-direction:column}
.pic{display:flex;align-items:center;justify-content:center;height:260px;background:#e9e9e9}
.pic img{max-width:100%;max-height:260px;display:block}
.nopic{color:var(--muted);font-size:13px;padding:10px;text-align:center}
.info{padding:8px 10px;font-size:14px}
.label{font-weight:700;font-size:16px}.cls{color:var(--muted);font-weight:400}
.name{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;color:var(--muted);word-break:break-all}
.nums{font-variant-numeric:tabular-nums;margin-top:2px}
.rowtag{display:inline-flex;align-items:center;gap:4px;margin:3px 8px 0 0;font-size:13px;font-variant-numeric:tabular-nums}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px}
.hit{color:var(--hit);font-weight:700}.miss{color:var(--miss);font-weight:700}
#errors td:first-child{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;word-break:break-all}
button{font:inherit;padding:6px 16px;margin-top:14px}
#errors td:last-child{color:var(--miss)}
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("data").textContent);
  var items = data.items, rows = data.rows, shown = 0, current = [];
  var grid = document.getElementById("grid"), more = document.getElementById("more");
  var classSel = document.getElementById("class"), text = document.getElementById("text");
  var sortSel = document.getElementById("sort"), outcome = document.getElementById("outcome");
  var count = document.getElementById("count");
  var collator = new Intl.Collator(undefined, {numeric: true});
  function el(tag, cls, txt) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (txt !== undefined) e.textContent = txt;
    return e;
  }
  function key(it) { return it.c !== undefined ? String(it.c) : "label:" + it.l; }
  function tail(s, n) { return s.length > n ? "\u2026" + s.slice(s.length - n + 1) : s; }
  var classes = {};
  items.forEach(function (it, i) {
    it.i = i;
    it.low = (it.n + "\n" + it.l + "\n" + (it.p || "")).toLowerCase();
    var k = key(it);
    if (!classes[k]) classes[k] = {label: it.l, c: it.c, count: 0};
    classes[k].count++;
  });
  Object.keys(classes).sort(function (a, b) {
    return classes[b].count - classes[a].count || collator.compare(classes[a].label, classes[b].label);
  }).forEach(function (k) {
    var c = classes[k], o = el("option", null, c.label + (c.c !== undefined ? " (" + c.c + ")" : "") + " \u00b7 " + c.count);
    o.value = k;
    classSel.appendChild(o);
  });
  function card(it) {
    var d = el("article", "card");
    d.dataset.index = it.i;
    d.dataset.cls = key(it);
    var pic = el("div", "pic");
    if (it.t) {
      var img = el("img");
      img.src = it.t;
      img.alt = it.n;
      img.loading = "lazy";
      if (it.o) { var a = el("a"); a.href = it.o; a.title = "open the full picture"; a.appendChild(img); pic.appendChild(a); }
      else pic.appendChild(img);
    } else pic.appendChild(el("span", "nopic", "no picture (written without overlays)"));
    d.appendChild(pic);
    var info = el("div", "info");
    var lab = el("div", "label", it.l);
    if (it.c !== undefined) lab.appendChild(el("span", "cls", " (" + it.c + ")"));
    info.appendChild(lab);
    if (it.p !== undefined) info.appendChild(el("div", "pred", "predicted: " + it.p));
    var nums = [];
    if (it.s !== undefined) nums.push("score " + it.s.toFixed(3));
    if (it.b) nums.push("box [" + it.b.map(function (v) { return v.toFixed(1); }).join(", ") + "]");
    if (nums.length) info.appendChild(el("div", "nums", nums.join(" \u00b7 ")));
    if (it.h) {
      var tags = el("div", "tags");
      it.h.forEach(function (h, r) {
        var t = el("span", "rowtag");
        var sw = el("span", "sw"); sw.style.background = rows[r].colour; t.appendChild(sw);
        t.appendChild(el("span", null, rows[r].name));
        var word = h[0] === true ? "hit" : h[0] === false ? "miss" : "n/a";
        t.appendChild(el("span", word === "n/a" ? null : word, (h[0] === true ? "\u2713 " : h[0] === false ? "\u2717 " : "") + word));
        if (h[1] !== null && h[1] !== undefined) t.appendChild(el("span", null, "IoU " + h[1].toFixed(2)));
        tags.appendChild(t);
      });
      info.appendChild(tags);
    }
    var name = el("div", "name", tail(it.n, 90));
    name.title = it.n;
    info.appendChild(name);
    d.appendChild(info);
    return d;
  }
  function score(it) { return it.s === undefined ? -Infinity : it.s; }
  function update() {
    var t0 = performance.now();
    var k = classSel.value, q = text.value.trim().toLowerCase(), oc = outcome ? outcome.value : "";
    var want = null, row = -1;
    if (oc) { want = oc.split(":")[0] === "hit"; row = +oc.split(":")[1]; }
    current = items.filter(function (it) {
      return (!k || key(it) === k) && (!q || it.low.indexOf(q) >= 0) && (row < 0 || it.h[row][0] === want);
    });
    var s = sortSel.value;
    current.sort(function (a, b) {
      if (s === "score-desc") return score(b) - score(a) || a.i - b.i;
      if (s === "score-asc") return score(a) - score(b) || a.i - b.i;
      var c = collator.compare(a.n, b.n);
      return (s === "name-asc" ? c : -c) || a.i - b.i;
    });
    grid.textContent = "";
    shown = 0;
    page();
    window.galleryTimings = {update: performance.now() - t0};
  }
  function page() {
    var frag = document.createDocumentFragment(), end = Math.min(current.length, shown + data.pageSize);
    for (var i = shown; i < end; i++) frag.appendChild(card(current[i]));
    grid.appendChild(frag);
    shown = end;
    count.textContent = "showing " + shown + " of " + current.length + (current.length !== items.length ? " matching (" + items.length + " in all)" : "");
    more.hidden = shown >= current.length;
    more.textContent = "Show " + Math.min(data.pageSize, current.length - shown) + " more";
  }
  var errBody = document.getElementById("error-rows");
  data.errors.forEach(function (e) {
    var tr = el("tr");
    tr.appendChild(el("td", null, e.n));
    tr.appendChild(el("td", null, e.r));
    errBody.appendChild(tr);
  });
  if (data.errors.length) {
    var sec = document.getElementById("errors");
    sec.hidden = false;
    sec.querySelector("h2").textContent = "Failed inputs (" + data.errors.length + ")";
    sec.querySelector("details").open = data.errors.length <= 20;
  }
  [classSel, sortSel, outcome].forEach(function (e) { if (e) e.addEventListener("change", update); });
  text.addEventListener("input", update);
  more.addEventListener("click", page);
  update();
  document.body.dataset.ready = "1";
})();
"""
