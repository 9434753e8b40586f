"""The results gallery (camloc.gallery, ``DIR/index.html``) read with html.parser, without a browser.

The page embeds its rows as JSON in ``<script type="application/json" id="data">``; these tests parse
the HTML, take that JSON apart and check it against the run's journal: every row there, every link
relative, percent-encoded and pointing at a file that exists (also after the folder is moved), no
``http://`` or ``https://`` anywhere, and hostile file names and labels never turning into markup.
The browser tests (tests/cli/test_gallery_cli.py) click through the same page.
"""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from camloc.cli import main
from camloc.gallery import PAGE_SIZE, THUMB_SIZE, link, render_page, thumbnail, write_page
from camloc.pipeline import write_gallery

from .conftest import EXAMPLES

QUICK = ("--quiet", "--workers", "0", "--format", "jsonl")
#: A file name no page should turn into markup: tags, entities, quotes, a script end, URL characters, unicode.
HOSTILE = "<img src=x onerror=alert(1)> & \"q\" 'a' </script><!-- #1 ?x=%41 ü 猫.jpg"
#: The same as a file name (no ``/``): the script element's end becomes a start, ``<script><!--``.
HOSTILE_FILE = HOSTILE.replace("/", "")


class Page(HTMLParser):
    """Every tag with its attributes, the text of each element by id, and the scripts."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[list] = []
        self._in_script = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self.scripts.append([dict(attrs), ""])
            self._in_script = True

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1][1] += data

    def data(self) -> dict:
        (found,) = [text for attrs, text in self.scripts if attrs.get("type") == "application/json"]
        return json.loads(found)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def journal(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def check_links(out: Path, data: dict) -> int:
    """Every picture link is relative, inside ``out``, and names a file that exists; returns how many."""
    n = 0
    for item in data["items"]:
        for key in ("t", "o"):
            if key in item:
                url = item[key]
                assert "://" not in url and not url.startswith(("/", "..")) and "#" not in url and "?" not in url
                target = (out / unquote(url)).resolve()
                assert target.is_file() and out.resolve() in target.parents, url
                n += 1
    return n


@pytest.fixture
def photos(tmp_path):
    """cat, coffee and rocket, the cat again under a hostile name, and a corrupt file with a hostile name."""
    folder = tmp_path / "in"
    folder.mkdir()
    paths = [EXAMPLES / "cat.jpg", EXAMPLES / "coffee.jpg", EXAMPLES / "rocket.jpg", folder / HOSTILE_FILE,
             folder / ("broken " + HOSTILE_FILE)]
    shutil.copy(EXAMPLES / "cat.jpg", paths[3])
    paths[4].write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return [str(p) for p in paths]


def test_localize_out_writes_a_gallery_of_every_row(photos, tmp_path):
    out = tmp_path / "out"
    res = run("localize", *photos, "--out", out, *QUICK)
    assert res.exit_code == 1, res.output  # the corrupt file fails, the run goes on
    rows = journal(out)
    text = (out / "index.html").read_text(encoding="utf-8")
    page = Page(text)
    data = page.data()
    good = [r for r in rows if "error" not in r]
    assert [i["n"] for i in data["items"]] == [r["image"] for r in good] == photos[:4]
    for item, row in zip(data["items"], good, strict=True):
        assert (item["c"], item["l"], item["s"], item["b"]) == (row["class"], row["label"], round(row["score"], 4),
                                                                [round(v, 1) for v in row["box"]])
        assert unquote(item["o"]) == row["overlay"] and unquote(item["t"]) == row["thumb"]
    assert data["items"][0]["l"] == data["items"][3]["l"] == "tabby" and data["items"][1]["l"] == "espresso"
    assert data["errors"] == [{"n": photos[4], "r": rows[4]["error"]}]
    assert data["errors"][0]["r"].startswith("cannot be opened")
    assert check_links(out, data) == 8
    # nothing from the network: no URL with a scheme, no external src/href, the page forbids fetching
    assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert not [a for _, a in page.tags for k in ("src", "href") if k in a]
    (csp,) = [a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src" not in csp
    # the hostile name is data, never markup: no <img> or comment from it, the raw string nowhere in the page
    assert HOSTILE_FILE not in text and "<script><!--" not in text and "<img" not in text
    assert [t for t, _ in page.tags].count("img") == 0 and [t for t, _ in page.tags].count("script") == 2
    moved = tmp_path / "elsewhere" / "gallery"
    shutil.move(out, moved)  # relative links only: the folder works wherever it goes
    assert check_links(moved, Page((moved / "index.html").read_text(encoding="utf-8")).data()) == 8


def test_thumbnails_are_small_copies_of_the_overlays(tmp_path):
    out = tmp_path / "out"
    assert run("localize", EXAMPLES / "coffee.jpg", "--out", out, *QUICK).exit_code == 0
    (row,) = journal(out)
    full = cv2.imread(str(out / row["overlay"]))
    thumb = cv2.imread(str(out / row["thumb"]))
    assert full.shape == (400, 600, 3) and thumb.shape == (171, THUMB_SIZE, 3)  # 600 x 400 -> 256 x 171
    assert (out / row["thumb"]).read_bytes() == thumbnail(full)  # the overlay (a lossless PNG) made small
    expected = cv2.resize(full, (THUMB_SIZE, 171), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(thumb - expected).mean() < 6.0  # the same picture, JPEG's loss at quality 85 only
    other = cv2.resize(cv2.imread(str(EXAMPLES / "rocket.jpg")), (THUMB_SIZE, 171), interpolation=cv2.INTER_AREA)
    assert np.abs(thumb - other.astype(float)).mean() > 30.0
    small = np.zeros((40, 60, 3), np.uint8)
    assert cv2.imdecode(np.frombuffer(thumbnail(small), np.uint8), cv2.IMREAD_COLOR).shape == (40, 60, 3)  # never enlarged


def test_without_overlays_the_page_lists_the_rows(tmp_path):
    out = tmp_path / "out"
    assert run("localize", EXAMPLES / "cat.jpg", EXAMPLES / "rocket.jpg", "--out", out, "--no-overlays",
               *QUICK).exit_code == 0
    data = Page((out / "index.html").read_text(encoding="utf-8")).data()
    assert [i["n"] for i in data["items"]] == [str(EXAMPLES / "cat.jpg"), str(EXAMPLES / "rocket.jpg")]
    assert not any("t" in i or "o" in i for i in data["items"]) and not (out / "thumbs").exists()
    assert "no pictures: the run was made with --no-overlays" in (out / "index.html").read_text(encoding="utf-8")


def test_a_resumed_run_gets_the_whole_page(tmp_path):
    out = tmp_path / "out"
    images = [EXAMPLES / "cat.jpg", EXAMPLES / "coffee.jpg", EXAMPLES / "rocket.jpg"]
    assert run("localize", images[0], "--out", out, *QUICK).exit_code == 0
    assert [i["n"] for i in Page((out / "index.html").read_text(encoding="utf-8")).data()["items"]] == [str(images[0])]
    res = run("localize", *images, "--out", out, "--resume", *QUICK)
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 2  # the cat was done
    data = Page((out / "index.html").read_text(encoding="utf-8")).data()
    assert [i["n"] for i in data["items"]] == [str(p) for p in images]
    assert check_links(out, data) == 6


def test_a_page_that_cannot_be_written_is_one_line_and_exit_1(tmp_path, monkeypatch):
    import camloc.gallery as gallery

    def full_disk(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gallery, "atomic_write_text", full_disk)
    out = tmp_path / "out"
    res = run("localize", EXAMPLES / "cat.jpg", "--out", out, *QUICK)
    assert res.exit_code == 1 and "Traceback" not in res.output
    (line,) = res.stderr.splitlines()
    assert line == (f"camloc: error: {out / 'index.html'}: cannot write the gallery (No space left on device); "
                    f"every result is in {out / 'results.jsonl'}")
    assert len(journal(out)) == 1


def test_the_writer_escapes_every_text_and_encodes_every_link(tmp_path):
    items = [{"image": HOSTILE, "class": 3, "label": "<b>bold</b> & \"co\"", "score": 0.5, "box": [1, 2, 3, 4],
              "picture": f"overlays/{HOSTILE}.png", "thumb": f"thumbs/{HOSTILE}.jpg"}]
    errors = [{"image": "x</script>.jpg", "reason": "<i>broken</i>"}]
    text = render_page(items, errors, title="<title> & co", notes=["a <note> & more"],
                       table=(["<th>"], [["<td>"]]))
    page = Page(text)
    assert not [t for t, _ in page.tags if t in ("b", "i", "img", "note")]
    assert [t for t, _ in page.tags].count("title") == 1 and [t for t, _ in page.tags].count("td") == 1
    assert "&lt;title&gt; &amp; co" in text and "a &lt;note&gt; &amp; more" in text and "&lt;th&gt;" in text
    data = page.data()  # the JSON gives the texts back exactly
    assert data["items"][0]["n"] == HOSTILE and data["items"][0]["l"] == "<b>bold</b> & \"co\""
    assert data["errors"] == [{"n": "x</script>.jpg", "r": "<i>broken</i>"}]
    assert unquote(data["items"][0]["t"]) == f"thumbs/{HOSTILE}.jpg"
    assert link("overlays/a%2Fb #1?.jpg.png") == "overlays/a%252Fb%20%231%3F.jpg.png"
    assert link("thumbs/ü.jpg") == "thumbs/%C3%BC.jpg"
    assert write_page(tmp_path, items, title="t") == tmp_path / "index.html" and not list(tmp_path.glob(".tmp-*"))


def test_an_evaluation_page_has_its_rows_and_outcomes():
    items = [{"image": "a.jpg", "class": 1, "label": "cat", "predicted": "dog", "score": 0.7,
              "hits": {"cam": {"hit": True, "iou": 0.61234}, "nwc+pas": {"hit": False, "iou": 0.2}}},
             {"image": "b.jpg", "class": 2, "label": "dog"}]
    page = Page(render_page(items, title="e", rows=["cam", "nwc+pas"], class_name="ground-truth class"))
    data = page.data()
    assert data["rows"] == [{"name": "cam", "colour": "#0072B2"}, {"name": "nwc+pas", "colour": "#D55E00"}]
    assert data["items"][0]["h"] == [[True, 0.612], [False, 0.2]] and data["items"][0]["p"] == "dog"
    assert data["items"][1]["h"] == [[None, None], [None, None]]
    outcomes = [a["value"] for t, a in page.tags if t == "option" and ":" in a.get("value", "")]
    assert outcomes == ["miss:0", "hit:0", "miss:1", "hit:1"]
    assert data["pageSize"] == PAGE_SIZE and data["className"] == "ground-truth class"


def test_write_gallery_reads_the_journal_in_input_order(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    rows = [{"image": "b.jpg", "class": 5, "label": "five", "score": 0.25, "box": [0, 0, 9, 9]},
            {"image": "c.jpg", "error": "first try"},
            {"image": "a.jpg", "class": 7, "label": "seven", "score": 0.75, "box": [1, 1, 5, 5]},
            {"image": "c.jpg", "error": "second try"}]
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    data = Page(write_gallery(out, ["a.jpg", "b.jpg", "c.jpg", "not-run.jpg"]).read_text(encoding="utf-8")).data()
    assert [(i["n"], i["c"], i["s"]) for i in data["items"]] == [("a.jpg", 7, 0.75), ("b.jpg", 5, 0.25)]
    assert data["errors"] == [{"n": "c.jpg", "r": "second try"}]


def test_ten_thousand_rows_stay_a_few_megabytes(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "t.jpg")
    items = [{"image": f"photos/folder{i % 97}/image_{i:05d}.jpg", "class": i % 50, "label": f"class number {i % 50}",
              "score": (i * 7919 % 10000) / 10000, "box": [10.25, 20.5, 300.75, 200.0],
              "picture": f"overlays/photos%2Ffolder{i % 97}%2Fimage_{i:05d}.jpg.png",
              "thumb": f"thumbs/photos%2Ffolder{i % 97}%2Fimage_{i:05d}.jpg.jpg"} for i in range(10_000)]
    size = len(render_page(items, title="10k").encode("utf-8"))
    assert size < 4_000_000, size  # about 300 bytes a row
