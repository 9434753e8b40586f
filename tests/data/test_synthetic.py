"""The synthetic WSOL benchmark: deterministic per seed, readable by camloc's reader and evaluator, masks
that match their boxes, parts on the body, and class evidence in the body's texture (``body_signal``,
``cue``) that changes nothing else."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from camloc.cli import main
from camloc.data.metadata import read_dataset
from camloc.data.synthetic import (
    GENERATOR_VERSION,
    SHARED_ANGLE,
    SPLITS,
    SyntheticSpec,
    class_angle,
    generators,
    render,
    texture,
    write_synthetic,
)
from camloc.eval.evaluation import evaluate
from camloc.eval.protocols import Settings
from camloc.utils.errors import UsageError

from ..helpers import Brightness

SMALL = SyntheticSpec(classes=3, size=64, train=6, train_fullsup=3, test=5, seed=7, body_signal=0.0)


def digest(folder, skip=()):
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in skip):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


# The bytes the generator wrote for SMALL before body evidence existed (generator version 1): every
# image, mask and metadata file, by SHA-256 (synthetic.json, which gained keys, left out), and one
# digest over them all (``digest`` with synthetic.json skipped).
GOLDEN_V1 = {
    "images/test/00000.png": "3b57660cf4a165b1fa951101e8901e69fe34e356e7ae66077866d48305bd39ba",
    "images/test/00001.png": "dbb68e6aa63d526dea0b98f2f61b518800008c4935424c45e052b12c4be29fdf",
    "images/test/00002.png": "4a3e41208a0c6ee72f17118e642fa78f6ba703b9d50a119cff0e217c33773570",
    "images/test/00003.png": "1789e6f4224cada40974ac8d5c87817b1f248a52df0b53a993613624a372d754",
    "images/test/00004.png": "e37fef389b2dd6dbd53f1637ae82ea91387f69b61313dea5ef521bd486788874",
    "images/train/00000.png": "d475c0c56f6cea701980c0369877056f0419530111a829f3e213a8bc5e349da1",
    "images/train/00001.png": "fbfbf40ab77b07ca523058044e658b6a942952ca3cd55c39c0b1af39d168a355",
    "images/train/00002.png": "8dd3e4141ad254b9689a1040a3c9361f1cbfbb65d5fa87df17ab09e54d6c212f",
    "images/train/00003.png": "eaa30ebd2c6fea0b407c3ebf52dfcb1dd41284ab972b1e91ba8477c2757d54d6",
    "images/train/00004.png": "fcd8a49b51246a603af8f67ec1d65cabbcbed9c782aa5f72134f2bdfcaeb39e4",
    "images/train/00005.png": "4a1e02a9fa7423adf5c22b52c8a689e6c6aaf87141edb49267ef2038bb3f3b48",
    "images/train-fullsup/00000.png": "8a018f556fc88525873a551a0d3e301b45ab575705d9e1c18e707d07f31be5b8",
    "images/train-fullsup/00001.png": "3f20dee0876f458b566ca76616dd73c770ad09f4a602d57fba1a449f599d4e26",
    "images/train-fullsup/00002.png": "0e827bb8936514afb6b8a9bff3caaeb09c70e35e1dd2c1858b377c9069e71723",
    "masks/test/00000.png": "916527acae9fcab9807c5416f6bee0fa05e264d6b1c993ea6c44f1bae467b14d",
    "masks/test/00001.png": "1e48caa898a7badb02aa2622351c58f7177e35fd7aaa2313b1fcda691c73f189",
    "masks/test/00002.png": "b34b40d9fee1e6a810b8fa1e00b58e6e7105f4daf7ec7639bb317684af3c7fa2",
    "masks/test/00003.png": "710ccd8a9578b3ec7d4470d1fc3792ff3319b3354ae6ce24700e5459cff111c9",
    "masks/test/00004.png": "8b1e09dcfe9f1bff6c15181661cf0725df990afc2ac89169ee832f02fbe5d892",
    "masks/train/00000.png": "b0206c20a08329da1019a3e418041d34c3e5bdbbff87f078ca141329b1d5b90d",
    "masks/train/00001.png": "5f725bea891214d086ada141a7c867f0aa9e49afe32ce18a1d43d232476871c0",
    "masks/train/00002.png": "68a93b967dda4789b48c29471b1e534d818af0f0b72072da25ad8d22a23b02ef",
    "masks/train/00003.png": "163159f8d4756df0228170d840a29e50e30916384c1842630ebd7f5030850f34",
    "masks/train/00004.png": "cfd25ed3311fdf5d8ef7002089addf564c3a8e184a5fc301ba93149427fd37f0",
    "masks/train/00005.png": "bde9ab814626b185616785b9da9d02e9e391fb435c770622cf509a6f2c43bce1",
    "masks/train-fullsup/00000.png": "bc8f77882b5da0fdf2a400bd864dc3ec307bf4344c79a4af69b8d70a72f23407",
    "masks/train-fullsup/00001.png": "000919b914d194f1d4e80a65c5d05d87a29f50bfaa8663015ef5e4a951cbdea0",
    "masks/train-fullsup/00002.png": "9aecd5e5364574388355366e28127f2debe6474afaf178925b116929a466d91b",
    "metadata/test/class_labels.txt": "51c06803e14b71ff0d809c69b3206c81aa7dffa3f24942284b4cc9c143fa99ba",
    "metadata/test/image_ids.txt": "94df7dad3f151a7e31a39831e8baad58d72bc902d348491698880861619b4655",
    "metadata/test/image_sizes.txt": "0c26e0b31df63d3580c17b1a895eda5bc55f6516d005030d11ee0c3e0e0d46fc",
    "metadata/test/localization.txt": "4a292ae321f966aea5da92481bfc27e98c77450b92f24f51d1141f8f2a5a46e5",
    "metadata/test/mask_localization.txt": "29b359914aa27953dc924cf3cfee0580d7201b222f2ee193e9eeda03a9236e3d",
    "metadata/train/class_labels.txt": "5ecad53cee4155e30c9c4a54c40551ad1dde5b43316ec81423cf9d0f6c72a695",
    "metadata/train/image_ids.txt": "5fe3c6e2be2070ca671b225f38104b429d193819e5ddb54b2eb42f44b5825ca8",
    "metadata/train/image_sizes.txt": "adbd4f66b62087aae54b421cbe549ad3d51a37ac2e0b1344b57f07dd0d9fb138",
    "metadata/train/localization.txt": "a192dfa6155ddd64b30a565aea6dc96eab3aca84ac43b1b4e62f8c1d8c20e3ac",
    "metadata/train/mask_localization.txt": "54fe8ab3131be0281389c9acd6f8b116803b330975753bfc8aca914e29dc788a",
    "metadata/train-fullsup/class_labels.txt": "b41472a7dfc2f8cf82039553717baceb888f950de2940f7915980401d2c03503",
    "metadata/train-fullsup/image_ids.txt": "dd4d6504da72cc8d1fdd584cfcf9100e931a8ae5ef82787e8e54365afff2202c",
    "metadata/train-fullsup/image_sizes.txt": "f19ea8a12061a60b8515b8919985c8c5a43fe28751126817541162723e6cdc4d",
    "metadata/train-fullsup/localization.txt": "e6a4066172ec7fb84aa3aa5caa079362b453ca8120cd1704d5c7aa90f7413e0b",
    "metadata/train-fullsup/mask_localization.txt": "1312b4dbda6f314638217fbd6729266a5f643df501095fdc8e45b6386f75e443",
}
GOLDEN_V1_ALL = "9402c74e302fca0b98ddb1dafe2a5a000bb377fb709eabcdabd2c2a294ac1042"


def written(folder):
    """``{relative path: SHA-256}`` of every file under ``folder`` but synthetic.json."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "synthetic.json"}


FIRST, SECOND = texture(64)[0, 0].astype(np.float64), texture(64)[0, -1].astype(np.float64)  # the body colours


def stripes(image):
    """Where each pixel is nearer the first body colour than the second (H x W bool)."""
    d0, d1 = (((image.astype(np.float64) - c) ** 2).sum(-1) for c in (FIRST, SECOND))
    return d0 < d1


def agreement(item, angle, where):
    """The fraction of ``where`` whose stripe matches the texture at ``angle``."""
    pattern = (texture(item.image.shape[0], angle) == FIRST).all(-1)
    return float((stripes(item.image)[where] == pattern[where]).mean())


def is_red(image):
    return (image[..., 0] > 200) & (image[..., 1] < 100) & (image[..., 2] < 100)


def test_deterministic_per_seed(tmp_path):
    write_synthetic(tmp_path / "a", SMALL)
    write_synthetic(tmp_path / "b", SMALL)
    write_synthetic(tmp_path / "c", SyntheticSpec(**{**SMALL.__dict__, "seed": 8}))
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")


def test_reader_accepts_and_masks_match_boxes(tmp_path):
    folders = write_synthetic(tmp_path, SMALL)
    assert set(folders) == set(SPLITS)
    for split, meta in folders.items():
        samples = read_dataset(meta)
        assert len(samples) == SMALL.count(split)
        assert [s.label for s in samples] == [i % SMALL.classes for i in range(len(samples))]
        for s in samples:
            (box,), (mask_id,) = s.boxes, s.masks
            mask = np.asarray(Image.open(tmp_path / mask_id)) > 0
            ys, xs = np.nonzero(mask)
            assert box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)  # wsolevaluation's x1 = x + w
            assert (s.width, s.height) == Image.open(tmp_path / s.image_id).size == (64, 64)


def test_the_part_lies_on_the_body_and_only_it_has_the_class_colour():
    item = render(SyntheticSpec(size=96, body_signal=0.0), 0, np.random.default_rng(0))
    red = (item.image[..., 0] > 200) & (item.image[..., 1] < 100) & (item.image[..., 2] < 100)
    assert red.sum() >= 9 and item.mask[red].mean() == 1.0
    assert red.sum() < 0.2 * item.mask.sum()  # a small part of a large body


def test_the_evaluator_takes_it_under_both_protocols(tmp_path):
    folders = write_synthetic(tmp_path, SMALL)
    samples = read_dataset(folders["test"])
    wsol = evaluate(Brightness(), samples, tmp_path, Settings("wsolevaluation", ("cam",), cam_class="top1"),
                    progress=False)
    assert set(wsol.metrics["cam"]) >= {"maxboxacc_v2", "pxap"}
    ret = evaluate(Brightness(), samples, tmp_path, Settings("rethinking", ("cam",), cam_class="top1"), progress=False)
    assert 0.0 <= ret.metrics["cam"]["gt_known_loc"] <= 100.0


def test_command_and_bad_values(tmp_path):
    res = CliRunner().invoke(main, ["synthetic", str(tmp_path / "s"), "--train", "2", "--train-fullsup", "1",
                                    "--test", "1", "--size", "48"])
    assert res.exit_code == 0, res.output
    assert len(read_dataset(tmp_path / "s" / "metadata" / "train")) == 2
    res = CliRunner().invoke(main, ["synthetic", str(tmp_path / "t"), "--part", "0.01"])
    assert res.exit_code == 2 and "part=0.01" in res.output
    with pytest.raises(UsageError, match="classes=1"):
        SyntheticSpec(classes=1).check()


def test_body_signal_zero_writes_the_bytes_of_generator_version_1(tmp_path):
    write_synthetic(tmp_path, SMALL)
    assert written(tmp_path) == GOLDEN_V1
    assert digest(tmp_path, skip=("synthetic.json",)) == GOLDEN_V1_ALL
    record = json.loads((tmp_path / "synthetic.json").read_text())
    assert record["generator"] == GENERATOR_VERSION == 2
    assert record["body_signal"] == 0.0 and record["cue"] == "both"


def test_class_angles_are_distinct_and_never_the_shared_one():
    for classes in range(2, 37):
        angles = [class_angle(k, classes) for k in range(classes)]
        assert len(set(angles)) == classes and SHARED_ANGLE not in angles
        assert all(0.0 <= a < 180.0 for a in angles)
    assert [class_angle(k, 3) for k in range(3)] == [90.0, 135.0, 0.0]
    assert (texture(64, 45.0) == texture(64)).all() and not (texture(64, 90.0) == texture(64)).all()


def test_body_signal_one_puts_the_class_texture_on_every_body_and_keeps_the_geometry():
    base, full = SyntheticSpec(classes=3, size=64, body_signal=0.0), SyntheticSpec(classes=3, size=64, body_signal=1.0)
    for i in range(9):
        label = i % 3
        old, new = (render(spec, label, *generators(spec, 2, i)) for spec in (base, full))
        assert (old.mask == new.mask).all() and old.box == new.box and (old.part == new.part).all()
        assert old.body_texture == -1 and new.body_texture == label
        body = new.mask & ~new.part
        assert agreement(old, SHARED_ANGLE, body) == 1.0
        assert agreement(new, class_angle(label, 3), body) >= 0.95
        assert agreement(new, SHARED_ANGLE, body) < 0.75  # not the shared pattern
        for other in {0, 1, 2} - {label}:
            assert agreement(new, class_angle(other, 3), body) < 0.75  # nor another class's
        assert (old.image[new.part] == new.image[new.part]).all()  # the part is the same


def test_body_signal_between_shows_the_class_texture_on_about_q_of_bodies():
    q, n = 0.3, 200
    spec = SyntheticSpec(classes=3, size=48, body_signal=q)
    worn = decoys = decoy_class = 0
    for i in range(n):
        item = render(spec, i % 3, *generators(spec, 2, i))
        body = item.mask & ~item.part
        by_pixels = agreement(item, class_angle(item.label, 3), body) > agreement(item, SHARED_ANGLE, body)
        assert by_pixels == (item.body_texture == item.label)
        worn += by_pixels
        decoys += len(item.decoy_textures)
        decoy_class += sum(k >= 0 for k in item.decoy_textures)
    assert abs(worn - q * n) <= 4 * np.sqrt(n * q * (1 - q))  # binomial, 4 standard deviations
    assert decoys > 50 and abs(decoy_class - q * decoys) <= 4 * np.sqrt(decoys * q * (1 - q))


def test_a_larger_body_signal_keeps_every_class_texture_of_a_smaller_one():
    low, high = (SyntheticSpec(classes=3, size=48, body_signal=q) for q in (0.3, 0.6))
    for i in range(40):
        a, b = (render(spec, i % 3, *generators(spec, 0, i)) for spec in (low, high))
        assert a.body_texture < 0 or b.body_texture == a.body_texture
        assert all(x < 0 or x == y for x, y in zip(a.decoy_textures, b.decoy_textures))


def test_decoys_at_body_signal_one_wear_random_class_textures():
    base, full = SyntheticSpec(classes=3, size=64, body_signal=0.0), SyntheticSpec(classes=3, size=64, body_signal=1.0)
    others = kinds = 0
    seen = set()
    for i in range(40):
        old, new = (render(spec, i % 3, *generators(spec, 1, i)) for spec in (base, full))
        assert len(new.decoy_textures) == len(old.decoy_textures)  # the same decoys, placed alike
        assert all(k >= 0 for k in new.decoy_textures) and all(k == -1 for k in old.decoy_textures)
        others += sum(k != new.label for k in new.decoy_textures)
        seen.update(new.decoy_textures)
        changed = (old.image != new.image).any(-1) & ~new.mask
        assert changed.any() == bool(new.decoy_textures)  # only decoys change outside the body
        kinds += bool(new.decoy_textures)
    assert kinds > 10 and others > 0 and seen == {0, 1, 2}


def test_cue_part_at_body_signal_one_writes_the_pixels_of_body_signal_zero(tmp_path):
    write_synthetic(tmp_path, SyntheticSpec(**{**SMALL.__dict__, "body_signal": 1.0, "cue": "part"}))
    assert written(tmp_path) == GOLDEN_V1
    spec = SyntheticSpec(classes=3, size=64, body_signal=1.0, cue="part")
    item = render(spec, 1, *generators(spec, 0, 4))
    assert item.body_texture == -1 and all(k == -1 for k in item.decoy_textures)


def test_cue_body_removes_the_part_and_keeps_the_rest():
    both, body_only = (SyntheticSpec(classes=3, size=64, body_signal=1.0, cue=c) for c in ("both", "body"))
    for i in range(9):
        label = i % 3
        a, b = (render(spec, label, *generators(spec, 2, i)) for spec in (both, body_only))
        assert (a.mask == b.mask).all() and a.box == b.box and (a.part == b.part).all()
        assert a.part.sum() >= 9 and is_red(a.image)[a.part].mean() > 0.9  # the part, in red
        assert not is_red(b.image)[b.mask].any()  # no part-coloured pixel on the body
        assert agreement(b, class_angle(label, 3), b.mask) >= 0.95  # the body texture where the part was
        assert (a.image[~a.part] == b.image[~b.part]).all()  # nothing else changed


def test_bad_body_signal_and_cue():
    for bad, match in [({"body_signal": 1.5}, "body_signal=1.5"), ({"body_signal": -0.1}, "body_signal=-0.1"),
                       ({"body_signal": float("nan")}, "body_signal=nan"), ({"cue": "x"}, "cue='x'"),
                       ({"cue": "body", "body_signal": 0.0}, "cue='body' with body_signal=0")]:
        with pytest.raises(UsageError, match=match):
            SyntheticSpec(**bad).check()
    assert SyntheticSpec(body_signal=1.0, cue="body").check().cue == "body"


def test_command_records_the_generator_and_every_knob_and_rejects_bad_ones(tmp_path):
    res = CliRunner().invoke(main, ["synthetic", str(tmp_path / "s"), "--train", "2", "--train-fullsup", "1",
                                    "--test", "1", "--size", "48", "--body-signal", "0.5", "--cue", "body"])
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "s" / "synthetic.json").read_text())
    assert record == {"generator": GENERATOR_VERSION, **json.loads(json.dumps(SyntheticSpec(
        size=48, train=2, train_fullsup=1, test=1, body_signal=0.5, cue="body").__dict__))}
    for option, value, named in [("--body-signal", "1.5", "body_signal=1.5"), ("--cue", "x", "cue='x'")]:
        res = CliRunner().invoke(main, ["synthetic", str(tmp_path / "t"), option, value])
        assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
        assert named in res.output
    assert not (tmp_path / "t").exists()


def test_command_default_body_signal_is_the_library_default():
    from camloc.cli import synthetic as cli_synthetic
    from camloc.data.synthetic import BODY_SIGNAL

    assert cli_synthetic.BODY_SIGNAL == BODY_SIGNAL == SyntheticSpec().body_signal
