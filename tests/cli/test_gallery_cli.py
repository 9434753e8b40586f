"""The gallery page in a real headless browser: ``camloc localize --out DIR`` then ``DIR/index.html``.

Chromium and chromedriver come from the system packages (Debian: ``apt-get install chromium
chromium-driver``); where either is absent the tests are skipped with the reason. The browser runs
with networking features off and a fresh profile, opens the page from ``file://``, and is asked what
a user sees: every thumbnail decoded, the class filter and the sort doing what they say, the failed
input listed with its reason, and a screenshot saved.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from camloc.cli import main
from camloc.viz.gallery import PAGE_SIZE, write_page

from ..conftest import EXAMPLES

#: A file name that must show as itself: tags, an entity, quotes, URL characters, unicode.
HOSTILE = "<b>bold &lt; & \"q\" 'a' #1 ?x=%41 ü 猫.jpg"


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("needs Chromium and chromedriver (Debian: apt-get install chromium chromium-driver); "
                    f"found chromium={chromium}, chromedriver={driver}")
    return chromium, driver


@pytest.fixture
def browser(tmp_path):
    chromium, driver = _browser_paths()
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1000",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    b = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield b
    finally:
        b.quit()


def open_page(browser, page: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(page.resolve().as_uri())
    WebDriverWait(browser, 30).until(lambda b: b.execute_script("return document.body.dataset.ready === '1'"))


def visible_cards(browser) -> list[dict]:
    """What each card on screen says: label, class, score, name (its full name is the title)."""
    return browser.execute_script("""
        return [...document.querySelectorAll('#grid .card')].filter(c => c.offsetParent !== null).map(c => ({
            label: c.querySelector('.label').firstChild.textContent,
            cls: c.dataset.cls,
            nums: (c.querySelector('.nums') || {}).textContent,
            seen: (c.querySelector('.seen') || {}).textContent,
            name: c.querySelector('.name').title}));""")


def choose(browser, select_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, select_id)).select_by_value(value)


def test_localize_gallery_in_a_browser(browser, tmp_path):
    photos = tmp_path / "in"
    photos.mkdir()
    shutil.copy(EXAMPLES / "cat.jpg", photos / HOSTILE)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    inputs = [str(p) for p in sorted(EXAMPLES.glob("*.jpg"))] + [str(photos / HOSTILE), str(photos / "broken.jpg")]
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["localize", *inputs, "--out", str(out), "--quiet", "--workers", "0", "--json"])
    assert res.exit_code == 1, res.output  # broken.jpg fails, the rest is done
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    good = [r for r in rows if "error" not in r]
    assert len(good) == 4 and {r["label"] for r in good} == {"Egyptian cat", "espresso", "missile"}

    open_page(browser, out / "index.html")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(lambda b: b.execute_script(
        "return [...document.images].every(i => i.complete)"))
    widths = browser.execute_script("return [...document.images].map(i => [i.alt, i.naturalWidth])")
    assert sorted(alt for alt, _ in widths) == sorted(r["image"] for r in good)
    assert all(w > 0 for _, w in widths), widths  # every thumbnail loaded (the hostile name's link included)
    hrefs = browser.execute_script("return [...document.querySelectorAll('#grid a')].map(a => a.href)")
    assert len(hrefs) == 4 and all(h.startswith((out.resolve().as_uri() + "/overlays/")) for h in hrefs)

    # every card says the model saw the whole image (the default region)
    assert [c["seen"] for c in visible_cards(browser)] == ["model saw the whole image"] * 4
    # the class filter: each class with its count; Egyptian cat (285) shows the two cats only
    options = browser.execute_script("return [...document.getElementById('class').options].map(o => [o.value, o.text])")
    assert options[0] == ["", "all (4)"] and ["285", "Egyptian cat (285) · 2"] in options and len(options) == 4
    choose(browser, "class", "285")
    cards = visible_cards(browser)
    assert [c["label"] for c in cards] == ["Egyptian cat", "Egyptian cat"] and {c["cls"] for c in cards} == {"285"}
    assert {c["name"] for c in cards} == {str(EXAMPLES / "cat.jpg"), str(photos / HOSTILE)}  # shown as itself
    assert browser.execute_script("return document.querySelectorAll('b').length") == 0
    choose(browser, "class", "")

    # sorting by score, both ways, and by name
    scores = sorted(round(r["score"], 3) for r in good)
    choose(browser, "sort", "score-asc")
    assert [float(c["nums"].split()[1]) for c in visible_cards(browser)] == scores
    choose(browser, "sort", "score-desc")
    assert [float(c["nums"].split()[1]) for c in visible_cards(browser)] == scores[::-1]
    choose(browser, "sort", "name-asc")
    names = [c["name"] for c in visible_cards(browser)]
    assert [n for n in names if n.startswith(str(EXAMPLES))] == [str(EXAMPLES / n) for n in
                                                                 ("cat.jpg", "coffee.jpg", "rocket.jpg")]
    choose(browser, "sort", "name-desc")
    assert [c["name"] for c in visible_cards(browser)] == names[::-1]

    # the free-text filter on name and label
    browser.find_element("id", "text").send_keys("espresso")
    assert [c["label"] for c in visible_cards(browser)] == ["espresso"]
    browser.find_element("id", "text").clear()
    browser.execute_script("document.getElementById('text').dispatchEvent(new Event('input'))")

    # the failed input, with its reason
    errors = browser.execute_script(
        "return [...document.querySelectorAll('#error-rows tr')].map(r => [...r.cells].map(c => c.textContent))")
    (bad,) = [r for r in rows if "error" in r]
    assert errors == [[bad["image"], bad["error"]]]
    assert browser.execute_script("return document.getElementById('errors').hidden") is False

    shot = tmp_path / "gallery.png"
    assert browser.save_screenshot(str(shot))
    with Image.open(shot) as img:
        assert img.size[0] >= 1000 and len(np.unique(np.asarray(img.convert("L")))) > 50  # a page, not a blank


def test_cards_say_what_the_model_saw_and_same_named_images_open_their_own_pictures(browser, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    for folder, photo in (("x", "cat.jpg"), ("y", "coffee.jpg")):
        (tmp_path / folder).mkdir()
        shutil.copy(EXAMPLES / photo, tmp_path / folder / "a.jpg")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["localize", str(tmp_path / "x" / "a.jpg"), str(tmp_path / "y" / "a.jpg"), "--out",
                                    str(out), "--quiet", "--workers", "0", "--json", "--resize", "crop"])
    assert res.exit_code == 0, res.output
    open_page(browser, out / "index.html")
    WebDriverWait(browser, 30).until(lambda b: b.execute_script("return [...document.images].every(i => i.complete)"))
    widths = browser.execute_script("return [...document.images].map(i => i.naturalWidth)")
    assert widths == [256, 256]  # both thumbnails load: the cat's 451 x 300 and the coffee's 600 x 400, 256 wide
    choose(browser, "sort", "name-asc")  # x/a.jpg, then y/a.jpg
    hrefs = browser.execute_script("return [...document.querySelectorAll('#grid a')].map(a => a.href)")
    assert hrefs == [(out / "overlays" / "a.png").resolve().as_uri(), (out / "overlays" / "a~2.png").resolve().as_uri()]
    # the cat 451 x 300 resized to 384 x 256 and cropped at (80, 16); the coffee 600 x 400 to 384 x 256, likewise
    assert [c["seen"] for c in visible_cards(browser)] == ["model saw center crop [94.0, 18.8, 357.0, 281.2]",
                                                           "model saw center crop [125.0, 25.0, 475.0, 375.0]"]


def test_ten_thousand_rows_open_a_page_at_a_time(browser, tmp_path):
    Image.new("RGB", (64, 48), (200, 80, 40)).save(tmp_path / "thumb.jpg")
    n, k = 10_000, 50
    items = [{"image": f"photos/image_{i:05d}.jpg", "class": i % k, "label": f"class {i % k:02d}",
              "score": ((i * 7919) % n) / n, "box": [10.0, 20.0, 30.0, 40.0], "picture": "thumb.jpg",
              "thumb": "thumb.jpg"} for i in range(n)]
    page = write_page(tmp_path, items, [{"image": "bad.jpg", "reason": "not an image"}], title="10k")
    open_page(browser, page)
    count = browser.execute_script("return document.getElementById('count').textContent")
    assert count == f"showing {PAGE_SIZE} of {n}"
    assert browser.execute_script("return document.querySelectorAll('#grid .card').length") == PAGE_SIZE
    first = visible_cards(browser)[0]
    assert first["nums"].startswith("score 1.000 ")  # the highest score (0.9999) first
    choose(browser, "class", "7")
    cards = visible_cards(browser)
    assert len(cards) == n // k and {c["label"] for c in cards} == {"class 07"}
    assert browser.execute_script("return document.getElementById('count').textContent") == \
        f"showing {n // k} of {n // k} matching ({n} in all)"
    choose(browser, "class", "")
    browser.find_element("id", "more").click()
    assert browser.execute_script("return document.querySelectorAll('#grid .card').length") == 2 * PAGE_SIZE
    timings = browser.execute_script(
        "const nav = performance.getEntriesByType('navigation')[0];"
        "return {load: nav.loadEventEnd - nav.startTime, update: window.galleryTimings.update}")
    size = page.stat().st_size
    print(f"10,000 rows: page {size / 1e6:.2f} MB, load {timings['load']:.0f} ms, "
          f"filter + sort + first page {timings['update']:.0f} ms")  # reported, never asserted


def test_evaluate_gallery_in_a_browser(browser, tmp_path):
    from ..conftest import data_dir

    root = data_dir("imagenet-val")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["evaluate", "--metadata", str(root), "--limit", "12", "--quiet", "--workers", "0",
                                    "--out", str(out), "--gallery-images", "8", "--json"])
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "result.json").read_text())
    open_page(browser, out / "index.html")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(lambda b: b.execute_script("return [...document.images].every(i => i.complete)"))
    widths = browser.execute_script("return [...document.images].map(i => i.naturalWidth)")
    assert len(widths) == 8 and all(w > 0 for w in widths)
    rows = list(saved["variants"])
    assert rows == ["cam", "nwc", "pas", "nwc+pas"]
    tags = "return [...document.querySelectorAll('#grid .card')].map(c => [...c.querySelectorAll('.rowtag')]" \
           ".map(t => t.children[1].textContent + ' ' + t.children[2].textContent))"
    every = browser.execute_script(tags)
    assert len(every) == 12 and all(len(t) == 4 for t in every)
    for r, row in enumerate(rows):  # the page's hits are GT-known Loc's
        hits = sum(t[r] == f"{row} \u2713 hit" for t in every)
        assert 100.0 * hits / 12 == saved["variants"][row]["gt_known_loc"]
    misses = sum(t[3] == "nwc+pas \u2717 miss" for t in every)
    assert 0 < misses < 12
    choose(browser, "outcome", "miss:3")
    shown = browser.execute_script(tags)
    assert len(shown) == misses and all(t[3] == "nwc+pas \u2717 miss" for t in shown)
    choose(browser, "outcome", "")
    options = browser.execute_script("return [...document.getElementById('class').options].map(o => [o.value, o.text])")
    value, text = options[1]
    choose(browser, "class", value)
    labels = [c["label"] for c in visible_cards(browser)]
    assert len(labels) == int(text.rsplit("\u00b7", 1)[1]) and len(set(labels)) == 1 and text.startswith(labels[0])
    choose(browser, "class", "")
    assert browser.execute_script("return document.querySelector('table.metrics tbody tr td').textContent") == "cam"
    shot = tmp_path / "evaluate.png"
    assert browser.save_screenshot(str(shot))
    with Image.open(shot) as img:
        assert img.size[0] >= 1000 and len(np.unique(np.asarray(img.convert("L")))) > 50
