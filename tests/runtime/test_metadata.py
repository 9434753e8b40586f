"""The metadata of a camloc ONNX file: written and read back whole, and damaged files told apart in one line."""

from __future__ import annotations

import json

import pytest

from camloc.cam.rules import ThresholdRule
from camloc.data.imaging import Preprocess
from camloc.runtime.metadata import FORMAT, OUTPUTS, ExportInfo
from camloc.utils.errors import ModelError


def info(**kw) -> ExportInfo:
    base = dict(model="resnet50", camloc_version="0.1.0", preprocess=Preprocess((240, 200), "crop", 256, (0.5,) * 3,
                (0.25,) * 3, "bicubic"), labels=("cat", "dog", "emu"), standard=ThresholdRule.max(0.2), nwc=False,
                topk=2, num_classes=3, head="avg, fc_norm folded")
    return ExportInfo(**{**base, **kw})


@pytest.mark.parametrize("changes", [{}, {"labels": None}, {"standard": ThresholdRule.adaptive("otsu")},
                                     {"preprocess": Preprocess((224, 224), "crop", (256, 256))}])
def test_round_trip(changes):
    original = info(**changes)
    props = original.to_metadata()
    assert all(isinstance(v, str) for v in props.values())
    assert ExportInfo.from_metadata(props, "m.onnx") == original


def test_records_everything_a_user_needs():
    props = info().to_metadata()
    pre = json.loads(props["camloc.preprocess"])
    assert pre == {"input_size": [240, 200], "mode": "crop", "resize_size": 256, "mean": [0.5] * 3,
                   "std": [0.25] * 3, "interpolation": "bicubic"}
    assert json.loads(props["camloc.threshold"]) == {"rule": "percentile", "theta": 0.2, "percentile": 100.0,
                                                     "label": "0.2 x max"}
    assert json.loads(props["camloc.labels"]) == ["cat", "dog", "emu"]
    assert json.loads(props["camloc.outputs"]) == OUTPUTS
    assert (props["camloc.format"], props["camloc.model"], props["camloc.version"]) == (FORMAT, "resnet50", "0.1.0")


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.clear(), "carries no camloc metadata"),
    (lambda p: p.update({"camloc.format": "camloc-onnx/0"}), "format is 'camloc-onnx/0'"),
    (lambda p: p.pop("camloc.labels"), "lacks camloc.labels"),
    (lambda p: p.update({"camloc.preprocess": "{not json"}), "metadata is damaged"),
    (lambda p: p.update({"camloc.threshold": json.dumps({"rule": "nope", "theta": None, "percentile": None})}),
     "metadata is damaged"),
])
def test_damaged_metadata_is_one_line_naming_the_file(damage, message):
    props = info().to_metadata()
    damage(props)
    with pytest.raises(ModelError, match=message) as err:
        ExportInfo.from_metadata(props, "some/m.onnx")
    assert str(err.value).startswith("some/m.onnx: ") and "\n" not in str(err.value)
