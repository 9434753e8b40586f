"""The results gallery (camloc.viz.gallery, ``DIR/index.html``) read with html.parser, without a browser.

The page embeds its rows as JSON in ``<script type="application/json" id="data">``; these tests parse
the HTML, take that JSON apart and check it against the run's journal: every row there, every link
relative, percent-encoded and pointing at a file that exists (also after the folder is moved), no
``http://`` or ``https://`` anywhere, and hostile file names and labels never turning into markup.
The browser tests (tests/cli/test_gallery_cli.py) click through the same page.
"""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from camloc.batch.gallery import write_gallery
from camloc.cli import main
from camloc.viz.gallery import PAGE_SIZE, THUMB_SIZE, link, render_page, template, thumbnail, write_page

from ..conftest import EXAMPLES

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
    assert data["items"][0]["l"] == data["items"][3]["l"] == "Egyptian cat" and data["items"][1]["l"] == "espresso"
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


def test_every_card_says_which_region_the_model_saw(tmp_path):
    for folder, resize in (("crop", "crop"), ("full", "full")):
        assert run("localize", EXAMPLES / "cat.jpg", "--out", tmp_path / folder, "--resize", resize,
                   *QUICK).exit_code == 0
    (row,) = journal(tmp_path / "crop")
    text = (tmp_path / "crop" / "index.html").read_text(encoding="utf-8")
    (item,) = Page(text).data()["items"]
    assert row["region"] == [93.96, 18.75, 357.04, 281.25] and row["region_mode"] == "crop"
    assert item["r"] == [round(v, 1) for v in row["region"]] and item["m"] == "crop"
    assert ("the model saw center crop 224x224 of the image resized to 256 px on its shorter side (crop_pct 0.875)"
            in text) and "framed in magenta dashes" in text
    manifest = json.loads((tmp_path / "crop" / "run.json").read_text())
    assert manifest["preprocess"]["mode"] == "crop" and manifest["preprocess"]["resize_size"] == 256
    text = (tmp_path / "full" / "index.html").read_text(encoding="utf-8")
    (item,) = Page(text).data()["items"]
    assert item["r"] == [0.0, 0.0, 451.0, 300.0] and item["m"] == "full"
    assert "the model saw the whole image, resized to 224x224" in text
    assert "model saw " in template("gallery.js") and "center crop [" in template("gallery.js")  # what a card says


def test_a_resumed_run_must_see_the_same_region(tmp_path):
    out = tmp_path / "out"
    assert run("localize", EXAMPLES / "cat.jpg", "--out", out, "--no-overlays", *QUICK).exit_code == 0
    res = run("localize", EXAMPLES / "coffee.jpg", "--out", out, "--no-overlays", "--resume", "--resize", "crop",
              *QUICK)
    assert res.exit_code == 2 and "resize: 'full' then, 'crop' now" in res.stderr
    assert "'mode': 'resize'" in res.stderr and "'mode': 'crop'" in res.stderr
    # the default region is the whole image: naming it changes nothing
    res = run("localize", EXAMPLES / "coffee.jpg", "--out", out, "--no-overlays", "--resume", "--resize", "full",
              *QUICK)
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "run.json").read_text())
    del manifest["preprocess"]  # a folder written before the manifest recorded the preprocessing
    (out / "run.json").write_text(json.dumps(manifest))
    res = run("localize", EXAMPLES / "rocket.jpg", "--out", out, "--no-overlays", "--resume", *QUICK)
    assert res.exit_code == 0, res.output
    assert json.loads((out / "run.json").read_text())["preprocess"]["mode"] == "resize"  # recorded from now on


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
    import camloc.viz.gallery as gallery

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
    assert link("overlays/cats/a~2.png") == "overlays/cats/a~2.png"  # folders and collision numbers as they are
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
              "region": [12.5, 0.0, 412.5, 300.0], "region_mode": "crop",
              "picture": f"overlays/folder{i % 97}/image_{i:05d}.png",
              "thumb": f"thumbs/folder{i % 97}/image_{i:05d}.jpg"} for i in range(10_000)]
    size = len(render_page(items, title="10k").encode("utf-8"))
    assert size < 4_000_000, size  # about 300 bytes a row


# -- evaluation: per-image records, pictures, the page ----------------------------------------------------


def _hits(result, row: str) -> list:
    return [rec["rows"][row]["hit"] for rec in result.per_image]


def test_per_image_records_on_painted_rectangles(tmp_path):
    """The Brightness model's map is the white rectangle itself: every row finds its box, and the
    records, views and metrics say the same."""
    import torch

    from camloc.cam.boxes import to_uint8, upsample
    from camloc.data.metadata import read_dataset
    from camloc.eval.batches import protocol_preprocess
    from camloc.eval.boxacc import iou_matrix
    from camloc.eval.evaluation import evaluate
    from camloc.eval.protocols import Settings, gt_boxes

    from ..helpers import Brightness, synthetic_split

    meta, images, _ = synthetic_split(tmp_path)
    samples = read_dataset(meta)
    model = Brightness()
    for protocol in ("rethinking", "wsolevaluation"):
        settings = Settings(protocol=protocol, metrics=("maxboxacc_v2",), interval=0.01)
        plain = evaluate(model, samples, images, settings, progress=False)
        assert plain.per_image == [] and plain.views == {} and plain.operating_points == {}  # nothing unasked
        r = evaluate(model, samples, images, settings, progress=False, per_image=True, views=4)
        assert r.metrics == plain.metrics  # the records change no number
        assert [rec["image_id"] for rec in r.per_image] == [s.image_id for s in samples] and list(r.views) == \
            [s.image_id for s in samples[:4]]
        for rec, sample in zip(r.per_image, samples, strict=True):
            assert (rec["label"], rec["predicted"], rec["label_name"], rec["predicted_name"]) == (0, 0, None, None)
            assert 0.98 < rec["score"] <= 1.0 and set(rec["rows"]) == {"cam", "nwc", "pas", "nwc+pas"}
            for entry in rec["rows"].values():
                assert entry["hit"] is True
                if sample.image_id in r.views or protocol == "rethinking":  # the box: within a pixel or two of the truth
                    truth = gt_boxes(sample, protocol)
                    assert entry["iou"] == pytest.approx(float(iou_matrix([entry["box"]], truth).max()))
                    assert entry["iou"] > 0.96 and np.abs(np.subtract(entry["box"], truth[0])).max() <= 12
                else:
                    assert entry["iou"] is None and entry["box"] is None
        view = r.views["1.png"]
        pixels, _ = protocol_preprocess(protocol, model)(Image.open(images / "1.png").convert("RGB"))
        mean = torch.tensor(protocol_preprocess(protocol, model).mean).view(3, 1, 1)
        std = torch.tensor(protocol_preprocess(protocol, model).std).view(3, 1, 1)
        expected = (pixels * std + mean).mul(255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
        assert view.rgb().shape == (224, 224, 3) and np.abs(view.rgb().astype(int) - expected).mean() < 2.0  # JPEG
        with torch.no_grad():
            feats = model.features(pixels[None])
        cam = (feats * model.fc.weight[0].view(1, -1, 1, 1)).sum(1)  # class 0's CAM: the picture's brightness
        assert np.array_equal(view.u8(("cam", False)), to_uint8(upsample(cam, (224, 224)))[0].numpy())
        assert np.array_equal(view.truth, gt_boxes(samples[1], protocol))
        if protocol == "wsolevaluation":
            assert r.operating_points == {row: {"metric": "maxboxacc_v2", "tau": 0.0, "delta": 50}
                                          for row in ("cam", "nwc", "pas", "nwc+pas")}


def test_per_image_hits_average_to_the_metrics_on_real_photos(lite0):
    """On real photos some boxes miss: a row's hits average to GT-known Loc (rethinking) or to its
    accuracy at IoU 50 at the operating point (wsolevaluation), and each pictured box's IoU agrees
    with its hit."""
    from camloc.data.metadata import read_dataset
    from camloc.eval.boxacc import iou_matrix
    from camloc.eval.evaluation import evaluate
    from camloc.eval.protocols import Settings, gt_boxes

    from ..conftest import data_dir

    root = data_dir("imagenet-val")
    samples = read_dataset(root)[:20]
    for protocol in ("rethinking", "wsolevaluation"):
        r = evaluate(lite0, samples, root, Settings(protocol=protocol, metrics=("maxboxacc_v2",), interval=0.01),
                     progress=False, per_image=True, views=8)
        assert len(r.per_image) == 20 and len(r.views) == 8
        assert {rec["label_name"] for rec in r.per_image} >= {"tiger beetle"}  # ImageNet names for both classes
        for row, m in r.metrics.items():
            hits = _hits(r, row)
            accuracy = m["gt_known_loc"] if protocol == "rethinking" else m["maxboxacc_v2_per_delta"][50]["acc"]
            assert 100.0 * sum(hits) / len(hits) == pytest.approx(accuracy, abs=1e-9)
            assert 0 < sum(hits) < 20  # some hits, some misses: the test can tell them apart
            for rec, sample in zip(r.per_image, samples, strict=True):
                entry = rec["rows"][row]
                if entry["box"] is not None:
                    iou = float(iou_matrix([entry["box"]], gt_boxes(sample, protocol)).max())
                    assert entry["iou"] == pytest.approx(iou) and entry["hit"] == (iou >= 0.5)
            if protocol == "wsolevaluation":
                assert r.operating_points[row]["tau"] == m["maxboxacc_v2_per_delta"][50]["tau"]


def test_an_evaluation_picture_draws_each_rows_box_and_the_dashed_truth():
    import cv2

    from camloc.eval.records import ImageView
    from camloc.viz.gallery import TRUTH_COLOUR, evaluation_picture

    grey = np.full((224, 224, 3), 128, np.uint8)
    flat = np.zeros((224, 224), np.uint8)
    view = ImageView(cv2.imencode(".jpg", grey)[1].tobytes(), {("cam", False): cv2.imencode(".png", flat)[1].tobytes()},
                     np.asarray([[100, 100, 199, 179]]))
    panels = [("cam: hit, IoU 0.800", "#0072B2", [20, 30, 119, 89], ("cam", False), True),
              ("pas: miss, IoU 0.100", "#D55E00", None, ("cam", False), False)]
    pic = evaluation_picture(view, panels, header=["a line"])
    bar, top = 30, 24 + 10
    assert pic.shape == (top + 448 + bar, 2 * 448 + 6, 3)  # two panels side by side, scale 2
    y0 = top + bar
    blue, orange = (178, 114, 0), tuple(int(TRUTH_COLOUR[i:i + 2], 16) for i in (5, 3, 1))
    assert tuple(pic[y0 + 2 * 60, 2 * 20]) == blue and tuple(pic[y0 + 2 * 30, 2 * 70]) == blue  # left and top edges
    assert tuple(pic[y0 + 2 * 30 - 3, 2 * 70]) == (255, 255, 255)  # its white rim (OpenCV: thickness 3 is 5 px)
    assert tuple(pic[y0 + 200, 200 + 3]) == orange and tuple(pic[y0 + 200, 200 + 13]) != orange  # a dash, a gap
    assert tuple(pic[top + 15, 15]) == blue and tuple(pic[top + 15, 448 + 6 + 15]) == (0, 94, 213)  # title swatches
    assert tuple(pic[y0 + 2 * 60, 448 + 6 + 2 * 20]) != blue  # the second row draws no box (none found)


def test_evaluation_pictures_are_named_by_image_id_and_say_what_the_model_saw(tmp_path):
    import timm

    import camloc
    from camloc.data.synthetic import SyntheticSpec, write_synthetic
    from camloc.viz.gallery import write_evaluation

    test = write_synthetic(tmp_path, SyntheticSpec(classes=2, size=32, train=1, train_fullsup=1, test=3))["test"]
    model = timm.create_model("resnet18", num_classes=2)
    for protocol, mode, words in (("rethinking", "crop", "center crop 224x224 of the image resized to 256x256"),
                                  ("wsolevaluation", "full", "the whole image, resized to 224x224")):
        result = camloc.evaluate(model, camloc.read_dataset(test), tmp_path, camloc.Settings(protocol),
                                 progress=False, views=2)
        assert result.preprocess["region_mode"] == mode and result.to_dict()["preprocess"]["region_mode"] == mode
        out = tmp_path / protocol
        data = Page(write_evaluation(out, result).read_text(encoding="utf-8")).data()
        ids = [rec["image_id"] for rec in result.per_image]
        assert ids[0] == "images/test/00000.png"
        assert [unquote(i.get("o", "")) for i in data["items"]] == [
            "pictures/images/test/00000.jpg", "pictures/images/test/00001.jpg", ""]
        assert (out / "thumbs" / "images" / "test" / "00001.jpg").is_file()
        from camloc.data.imaging import region_text
        pre = result.preprocess
        assert region_text(pre["mode"], pre["input_size"], pre["resize_size"]) == words
        pic = cv2.imread(str(out / "pictures" / "images" / "test" / "00000.jpg"))
        no_line = evaluation_picture_height(result, ids[0], lines=3)
        assert pic.shape[0] == no_line + 24  # the header's fourth line: what the model saw


def evaluation_picture_height(result, image_id: str, lines: int) -> int:
    from camloc.viz.gallery import evaluation_picture, row_colours

    rows = result.settings.rows()
    colours = row_colours([r.name for r in rows])
    panels = [(r.name, colours[r.name], None, (r.method, r.nwc), None) for r in rows]
    return evaluation_picture(result.views[image_id], panels, ["x"] * lines).shape[0]


def test_evaluate_out_writes_a_gallery(tmp_path):
    from ..helpers import synthetic_split

    meta, images, _ = synthetic_split(tmp_path)
    hostile = "<b>x</b> & \"q\" 'a' #1 ?ü.png".replace("/", "")
    (images / "1.png").rename(images / hostile)
    for name in ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt", "mask_localization.txt"):
        f = meta / name
        f.write_text(f.read_text().replace("1.png", hostile))
    (images / "3.png").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    out = tmp_path / "out"
    res = run("evaluate", "--metadata", meta, "--images", images, "--quiet", "--cam-class", "top1", "--variants",
              "cam,nwc+pas", "--out", out, "--gallery-images", "3", "--json")
    assert res.exit_code == 1, res.output  # 3.png failed
    saved = json.loads((out / "result.json").read_text())
    text = (out / "index.html").read_text(encoding="utf-8")
    data = Page(text).data()
    ids = ["0.png", hostile, "2.png", "4.png", "5.png"]
    assert [i["n"] for i in data["items"]] == ids and data["errors"] == [{"n": "3.png", "r": saved["failed"][0]["reason"]}]
    assert [r["name"] for r in data["rows"]] == ["cam", "nwc+pas"]
    for r, row in enumerate(("cam", "nwc+pas")):  # hits over all 6 images (the failed one a miss) give GT-known Loc
        hits = [i["h"][r][0] for i in data["items"]]
        assert 100.0 * sum(hits) / 6 == pytest.approx(saved["variants"][row]["gt_known_loc"])
    assert [("t" in i, "o" in i) for i in data["items"]] == [(True, True)] * 3 + [(False, False)] * 2
    assert check_links(out, data) == 6 and len(list((out / "pictures").iterdir())) == 3
    assert {i["l"] for i in data["items"]} == {"class 0"}  # top1: the split's labels are not named by the model
    assert all(re.fullmatch(r"[^()]+ \(\d+\)", i["p"]) for i in data["items"])  # ImageNet's name (index)
    assert "http://" not in text and "https://" not in text and hostile not in text and "<b>" not in text
    assert "pictures for the first 3 of 5 scored images" in text and "GT-known Loc" in text
    assert data["noPicture"] == "no picture (pictures for the first 3 images only)"
    res = run("evaluate", "--metadata", meta, "--images", images, "--quiet", "--cam-class", "top1", "--variants",
              "cam", "--out", tmp_path / "none", "--gallery-images", "0", "--limit", "2")
    assert res.exit_code == 0, res.output
    data = Page((tmp_path / "none" / "index.html").read_text(encoding="utf-8")).data()
    assert [i["n"] for i in data["items"]] == ["0.png", hostile] and not any("t" in i for i in data["items"])
