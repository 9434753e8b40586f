"""The training recipes that ship with camloc: each loads, each value says where it comes from, and the
published settings (the authors' VGG16-TAP, wsolevaluation's defaults, ADL's ResNet50-SE) are as
their sources give them."""

from __future__ import annotations

import math
import re

import pytest
import tomllib

from camloc.models.wsol import ARCHITECTURES
from camloc.train.config import RECIPES, TrainConfig, list_recipes, load_config
from camloc.utils.errors import UsageError

NAMES = list_recipes()
SOURCES = ("paper", "authors", "wsolevaluation", "ADL", "derived", "ours")
KEY_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")
FIELDS = set(TrainConfig.__dataclass_fields__)


@pytest.fixture
def meta(tmp_path):
    """An empty wsolevaluation metadata folder (only image_ids.txt), enough for load_config's checks."""
    d = tmp_path / "meta"
    d.mkdir()
    (d / "image_ids.txt").write_text("")
    return d


def load(name, meta, *extra):
    splits = [f"{split}_{kind}={meta}" for split in ("train", "val", "test") for kind in ("metadata", "images")]
    return load_config(name, [*splits, *extra])


def comment_of(rest: str) -> str | None:
    """The ``# comment`` after a TOML value (a ``#`` inside a string does not count), or None."""
    quote = None
    i = 0
    while i < len(rest):
        ch = rest[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return rest[i + 1:]
        i += 1
    return None


def test_recipes_ship():
    expected = {"vgg16_tap_cub", "vgg16_gap_cub", "adl_resnet50se_cub"}
    expected |= {f"wsol_{a}_{m}" for a in ("vgg16", "resnet50", "inception_v3") for m in ("cam", "has", "adl")}
    expected |= {f"paper_table2_{a}_{d}_{p}" for a in ("vgg16", "seresnet50", "mobilenetv1", "googlenet")
                 for d in ("cub", "imagenet") for p in ("gap", "tap")}
    expected |= {f"paper_table1_vgg16_cub_{m}_{p}" for m in ("cam", "has", "adl") for p in ("gap", "tap")}
    expected |= {f"paper_table3_vgg16_cub_{p}" for p in ("gap", "tap")}
    assert expected <= set(NAMES), sorted(expected - set(NAMES))


@pytest.mark.parametrize("name", NAMES)
def test_recipe_loads(name, meta):
    cfg = load(name, meta)
    assert cfg.out == f"runs/{name}"
    assert cfg.arch in ARCHITECTURES
    if "_tap" in name:
        assert cfg.pool == "tap"
    if name.endswith("_gap") or name.startswith("wsol_"):
        assert cfg.pool == "gap"


@pytest.mark.parametrize("name", NAMES)
def test_recipe_says_where_each_value_comes_from(name):
    text = (RECIPES / f"{name}.toml").read_text(encoding="utf-8")
    table = tomllib.loads(text)
    assert isinstance(table.get("description"), str) and len(table["description"]) > 40, "a description"
    assert text.lstrip().startswith("description"), "the file starts with its description"
    for key in table:
        assert key in FIELDS | {"base", "description"}, f"{name}: unknown key {key}"
    if "synthetic" not in name:  # the synthetic benchmark's recipes name where `camloc synthetic` writes it
        assert "train_metadata" not in table and "val_metadata" not in table and "test_metadata" not in table, \
            "data paths are given on the command line, not in recipes"
    for number, line in enumerate(text.splitlines(), 1):
        m = KEY_LINE.match(line)
        if not m or m.group(1) == "description":
            continue
        comment = comment_of(m.group(2))
        assert comment is not None, f"{name}.toml:{number}: {m.group(1)} has no source comment"
        assert any(re.search(rf"\b{s}\b", comment) for s in SOURCES), \
            f"{name}.toml:{number}: the comment names no source ({', '.join(SOURCES)}): {comment.strip()}"


def test_comment_parser():
    assert comment_of(' "a#b"  # ours: x') == " ours: x"
    assert comment_of(' "a#b"') is None
    assert comment_of(" [1, 2]  # paper") == " paper"


def test_authors_recipe(meta):
    cfg = load("vgg16_tap_cub", meta)
    assert (cfg.arch, cfg.pool, cfg.theta_tap, cfg.pretrained) == ("vgg16", "tap", 0.1, True)
    assert (cfg.optimizer, cfg.lr, cfg.momentum, cfg.nesterov, cfg.weight_decay) == ("sgd", 0.003, 0.9, True, 5e-4)
    assert (cfg.epochs, cfg.schedule, cfg.milestones, cfg.lr_decay) == (200, "multistep", [60, 120, 180], 0.1)
    assert cfg.batch_size == 40 and (cfg.resize, cfg.crop) == (256, 224)
    assert (cfg.lr_rule, cfg.pretrained_grad_scale) == ("pretrained_grad", 0.1)
    assert cfg.selection == "authors"


def test_authors_selection_needs_the_test_split(meta):
    with pytest.raises(UsageError, match="test_metadata"):
        load_config("vgg16_tap_cub", [f"train_metadata={meta}", f"val_metadata={meta}"])
    cfg = load_config("vgg16_tap_cub", [f"train_metadata={meta}", f"val_metadata={meta}", "selection=wsolevaluation"])
    assert cfg.selection == "wsolevaluation"


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("wsol_")])
def test_wsolevaluation_recipes(name, meta):
    cfg = load(name, meta)
    assert (cfg.schedule, cfg.step_size, cfg.lr_decay) == ("wsol_step", 30, 0.1)
    assert (cfg.lr_rule, cfg.new_layers_lr_ratio) == ("new_layers", 10.0)
    assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.weight_decay, cfg.momentum, cfg.nesterov) == (
        0.01, 64, 40, 1e-4, 0.9, True)
    assert cfg.selection == "wsolevaluation"
    assert cfg.has == name.endswith("_has") and cfg.adl == name.endswith("_adl")
    if cfg.has:
        assert (cfg.has_patch, cfg.has_drop_rate) == (32, 0.5)
    if cfg.adl:
        assert (cfg.adl_drop_rate, cfg.adl_gamma, cfg.adl_positions) == (0.75, 0.9, [])


def test_adl_resnet50se_recipe(meta):
    cfg = load("adl_resnet50se_cub", meta)
    assert (cfg.arch, cfg.pool, cfg.adl, cfg.adl_drop_rate, cfg.adl_gamma) == ("seresnet50", "gap", True, 0.75, 0.9)
    assert (cfg.lr, cfg.batch_size, cfg.weight_decay, cfg.lr_rule, cfg.pretrained_grad_scale) == (
        0.1, 32, 1e-4, "pretrained_grad", 0.1)
    # ADL's epoch: 1000 steps x 32 images; CUB train: 5,994 images
    per = 1000 * 32 / 5994
    assert cfg.epochs == round(105 * per)
    assert cfg.milestones == [round(e * per) for e in (30, 60, 90, 100)]


def test_paper_rows(meta):
    assert load("paper_table2_seresnet50_cub_tap", meta).theta_tap == 0.0
    assert load("paper_table2_googlenet_cub_tap", meta).theta_tap == 0.0
    assert load("paper_table2_vgg16_cub_tap", meta).theta_tap == 0.1
    assert not load("paper_table2_seresnet50_cub_gap", meta).adl
    for p in ("gap", "tap"):
        cfg = load(f"paper_table3_vgg16_cub_{p}", meta)
        assert set(cfg.eval_variants) == {"cam", "nwc", "pas", "nwc+pas"}
    assert load("paper_table1_vgg16_cub_has_tap", meta).has
    assert load("paper_table1_vgg16_cub_adl_gap", meta).adl


def test_unknown_key_is_refused(tmp_path, meta):
    bad = tmp_path / "bad.toml"
    bad.write_text('description = "x"\nbase = "vgg16_tap_cub"\nlearning_rate = 0.1  # ours\n')
    with pytest.raises(UsageError, match="learning_rate"):
        load(str(bad), meta)


def test_unknown_key_in_a_section_is_refused(tmp_path, meta):
    bad = tmp_path / "bad_section.toml"
    bad.write_text('[optimisation]\nlr = 0.1\nmomentumm = 0.9\n')
    with pytest.raises(UsageError, match="momentumm"):
        load(str(bad), meta)


@pytest.mark.parametrize("line, key", [('lr = "fast"', "lr"), ("epochs = 1.5", "epochs"),
                                       ("milestones = 60", "milestones"), ("nesterov = 1", "nesterov"),
                                       ("batch_size = true", "batch_size")])
def test_wrong_type_is_refused(tmp_path, meta, line, key):
    bad = tmp_path / "bad_type.toml"
    bad.write_text(f'base = "vgg16_gap_cub"\n{line}\n')
    with pytest.raises(UsageError, match=key):
        load(str(bad), meta)


def test_sections_are_ignored(tmp_path, meta):
    ok = tmp_path / "ok.toml"
    ok.write_text('description = "x"\nbase = "vgg16_tap_cub"\n[optimisation]\nlr = 0.001\n')
    cfg = load(str(ok), meta)
    assert cfg.lr == 0.001 and cfg.batch_size == 40


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory):
    """Eight 160 x 120 pictures of two classes (wsolevaluation layout)."""
    from ..helpers import two_class_split

    root = tmp_path_factory.mktemp("recipe_data")
    two_class_split(root)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_every_recipe_builds_and_takes_a_step(name, tiny_split, tmp_path):
    """Each shipped recipe as it is, with only the data, the size and the length made small: random init
    (no download), one epoch of two steps of four 64 px crops, no evaluation split (so selection is set to
    'last': the authors' rule needs a test split). The optimizer stepped every trainable parameter, and
    the loss is finite."""
    from camloc.models.checkpoints import read_checkpoint
    from camloc.train.loop import train

    cfg = load_config(name, [f"train_metadata={tiny_split / 'meta'}", f"train_images={tiny_split / 'images'}",
                             "val_metadata=", "val_images=", "pretrained=false", "epochs=1", "batch_size=4",
                             "accumulate=1", "resize=72", "crop=64", "has_patch=16", "workers=0", "selection=last",
                             "plots=false", f"out={tmp_path / 'run'}"])
    records = []
    model = train(cfg, progress=False, log=lambda m: None, on_epoch=records.append)
    state = read_checkpoint(cfg.last_path)
    assert state["epoch"] == 1 and state["arch"] == cfg.arch
    stepped = state["optimizer"]["state"]  # momentum / Adam moments exist only for stepped parameters
    assert len(stepped) == sum(p.requires_grad for p in model.parameters()), "not every parameter was stepped"
    (record,) = records
    assert record["epoch"] == 1 and math.isfinite(record["loss"]) and record == state["history"][-1]


def test_the_synthetic_recipe_trains_where_camloc_synthetic_writes(tmp_path, monkeypatch):
    """``camloc synthetic synthetic`` then ``camloc train smallcnn_synthetic`` in one folder, a smaller benchmark and
    run the only change: the recipe's paths are where the benchmark is written, and the run records its geometry."""
    from click.testing import CliRunner

    from camloc.cli import main
    from camloc.models.checkpoints import read_checkpoint

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    made = runner.invoke(main, ["synthetic", "synthetic", "--size", "48", "--train", "8", "--train-fullsup", "4",
                                "--test", "4"])
    assert made.exit_code == 0, made.output
    assert "smallcnn_synthetic" in runner.invoke(main, ["train", "--list"]).stdout.split()
    res = runner.invoke(main, ["train", "smallcnn_synthetic", "epochs=2", "resize=40", "crop=32", "batch_size=4",
                               "--quiet"])
    assert res.exit_code == 0, res.output
    run = tmp_path / "runs" / "smallcnn_synthetic"
    state = read_checkpoint(run / "last.pt")
    assert state["train_size"] == [40, 32] and state["preprocess"]["input_size"] == [32, 32]
    assert state["num_classes"] == 4 and state["epoch"] == 2
    assert {"val/rethinking/cam/gt_known_loc", "val/wsolevaluation/nwc+pas/pxap"} <= set(state["history"][-1])
    assert (run / "log.csv").is_file() and (run / "training.png").is_file()


def test_the_synthetic_recipe_names_the_benchmark_layout():
    cfg = load_config("smallcnn_synthetic", check=False)
    assert (cfg.train_metadata, cfg.train_images) == ("synthetic/metadata/train", "synthetic")
    assert (cfg.val_metadata, cfg.val_images) == ("synthetic/metadata/train-fullsup", "synthetic")
    assert (cfg.arch, cfg.pretrained, cfg.selection, cfg.threads) == ("smallcnn", False, "last", 1)
    with pytest.raises(UsageError, match="train_metadata=synthetic/metadata/train: no such folder"):
        load_config("smallcnn_synthetic")  # run from a folder without the benchmark: one line naming the key
