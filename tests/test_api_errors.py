"""camloc.boxes / camloc.cams / Localizer on the inputs users get wrong.

Class names instead of indices, uint8 pixel tensors, one-channel tensors, double and half models,
and tensors too small for the model: each either works as a user expects or is refused with a
:class:`camloc.CamlocError` of one line that names the thing and the fix.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

import camloc
from camloc import CamlocError, ImageError, UsageError
from camloc.cam.extractor import CAMExtractor
from camloc.models.config import ModelConfig, attach

from .helpers import CAT, COFFEE, GapLinear, assert_same, snapshot


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text, text
    return text


def pixels(path: str, mode: str = "RGB") -> torch.Tensor:
    """The photo as torchvision.io.read_image gives it: uint8, C x H x W."""
    arr = np.asarray(Image.open(path).convert(mode))
    t = torch.from_numpy(arr.copy())
    return t.permute(2, 0, 1).contiguous() if t.ndim == 3 else t[None]


# -- class names ----------------------------------------------------------------------------------------


def test_class_names_are_looked_up_in_the_model_labels(lite0):
    (by_name,) = camloc.boxes(lite0, [CAT], classes="tabby")
    (by_index,) = camloc.boxes(lite0, [CAT], classes=281)
    assert by_name.class_index == 281 and by_name.label == "tabby" and by_name.box == by_index.box
    rs = camloc.boxes(lite0, [CAT, COFFEE], classes=["Egyptian cat", "espresso"])
    assert [r.class_index for r in rs] == [285, 967]
    assert [r.class_index for r in camloc.boxes(lite0, [CAT], classes=["TABBY"])] == [281]  # any case
    nested = camloc.boxes(lite0, [CAT], classes=[["tabby", 285]])  # names and indices mixed, B x k
    assert [r.class_index for r in nested[0]] == [281, 285]
    maps = camloc.cams(lite0, [CAT, COFFEE], classes="tabby")
    assert torch.equal(maps, camloc.cams(lite0, [CAT, COFFEE], classes=281))


def test_unknown_and_ambiguous_names_say_what_to_pass(lite0):
    with pytest.raises(UsageError) as exc:
        camloc.boxes(lite0, [CAT], classes="tabbby")
    msg = one_line(exc)
    assert "'tabbby'" in msg and "tabby" in msg.replace("'tabbby'", "") and "index" in msg
    with pytest.raises(UsageError) as exc:
        camloc.boxes(lite0, [CAT], classes="crane")  # two ImageNet classes share this first name
    msg = one_line(exc)
    assert "134" in msg and "517" in msg
    with pytest.raises(UsageError, match="2 classes for 1 images"):
        camloc.boxes(lite0, [CAT], classes=["tabby", "espresso"])


def test_names_without_a_label_list_are_refused_with_the_index_range():
    model = GapLinear(num_classes=5)
    before = snapshot(model)
    with pytest.raises(UsageError) as exc:
        camloc.boxes(model, torch.randn(1, 3, 64, 64), classes="cat")
    msg = one_line(exc)
    assert "'cat'" in msg and "0..4" in msg and "indices" in msg
    assert_same(before, snapshot(model))


def test_names_from_a_camloc_model_config():
    model = attach(GapLinear(num_classes=3), ModelConfig(class_names=("sparrow", "gull", "wren")))
    x = torch.randn(2, 3, 64, 64)
    assert [r.label for r in camloc.boxes(model, x, classes=["wren", "gull"])] == ["wren", "gull"]
    assert torch.equal(camloc.cams(model, x, classes="gull"), camloc.cams(model, x, classes=1))


def test_extractor_refuses_names_clearly():
    with pytest.raises(UsageError) as exc:
        CAMExtractor(GapLinear())(torch.randn(1, 3, 32, 32), classes="tabby")
    assert "Localizer" in one_line(exc)


# -- uint8 pixel tensors -----------------------------------------------------------------------------------


def test_uint8_tensor_is_an_image_like_a_pil_image(lite0):
    (by_path,) = camloc.boxes(lite0, [CAT])
    (by_tensor,) = camloc.boxes(lite0, pixels(CAT))
    assert by_tensor.image == "<tensor 0>" and (by_tensor.width, by_tensor.height) == (451, 300)
    assert by_tensor.box == by_path.box and by_tensor.class_index == by_path.class_index
    assert torch.equal(by_tensor.cam, by_path.cam)
    batch = torch.stack([pixels(CAT), pixels(CAT)])  # B x 3 x H x W uint8
    assert [r.box for r in camloc.boxes(lite0, batch)] == [by_path.box] * 2
    assert torch.equal(camloc.cams(lite0, pixels(CAT))[0], by_path.cam)


def test_uint8_grayscale_tensor_is_a_grayscale_image(lite0):
    (gray_pil,) = camloc.boxes(lite0, [Image.open(CAT).convert("L")])
    (gray_tensor,) = camloc.boxes(lite0, pixels(CAT, "L"))  # 1 x H x W
    (gray_batch,) = camloc.boxes(lite0, pixels(CAT, "L")[None])  # 1 x 1 x H x W
    assert gray_tensor.box == gray_batch.box == gray_pil.box


def test_other_integer_tensors_are_refused(lite0):
    with pytest.raises(ImageError) as exc:
        camloc.boxes(lite0, pixels(CAT).long())
    msg = one_line(exc)
    assert "torch.int64" in msg and "uint8" in msg and "float" in msg


# -- channels ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1, 96, 96), (1, 96, 96)], ids=["N1HW", "1HW"])
def test_one_channel_float_tensor_is_refused(lite0, shape):
    with pytest.raises(CamlocError) as exc:
        camloc.boxes(lite0, torch.randn(*shape))
    msg = one_line(exc)
    assert "1 channel" in msg and "3" in msg and "expand" in msg
    with pytest.raises(CamlocError, match="1 channel"):
        camloc.cams(lite0, torch.randn(*shape))


def test_float_tensors_of_different_shapes_in_one_list_are_refused(lite0):
    with pytest.raises(UsageError) as exc:
        camloc.boxes(lite0, [torch.randn(3, 96, 96), torch.randn(1, 96, 96)])
    msg = one_line(exc)
    assert "(3, 96, 96)" in msg and "(1, 96, 96)" in msg and "uint8" in msg


def test_extractor_refuses_pixels_clearly():
    with pytest.raises(UsageError) as exc:
        CAMExtractor(GapLinear())(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    assert "torch.uint8" in one_line(exc) and "camloc.boxes" in one_line(exc)


# -- model dtypes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_double_and_half_models_take_float_input_unchanged(dtype):
    reference = GapLinear()
    model = copy.deepcopy(reference).to(dtype)
    before = snapshot(model)
    x = torch.randn(2, 3, 64, 64)
    maps = camloc.cams(model, x, classes=[1, 2])
    rs = camloc.boxes(model, x, classes=[1, 2])
    expected = camloc.cams(reference, x, classes=[1, 2])
    tol = 1e-5 if dtype == torch.float64 else 5e-2
    assert maps.dtype == torch.float32 and torch.allclose(maps, expected, rtol=tol, atol=tol * expected.abs().max())
    assert [r.class_index for r in rs] == [1, 2] and all(r.exact for r in rs)  # the head is recognised in any precision
    assert all(p.dtype == dtype for p in model.parameters())
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_double_and_half_models_give_the_float_answer_on_a_photo(lite0, dtype):
    model = copy.deepcopy(lite0).to(dtype)
    (r, ) = camloc.boxes(model, [CAT])
    (r32,) = camloc.boxes(lite0, [CAT])
    assert r.class_index == r32.class_index and r.exact  # exact maps, not a gradient fallback
    assert np.allclose(r.box, r32.box, atol=1.0 if dtype == torch.float64 else 4.0)
    assert next(model.parameters()).dtype == dtype


# -- tensors too small for the model ---------------------------------------------------------------------------


@pytest.mark.parametrize("side", [8, 32])
def test_tensor_smaller_than_the_model_needs_is_refused(lite0, side):
    with pytest.raises(ImageError) as exc:
        camloc.boxes(lite0, torch.randn(1, 3, side, side))
    msg = one_line(exc)
    assert f"{side}x{side}" in msg and "224x224" in msg and "1x1" in msg
    with pytest.raises(ImageError, match=f"{side}x{side}"):
        camloc.cams(lite0, torch.randn(2, 3, side, side))


def test_a_small_tensor_does_not_change_later_results(lite0):
    """A too-small first batch used to fix the analysis on an early layer for every later call."""
    (fresh,) = camloc.boxes(lite0, [CAT])
    model = copy.deepcopy(lite0)
    with pytest.raises(ImageError):
        camloc.boxes(model, torch.randn(1, 3, 32, 32))
    (after,) = camloc.boxes(model, [CAT])
    assert after.exact and after.cam.shape == (7, 7) and after.box == fresh.box


def test_extractor_analyses_again_after_a_small_first_batch(lite0):
    model = copy.deepcopy(lite0)
    ex = CAMExtractor(model)
    ex(torch.randn(1, 3, 32, 32))  # the real feature map is 1x1 here: the analysis finds an early layer
    out = ex(torch.randn(1, 3, 224, 224))
    assert out.exact and ex.head.feature_layer == "bn2" and out.maps.shape[-2:] == (7, 7)


def test_a_tensor_of_the_right_size_still_works(lite0):
    rs = camloc.boxes(lite0, torch.randn(2, 3, 64, 64))  # a 2 x 2 map: coarse, but a map
    assert all(r.cam.shape == (2, 2) for r in rs)
