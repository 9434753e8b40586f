"""Models by name, the offline weights, and the one-line message when the hub cannot be reached."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error

import pytest
import timm
import torch
import torchvision
from click.testing import CliRunner

import camloc
from camloc import ModelError
from camloc.cli import main
from camloc.models import registry
from camloc.models.registry import resolve_name

from ..helpers import CAT


def test_names_resolve():
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        assert resolve_name(name) == ("offline", name)
    assert resolve_name("efficientnet_lite3") == ("timm", "efficientnet_lite3")  # no offline weights for it
    assert resolve_name("resnet50") == ("timm", "resnet50")
    assert resolve_name("convnext_tiny.fb_in1k") == ("timm", "convnext_tiny.fb_in1k")
    assert resolve_name("tv/resnet50") == ("torchvision", "resnet50")
    assert resolve_name("torchvision/googlenet") == ("torchvision", "googlenet")
    assert resolve_name("googlenet") == ("torchvision", "googlenet")


def test_unknown_name_lists_closest():
    with pytest.raises(ModelError, match="closest: resnet50") as err:
        resolve_name("resnet_50")
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match="unknown model"):
        resolve_name("tv/not_a_model")


def test_offline_default_is_pretrained_and_classifies_the_cat(lite0):
    results = camloc.boxes(lite0, [CAT], topk=5)[0]
    top5, r = [x.class_index for x in results], results[0]
    assert set(top5) & {281, 282, 283, 284, 285}  # the domestic cats
    assert r.label in ("tabby", "tiger cat", "Egyptian cat") and r.exact


@pytest.fixture
def hub_host_answers(monkeypatch):
    """The hub's host accepts connections (so camloc asks the hub, whose download then fails)."""
    monkeypatch.setattr(registry, "_reachable", lambda host, timeout=registry.PROBE_TIMEOUT: True)


def offline_hub(real):
    """A model builder that fails as an offline hub does whenever pretrained weights are asked for."""

    def build(name, *args, pretrained=False, weights=None, **kwargs):
        if pretrained or weights is not None:
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution\nsecond line of detail")
        return real(name, *args, **kwargs)

    return build


def assert_one_clear_line(err, name):
    msg = str(err.value)
    assert msg.startswith(f"could not fetch pretrained weights for {name!r}"), msg
    assert "\n" not in msg and "second line" not in msg and "Temporary failure in name resolution" in msg
    assert "--checkpoint" in msg and "offline model efficientnet_lite0" in msg
    assert isinstance(err.value.__cause__, OSError)  # the hub's error is chained, not lost


def test_timm_download_failure_is_one_clear_line(monkeypatch, lite0, hub_host_answers):
    monkeypatch.setattr(timm, "create_model", offline_hub(timm.create_model))
    with pytest.raises(ModelError) as err:
        camloc.load_model("resnet18")
    assert_one_clear_line(err, "resnet18")
    with pytest.raises(ModelError) as err:
        camloc.load_model("timm/resnet18")
    assert_one_clear_line(err, "timm/resnet18")
    # the way out it names works with the hub unreachable, and random weights need no hub
    offline = camloc.load_model("efficientnet_lite0")
    assert torch.equal(offline.classifier.weight, lite0.classifier.weight)  # the pretrained weights, no hub
    assert camloc.model_config(camloc.load_model("resnet18", pretrained=False)).source == "timm"


def test_torchvision_download_failure_is_one_clear_line(monkeypatch, hub_host_answers):
    monkeypatch.setattr(torchvision.models, "get_model", offline_hub(torchvision.models.get_model))
    with pytest.raises(ModelError) as err:
        camloc.load_model("tv/resnet18")
    assert_one_clear_line(err, "tv/resnet18")
    assert isinstance(camloc.load_model("tv/resnet18", pretrained=False), torchvision.models.ResNet)


def test_download_failure_on_the_command_line_is_a_usage_error(monkeypatch, hub_host_answers):
    monkeypatch.setattr(timm, "create_model", offline_hub(timm.create_model))
    res = CliRunner().invoke(main, ["localize", CAT, "--model", "resnet18"])
    assert res.exit_code == 2 and res.stdout == ""
    (line,) = res.stderr.strip().splitlines()
    assert "could not fetch pretrained weights for 'resnet18'" in line and "--checkpoint" in line
    assert "efficientnet_lite0" in line


def test_timm_download_failure_with_a_really_offline_hub(tmp_path):
    """The same message from timm and huggingface_hub themselves (HF_HUB_OFFLINE, an empty cache)."""
    code = (
        "import camloc\n"
        "try:\n"
        "    camloc.load_model('resnet18')\n"
        "except camloc.ModelError as e:\n"
        "    print('ERR', e)\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    (line,) = out.stdout.splitlines() or [""]
    assert line.startswith("ERR could not load pretrained weights for 'resnet18'"), out.stderr[-2000:]
    assert "HF_HUB_OFFLINE" in line and "--checkpoint" in line and "efficientnet_lite0" in line


def test_unreachable_hub_fails_at_once_naming_the_ways_out(monkeypatch):
    """Offline, the hub would retry for about a minute: camloc probes the host first and stops."""
    monkeypatch.setattr(registry, "_reachable", lambda host, timeout=registry.PROBE_TIMEOUT: False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    asked = []
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: asked.append(a) or pytest.fail("hub asked"))
    monkeypatch.setattr(registry, "_cached_weights", lambda source, arch: (None, "https://huggingface.co/x"))
    with pytest.raises(ModelError) as err:
        camloc.load_model("resnet50")
    msg = str(err.value)
    assert "huggingface.co cannot be reached" in msg and "HF_HUB_OFFLINE" in msg and "\n" not in msg
    assert "--checkpoint" in msg and "efficientnet_lite0" in msg and not asked
    res = CliRunner().invoke(main, ["localize", CAT, "--model", "resnet50"])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and "cannot be reached" in res.stderr


def test_cached_hub_weights_load_without_the_network(tmp_path):
    """Weights in the Hugging Face cache load offline at once, HF_HUB_OFFLINE or not."""
    cache = tmp_path / "hub"
    snap = cache / "models--timm--resnet18.a1_in1k" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (cache / "models--timm--resnet18.a1_in1k" / "refs").mkdir()
    (cache / "models--timm--resnet18.a1_in1k" / "refs" / "main").write_text("abc123")
    torch.manual_seed(3)
    weights = timm.create_model("resnet18", pretrained=False).state_dict()
    torch.save(weights, snap / "pytorch_model.bin")
    code = (
        "import torch, camloc\n"
        f"w = torch.load({str(snap / 'pytorch_model.bin')!r}, weights_only=True)\n"
        "m = camloc.load_model('resnet18')\n"
        "print('SAME', all(torch.equal(v, m.state_dict()[k]) for k, v in w.items()))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_HUB_CACHE=str(cache), HF_HOME=str(tmp_path / "home"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "SAME True", out.stderr[-2000:]


def test_list_models():
    names = camloc.list_models("resnet5*")
    assert "resnet50" in names
    lites = camloc.list_models("efficientnet_lite*")
    assert lites[:3] == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]  # the offline ones first
    assert len(lites) == len(set(lites)) and "efficientnet_lite3" in lites
    assert "torchvision/resnet50" in camloc.list_models("torchvision/*")
