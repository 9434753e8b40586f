"""WSOL layers and architectures: HaS and ADL against hand-computed maps, every architecture's 14 x 14
map, ADL insertion, and offline behaviour (CPU, random init, tiny batches)."""

from __future__ import annotations

import socket

import pytest
import timm
import torch
import torchvision
from torch import nn

import camloc
from camloc.data.transforms import rethinking_crop
from camloc.models.layers import ADL, HideAndSeek, attention_maps, has_mask
from camloc.models.retrofitting import CAMHeadModel
from camloc.models.wsol import ARCHITECTURES, ArchSpec, WSOLBackbone, build_wsol, insert_after
from camloc.utils.errors import ModelError, UsageError

ARCHS = tuple(ARCHITECTURES)
PRETRAINED = tuple(a for a in ARCHS if ARCHITECTURES[a].pretrained)
_CACHE: dict[tuple, CAMHeadModel] = {}


def built(arch: str, adl: bool = False) -> CAMHeadModel:
    """One model per (arch, adl) for the whole module (never changed by a test)."""
    key = (arch, adl)
    if key not in _CACHE:
        torch.manual_seed(0)
        _CACHE[key] = build_wsol(arch, num_classes=5, adl=adl)
    return _CACHE[key]


# -- Hide-and-Seek ---------------------------------------------------------------------------------


def has_by_hand(u: torch.Tensor, height: int, width: int, patch: int, drop_rate: float) -> torch.Tensor:
    """The mask written out pixel by pixel from the per-patch draws ``u`` (B x rows x cols)."""
    b = u.shape[0]
    mask = torch.empty(b, 1, height, width)
    for i in range(b):
        for y in range(height):
            for x in range(width):
                mask[i, 0, y, x] = 0.0 if u[i, y // patch, x // patch] < drop_rate else 1.0
    return mask


def test_has_mask_matches_hand_computed_non_square():
    # 40 x 72 with 16-pixel patches: a 3 x 5 grid, the last row 8 pixels high, the last column 8 wide.
    u = torch.rand(2, 3, 5, generator=torch.Generator().manual_seed(3))
    mask = has_mask(2, 40, 72, patch=16, drop_rate=0.5, generator=torch.Generator().manual_seed(3))
    assert mask.shape == (2, 1, 40, 72) and mask.dtype == torch.float32
    assert torch.equal(mask, has_by_hand(u, 40, 72, 16, 0.5))
    for i in range(2):
        for r in range(3):
            for c in range(5):
                cell = mask[i, 0, 16 * r:16 * (r + 1), 16 * c:16 * (c + 1)]
                assert cell.shape == (16 if r < 2 else 8, 16 if c < 4 else 8)
                assert cell.unique().numel() == 1  # each patch all hidden or all kept
    # Columns beyond the height are masked by their own patches (upstream bounds them by H).
    assert set(mask[:, 0, :, 40:].unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(mask[:, :, :, 64:], has_by_hand(u, 40, 72, 16, 0.5)[:, :, :, 64:])


def test_has_images_and_patches_independent_and_rate():
    masks = has_mask(4000, 32, 48, patch=16, drop_rate=0.3, generator=torch.Generator().manual_seed(0))
    cells = masks[:, 0, ::16, ::16].reshape(4000, -1)  # one pixel per patch: 4000 x 6
    hidden = 1.0 - cells
    assert abs(hidden.mean().item() - 0.3) < 0.02
    # independence: correlation between two images' first patch, and between two patches of an image
    a, b = hidden[0::2, 0], hidden[1::2, 0]
    assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1].item()) < 0.08
    assert abs(torch.corrcoef(torch.stack([hidden[:, 0], hidden[:, 5]]))[0, 1].item()) < 0.06
    assert has_mask(3, 5, 7, 4, 0.0).min() == 1.0 and has_mask(3, 5, 7, 4, 1.0).max() == 0.0


def test_hide_and_seek_layer_uses_global_rng_and_eval_identity():
    x = torch.randn(2, 3, 40, 72)
    layer = HideAndSeek(patch=16, drop_rate=0.5).train()
    torch.manual_seed(11)
    u = torch.rand(2, 3, 5)
    torch.manual_seed(11)
    out = layer(x)
    assert torch.equal(out, x * has_by_hand(u, 40, 72, 16, 0.5))
    assert layer.eval()(x) is x
    assert "patch=16" in repr(layer) and HideAndSeek().patch == 32 and HideAndSeek(patch=4).patch == 4
    for bad in ({"patch": 0}, {"patch": 2.5}, {"drop_rate": 1.5}):
        with pytest.raises(ValueError):
            HideAndSeek(**bad)


# -- ADL ---------------------------------------------------------------------------------------------


def adl_by_hand(x: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    b, c, h, w = x.shape
    att = torch.empty(b, 1, h, w)
    drop = torch.empty(b, 1, h, w)
    for i in range(b):
        for y in range(h):
            for z in range(w):
                att[i, 0, y, z] = sum(x[i, k, y, z].item() for k in range(c)) / c
        peak = max(att[i].flatten().tolist())
        for y in range(h):
            for z in range(w):
                drop[i, 0, y, z] = 1.0 if att[i, 0, y, z].item() < gamma * peak else 0.0
    return att, drop, torch.sigmoid(att)


def seed_for(branch_drop: bool, drop_rate: float) -> int:
    """A seed whose first ``torch.rand(())`` picks the wanted branch (drop iff u + rate >= 1)."""
    for seed in range(1000):
        torch.manual_seed(seed)
        if bool(torch.rand(()) + drop_rate >= 1.0) == branch_drop:
            return seed
    raise AssertionError("no seed found")


@pytest.mark.parametrize("branch_drop", [True, False])
def test_adl_matches_hand_computed_maps(branch_drop):
    x = torch.rand(2, 4, 5, 7)
    x[1] *= 3.0  # per-sample maxima differ
    att, drop, importance = adl_by_hand(x, 0.9)
    a2, d2, i2 = attention_maps(x, 0.9)
    assert torch.allclose(a2, att, atol=1e-6) and torch.equal(d2, drop) and torch.allclose(i2, importance, atol=1e-6)
    assert drop.sum() > 0 and (1 - drop).sum() >= 2  # each sample's maximum is dropped
    layer = ADL(drop_rate=0.75, gamma=0.9).train()
    torch.manual_seed(seed_for(branch_drop, 0.75))
    out = layer(x)
    expected = x * (drop if branch_drop else importance)
    assert torch.allclose(out, expected, atol=1e-6)


def test_adl_one_draw_per_forward_eval_identity_and_defaults():
    x = torch.randn(3, 6, 4, 9)
    layer = ADL().train()
    torch.manual_seed(5)
    layer(x)
    after = torch.rand(())
    torch.manual_seed(5)
    torch.rand(())
    assert torch.equal(after, torch.rand(()))  # exactly one scalar draw, for the whole batch
    assert layer.eval()(x) is x
    assert (layer.drop_rate, layer.gamma) == (0.75, 0.9) and ADL(gamma=0.8).gamma == 0.8
    assert repr(layer) == "ADL(drop_rate=0.75, gamma=0.9)"
    _, drop, importance = attention_maps(x, 0.9)
    assert torch.equal(ADL(1.0).train()(x), x * drop) and torch.allclose(ADL(0.0).train()(x), x * importance)
    with pytest.raises(ValueError):
        ADL(drop_rate=1.2)
    with pytest.raises(ValueError):
        ADL(gamma=-0.1)


# -- architectures -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_gives_an_exact_14x14_map(arch):
    model = built(arch)
    out = camloc.CAMExtractor(model)(torch.randn(1, 3, 224, 224))
    assert out.maps.shape[-2:] == (14, 14) and out.exact
    spec = ARCHITECTURES[arch]
    assert isinstance(spec, ArchSpec) and spec.name == arch and spec.feature_size_at_224 == 14
    assert isinstance(model, CAMHeadModel) and model.route == "forward_features"
    assert isinstance(model.backbone, WSOLBackbone) and not model.training
    names = dict(model.named_modules())
    assert all(p in names for p in spec.adl_positions + spec.new_layers)
    cfg = model.camloc_cfg
    assert (cfg.source, cfg.arch, cfg.pool, cfg.preprocess) == ("wsol", arch, "gap", rethinking_crop())
    assert model.fc.out_features == 5
    assert ("ours" in spec.source) == (arch in ("mobilenetv1", "googlenet", "smallcnn", "smallcnn_nobn"))


def test_structures_follow_the_references():
    vgg = built("vgg16")
    assert len(vgg.backbone.features) == 30 and isinstance(vgg.backbone.features[29], nn.ReLU)
    assert [type(m) for m in vgg.per_location] == [nn.Conv2d, nn.ReLU] and vgg.per_location[0].out_channels == 1024
    for arch in ("resnet50", "seresnet50"):
        block = built(arch).backbone.layer4[0]
        convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
        assert all(c.stride == (1, 1) and c.dilation == (1, 1) for c in convs)
        assert block.downsample[0].stride == (1, 1)
    inc = built("inception_v3")
    assert not any(n.startswith("Mixed_7") for n, _ in inc.backbone.named_children())
    assert inc.backbone.Conv2d_1a_3x3.conv.padding == (1, 1) and inc.backbone.maxpool1.ceil_mode
    assert inc.backbone.Mixed_6a.branch3x3.conv.stride == (1, 1)
    assert [type(m) for m in inc.per_location].count(nn.Dropout) == 3
    assert isinstance(built("googlenet").backbone.maxpool4, nn.Identity)
    mob = built("mobilenetv1")
    assert mob.backbone.blocks[4][0].conv_dw.stride == (1, 1) and mob.backbone.blocks[3][0].conv_dw.stride == (2, 2)
    # the frozen-feature route: backbone_features is the backbone's forward_features
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        assert torch.equal(mob.backbone_features(x), mob.backbone(x))


def test_smallcnn_nobn_is_smallcnn_without_batch_norm():
    plain, bn = built("smallcnn_nobn"), built("smallcnn")
    spec = ARCHITECTURES["smallcnn_nobn"]
    assert not spec.pretrained and spec.adl_positions == ARCHITECTURES["smallcnn"].adl_positions
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in plain.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in bn.modules())
    convs = [m for m in plain.modules() if isinstance(m, nn.Conv2d)]
    bn_convs = [m for m in bn.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride) for c in convs] == [
        (c.in_channels, c.out_channels, c.stride) for c in bn_convs]
    assert all(c.bias is not None for c in convs)
    assert [n for n, _ in plain.backbone.named_children()] == [n for n, _ in bn.backbone.named_children()]
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert plain.backbone_features(x).shape == (2, 64, 14, 14)
    out = camloc.CAMExtractor(plain)(x, nwc=False)
    assert out.exact and out.maps.shape[-2:] == (14, 14)
    assert torch.allclose(out.maps.mean((2, 3)) + out.bias, out.logits.gather(1, out.classes), atol=1e-4)
    with pytest.raises(ModelError, match="no ImageNet weights"):
        build_wsol("smallcnn_nobn", 3, pretrained=True)


def test_smallcnn_nobn_adl_and_tap():
    model = build_wsol("smallcnn_nobn", 3, adl=True)
    adls = sorted(n for n, m in model.named_modules() if isinstance(m, ADL))
    assert adls == ["backbone.block2.1", "backbone.block4.1"]
    tap = build_wsol("smallcnn_nobn", 3, pool="tap", theta_tap=0.1)
    assert tap.camloc_cfg.pool == "tap" and tap.pool.theta == 0.1
    x = torch.randn(1, 3, 224, 224)
    out = camloc.CAMExtractor(tap)(x)
    assert out.exact and out.maps.shape[-2:] == (14, 14)


def _adl_keys(state: dict, positions) -> dict:
    """The plain model's state dict under the ADL model's keys (wrapped modules move to NAME.0.)."""
    out = {}
    for key, value in state.items():
        for p in positions:
            if key.startswith(p + "."):
                key = p + ".0." + key[len(p) + 1:]
                break
        out[key] = value
    return out


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_adl_inserted_at_the_named_places_and_identity_in_eval(arch):
    spec = ARCHITECTURES[arch]
    model = built(arch, adl=True)
    adls = [n for n, m in model.named_modules() if isinstance(m, ADL)]
    assert sorted(adls) == sorted(p + ".1" for p in spec.adl_positions)
    assert all((m.drop_rate, m.gamma) == (0.75, 0.9) for m in model.modules() if isinstance(m, ADL))
    if arch == "inception_v3":
        assert not any(isinstance(m, nn.Dropout) for m in model.modules())  # the ADL variant's head
    plain = built(arch)
    model.load_state_dict(_adl_keys(plain.state_dict(), spec.adl_positions))
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        assert torch.allclose(model(x), plain(x), atol=1e-5)
    assert camloc.CAMExtractor(model)(x).exact  # ADL (identity in eval) keeps the head exact


def test_adl_positions_by_value_and_rates():
    model = build_wsol("mobilenetv1", 3, adl=True, adl_positions=["backbone.blocks.2"], adl_drop_rate=0.5,
                       adl_gamma=0.8)
    adls = {n: m for n, m in model.named_modules() if isinstance(m, ADL)}
    assert list(adls) == ["backbone.blocks.2.1"] and (adls["backbone.blocks.2.1"].drop_rate,
                                                     adls["backbone.blocks.2.1"].gamma) == (0.5, 0.8)
    with pytest.raises(UsageError):
        build_wsol("mobilenetv1", 3, adl_positions=["backbone.blocks.2"])
    with pytest.raises(ModelError, match="closest: backbone.blocks.2"):
        build_wsol("mobilenetv1", 3, adl=True, adl_positions=["backbone.blocks.2x"])
    with pytest.raises(ModelError, match="resnet50"):
        build_wsol("resnet5O", 3)
    model = build_wsol("mobilenetv1", 3, pool="tap", theta_tap=0.1)
    assert model.camloc_cfg.theta_tap == 0.1 and model.pool.theta == 0.1
    assert camloc.CAMExtractor(model)(torch.randn(1, 3, 64, 64)).exact


def test_insert_after_unknown_name_names_the_closest_and_changes_nothing():
    model = nn.Sequential()
    model.add_module("stem", nn.Conv2d(3, 4, 3))
    model.add_module("layer4", nn.Sequential(nn.ReLU(), nn.ReLU()))
    with pytest.raises(ModelError, match="closest: layer4"):
        insert_after(model, ["stem", "layr4"], nn.Identity)
    assert isinstance(model.stem, nn.Conv2d)  # names are all checked before anything changes
    with pytest.raises(ModelError):
        insert_after(model, [""], nn.Identity)
    insert_after(model, ["layer4", "layer4.0"], lambda: ADL())  # nested names both get their layer
    assert [n for n, m in model.named_modules() if isinstance(m, ADL)] == ["layer4.0.0.1", "layer4.1"]
    insert_after(model, "stem", nn.Identity)  # one string is one name
    assert isinstance(model.stem, nn.Sequential) and isinstance(model.stem[0], nn.Conv2d)


def test_pretrained_offline_raises_a_model_error(monkeypatch):
    def offline(*args, **kwargs):
        if kwargs.get("pretrained") or kwargs.get("weights"):
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        raise AssertionError("only the pretrained calls are expected here")

    monkeypatch.setattr(timm, "create_model", offline)
    monkeypatch.setattr(torchvision.models, "get_model", offline)
    for arch in ARCHS:  # (an architecture without ImageNet weights says so before any call)
        with pytest.raises(ModelError, match=f"{arch}.*pretrained=False"):
            build_wsol(arch, 3, pretrained=True)


def test_pretrained_path_up_to_the_download(monkeypatch):
    """The real library calls with pretrained=True: torchvision accepts camloc's arguments up to the
    download (stopped here), and timm's models (weights loading skipped) get the same changes."""
    import timm.models._builder
    import torchvision.models._api

    def no_download(*args, **kwargs):
        raise OSError("offline sentinel")

    monkeypatch.setattr(torchvision.models._api.WeightsEnum, "get_state_dict", no_download)
    monkeypatch.setattr(timm.models._builder, "load_pretrained", lambda *args, **kwargs: None)
    for arch in ("inception_v3", "googlenet"):  # the two given keyword arguments torchvision checks
        with pytest.raises(ModelError, match="offline sentinel"):
            build_wsol(arch, 3, pretrained=True)
    for arch in ("resnet50", "mobilenetv1"):
        model = build_wsol(arch, 3, pretrained=True)
        assert strided(model) == strided(built(arch)) and "layer4.0.conv2" not in strided(model)


def strided(model: nn.Module) -> list[str]:
    return [n for n, m in model.backbone.named_modules() if isinstance(m, nn.Conv2d) and m.stride != (1, 1)]


def test_random_init_never_touches_the_network_and_checkpoints_round_trip(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("pretrained=False must not open a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    a = build_wsol("mobilenetv1", 4)
    b = build_wsol("mobilenetv1", 4)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    assert isinstance(build_wsol("googlenet", 4).backbone.maxpool4, nn.Identity)


@pytest.mark.parametrize("arch", PRETRAINED)
def test_pretrained_weights_land_in_the_backbone(monkeypatch, arch):
    """With pretrained=True every backbone tensor is the library model's tensor of the same name (the
    'pretrained' weights are a seeded random draw here: no network), and the new layers are not."""
    real_timm, real_tv = timm.create_model, torchvision.models.get_model
    source: dict[str, torch.Tensor] = {}

    def pretend(model: nn.Module) -> nn.Module:
        torch.manual_seed(123)
        with torch.no_grad():
            for p in model.parameters():
                p.normal_()
        source.update({k: v.clone() for k, v in model.state_dict().items()})
        return model

    def fake_timm(name, pretrained=False, **kwargs):
        model = real_timm(name, pretrained=False, **kwargs)
        return pretend(model) if pretrained else model

    def fake_tv(name, weights=None, **kwargs):
        model = real_tv(name, weights=None, **kwargs)
        return pretend(model) if weights else model

    monkeypatch.setattr(timm, "create_model", fake_timm)
    monkeypatch.setattr(torchvision.models, "get_model", fake_tv)
    model = build_wsol(arch, 3, pretrained=True)
    backbone = model.backbone.state_dict()
    assert backbone, arch
    for key, value in backbone.items():
        assert key in source and torch.equal(value, source[key]), (arch, key)
    for key, value in model.fc.state_dict().items():
        assert not any(v.shape == value.shape and torch.equal(v, value) for v in source.values()), key
