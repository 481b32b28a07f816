"""pyramidgraph.adapters: the interfaces torchvision, timm, detectron2 and mmdetection read,
checked with stand-ins for the frameworks (none of them is installed for the tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from collections import OrderedDict

import pytest
import torch
from torch import nn

import pyramidgraph
from pyramidgraph import ShapeSpec, SpecError
from pyramidgraph.adapters import BackboneWithNeck, Detectron2Neck, PyramidGraphNeck, register_mmdet, with_backbone
from pyramidgraph.adapters import mmdet as mmdet_adapter


class FakeBody(nn.Module):
    """An ``IntermediateLayerGetter`` stand-in: images -> OrderedDict of maps at strides 4..32."""

    def __init__(self, widths=(8, 16, 32, 64), names=("0", "1", "2", "3")):
        super().__init__()
        self.names = list(names)
        self.stages = nn.ModuleList(nn.Conv2d(3, width, kernel_size=2**level, stride=2**level) for level, width in zip(range(2, 6), widths))

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return OrderedDict((name, stage(images)) for name, stage in zip(self.names, self.stages))


def _shapes(outputs) -> dict[str, tuple[int, ...]]:
    return {name: tuple(value.shape) for name, value in outputs.items()}


# -- torchvision -----------------------------------------------------------------------------

FPN_SHAPES_64 = {"0": (2, 16, 16, 16), "1": (2, 16, 8, 8), "2": (2, 16, 4, 4), "3": (2, 16, 2, 2), "pool": (2, 16, 1, 1)}


def test_with_backbone_is_backbone_with_fpn_with_torchvision_names():
    torch.manual_seed(0)
    neck = pyramidgraph.compile("fpn", [8, 16, 32, 64], channels=16, input_names=["0", "1", "2", "3"], output_names=["0", "1", "2", "3", "pool"], return_type="dict")
    backbone = with_backbone(FakeBody(), neck)
    assert isinstance(backbone, BackboneWithNeck)
    assert backbone.out_channels == 16 and type(backbone.out_channels) is int  # torchvision: RPNHead(backbone.out_channels, ...)
    images = torch.randn(2, 3, 64, 64)
    outputs = backbone(images)
    assert type(outputs) is OrderedDict
    assert _shapes(outputs) == FPN_SHAPES_64
    expected = neck(backbone.body(images))
    assert all(torch.equal(outputs[name], expected[name]) for name in FPN_SHAPES_64)
    # BackboneWithFPN's attribute names, hence its state_dict prefixes
    keys = list(backbone.state_dict())
    assert keys[0] == "body.stages.0.weight" and "fpn.L2.post0.weight" in keys and "fpn.P5.post0.bias" in keys


def test_with_backbone_feeds_differently_named_features_in_order_and_names_tuple_outputs():
    torch.manual_seed(0)
    neck = pyramidgraph.compile("fpn", [8, 16, 32, 64], channels=16)  # inputs C2..C5, returns a tuple
    backbone = with_backbone(FakeBody(names=("layer1", "layer2", "layer3", "layer4")), neck)
    outputs = backbone(torch.randn(2, 3, 64, 64))
    assert type(outputs) is OrderedDict
    assert _shapes(outputs) == {"P2": (2, 16, 16, 16), "P3": (2, 16, 8, 8), "P4": (2, 16, 4, 4), "P5": (2, 16, 2, 2), "P6": (2, 16, 1, 1)}


def test_with_backbone_feeds_matching_names_by_name_whatever_their_order():
    torch.manual_seed(0)
    neck = pyramidgraph.compile("fpn", [8, 16, 32, 64], channels=16, input_names=["a", "b", "c", "d"], return_type="dict")

    class ShuffledBody(FakeBody):
        def forward(self, images):
            features = super().forward(images)
            return OrderedDict((name, features[name]) for name in ["d", "b", "a", "c"])

    backbone = with_backbone(ShuffledBody(names=("a", "b", "c", "d")), neck)
    assert _shapes(backbone(torch.randn(2, 3, 64, 64)))["P2"] == (2, 16, 16, 16)


def test_with_backbone_needs_a_compiled_neck():
    with pytest.raises(TypeError, match="with_backbone: neck must be a PyramidNeck from pyramidgraph.compile, got Conv2d"):
        with_backbone(FakeBody(), nn.Conv2d(1, 1, 1))


def test_out_channels_is_a_list_when_widths_differ():
    neck = pyramidgraph.compile("yolov8", [64, 128, 256])  # yolov8n widths 64, 128, 256
    assert with_backbone(FakeBody(widths=(8, 64, 128, 256)), neck).out_channels == [64, 128, 256]


# -- timm ------------------------------------------------------------------------------------


class FakeFeatureInfo:
    """timm's ``FeatureInfo`` as a features_only backbone has it (two of its methods)."""

    def __init__(self, channels, reductions):
        self._channels, self._reductions = list(channels), list(reductions)

    def channels(self):
        return self._channels

    def reduction(self):
        return self._reductions


def test_feature_info_object_gives_widths_and_first_level():
    neck = pyramidgraph.compile("bifpn", feature_info=FakeFeatureInfo([24, 40, 112, 320], [4, 8, 16, 32]), channels=16, cells=1)
    assert neck.input_names == ["P2", "P3", "P4", "P5"]
    assert neck.in_channels == [24, 40, 112, 320]
    assert neck.output_names == ["P2_out", "P3_out", "P4_out", "P5_out", "P6_out", "P7_out"]
    assert neck.strides == [4, 8, 16, 32, 64, 128]
    assert neck.info.params["first_level"] == 2


def test_feature_info_list_of_dicts_as_timm_models_without_features_only_have_it():
    info = [{"num_chs": 64, "reduction": 8, "module": "blocks.1"}, {"num_chs": 128, "reduction": 16, "module": "blocks.2"}, {"num_chs": 256, "reduction": 32, "module": "blocks.3"}]
    torch.manual_seed(0)
    neck = pyramidgraph.compile("fpn", feature_info=info, channels=16)
    assert neck.input_names == ["C3", "C4", "C5"] and neck.in_channels == [64, 128, 256]
    assert dict(neck.output_shapes) == {"P3": ShapeSpec(16, 8), "P4": ShapeSpec(16, 16), "P5": ShapeSpec(16, 32), "P6": ShapeSpec(16, 64)}
    features = [torch.randn(2, 64, 8, 8), torch.randn(2, 128, 4, 4), torch.randn(2, 256, 2, 2)]  # a 64x64 image
    assert [tuple(t.shape) for t in neck(features)] == [(2, 16, 8, 8), (2, 16, 4, 4), (2, 16, 2, 2), (2, 16, 1, 1)]


def test_feature_info_matching_a_spec_without_first_level_and_agreeing_in_channels():
    neck = pyramidgraph.compile("yolov8", [64, 128, 256], feature_info=FakeFeatureInfo([64, 128, 256], [8, 16, 32]))
    assert neck.input_names == ["C3", "C4", "C5"] and neck.in_channels == [64, 128, 256]


@pytest.mark.parametrize(
    ("spec", "feature_info", "kwargs", "message"),
    [
        (
            "fpn",
            FakeFeatureInfo([64, 128], [8, 32]),
            {},
            "feature_info reductions [8, 32] are not consecutive pyramid levels (each twice the one before, finest first); choose the backbone's out_indices so that they are",
        ),
        ("fpn", FakeFeatureInfo([64, 128], [16, 8]), {}, "feature_info reductions [16, 8] are not consecutive pyramid levels"),
        ("fpn", [{"num_chs": 64, "reduction": 12}], {}, "feature_info reductions [12] are not all powers of two, so they are not pyramid levels"),
        ("fpn", FakeFeatureInfo([64, 0], [8, 16]), {}, "feature_info widths and reductions must be positive integers, got channels [64, 0] and reductions [8, 16]"),
        ("fpn", FakeFeatureInfo([64, 128], [8]), {}, "feature_info lists 2 widths and 1 reductions; expected the same, non-zero number"),
        ("fpn", [{"channels": 64}], {}, "expected timm's FeatureInfo (with channels() and reduction()) or a list of dicts with 'num_chs' and 'reduction', got list"),
        ("fpn", FakeFeatureInfo([64, 128], [8, 16]), {"first_level": 2}, "first_level=2 was given, but feature_info's finest map has reduction 8, which is level 3"),
        ("fpn", FakeFeatureInfo([64, 128], [8, 16]), {"in_channels": [64, 256]}, "in_channels [64, 256] disagrees with feature_info's widths [64, 128]; pass one of them"),
        (
            "yolov8",
            FakeFeatureInfo([64, 128, 256], [4, 8, 16]),
            {},
            "feature_info gives reduction 4 (level 2), reduction 8 (level 3), reduction 16 (level 4), but the spec's inputs are C3 (level 3), C4 (level 4), C5 (level 5)"
            "; the spec has no 'first_level' parameter to move its inputs",
        ),
    ],
)
def test_feature_info_that_does_not_fit_is_a_spec_error(spec, feature_info, kwargs, message):
    with pytest.raises(SpecError) as caught:
        pyramidgraph.compile(spec, feature_info=feature_info, **kwargs)
    [issue] = caught.value.issues
    assert issue.path == "feature_info"
    assert issue.file.endswith(f"specs/{spec}.yaml")
    assert issue.message.startswith(message)


def test_feature_info_neck_pickles_without_the_feature_info():
    import pickle

    neck = pyramidgraph.compile("fpn", feature_info=FakeFeatureInfo([8, 16], [16, 32]), channels=8)
    copy = pickle.loads(pickle.dumps(neck))
    assert copy.input_names == ["C4", "C5"] and copy.strides == [16, 32, 64]


# -- detectron2 ------------------------------------------------------------------------------


def _d2_features(batch: int = 2, image: int = 64) -> dict[str, torch.Tensor]:
    return {f"res{level}": torch.randn(batch, width, image >> level, image >> level) for level, width in zip(range(2, 6), (8, 16, 32, 64))} | {"stem": torch.randn(batch, 4, image // 2, image // 2)}


def test_detectron2_neck_names_outputs_by_level_and_describes_them():
    torch.manual_seed(0)
    neck = Detectron2Neck(pyramidgraph.compile("fpn", [8, 16, 32, 64], channels=16), in_features=["res2", "res3", "res4", "res5"])
    outputs = neck(_d2_features())
    assert type(outputs) is OrderedDict
    assert _shapes(outputs) == {"p2": (2, 16, 16, 16), "p3": (2, 16, 8, 8), "p4": (2, 16, 4, 4), "p5": (2, 16, 2, 2), "p6": (2, 16, 1, 1)}
    assert neck.output_shape() == {"p2": ShapeSpec(16, 4), "p3": ShapeSpec(16, 8), "p4": ShapeSpec(16, 16), "p5": ShapeSpec(16, 32), "p6": ShapeSpec(16, 64)}
    shape = neck.output_shape()["p4"]
    assert (shape.channels, shape.stride, shape.height, shape.width) == (16, 16, None, None)
    assert neck.size_divisibility == 64  # the coarsest output stride, as detectron2's FPN
    assert neck.padding_constraints == {"size_divisibility": 64, "square_size": 0}


def test_detectron2_neck_overrides_and_bifpn_levels():
    neck = Detectron2Neck(pyramidgraph.compile("bifpn", [40, 112, 320], channels=16, cells=1), size_divisibility=32, square_pad=1024)
    assert list(neck.output_shape()) == ["p3", "p4", "p5", "p6", "p7"]
    assert neck.output_shape()["p7"] == ShapeSpec(16, 128)
    assert neck.size_divisibility == 32
    assert neck.padding_constraints == {"size_divisibility": 32, "square_size": 1024}
    assert neck.in_features == ["P3", "P4", "P5"]


def test_detectron2_neck_with_bottom_up_takes_images():
    torch.manual_seed(0)
    body = FakeBody(names=("res2", "res3", "res4", "res5"))
    neck = Detectron2Neck(pyramidgraph.compile("fpn", [8, 16, 32, 64], channels=16), in_features=["res2", "res3", "res4", "res5"], bottom_up=body)
    outputs = neck(torch.randn(2, 3, 64, 64))
    assert list(outputs) == ["p2", "p3", "p4", "p5", "p6"] and tuple(outputs["p2"].shape) == (2, 16, 16, 16)


def test_detectron2_neck_dict_returning_neck_and_errors():
    fpn = pyramidgraph.compile("fpn", [8, 16, 32, 64], channels=16, return_type="dict")
    neck = Detectron2Neck(fpn, in_features=["res2", "res3", "res4", "res5"])
    assert list(neck(_d2_features())) == ["p2", "p3", "p4", "p5", "p6"]
    with pytest.raises(KeyError, match=r"features \['res5'\] missing; got \['res2', 'res3', 'res4'\], reading"):
        neck({f"res{level}": torch.zeros(1) for level in (2, 3, 4)})
    with pytest.raises(ValueError, match=r"3 in_features \['a', 'b', 'c'\] for a neck with 4 inputs \(C2, C3, C4, C5\)"):
        Detectron2Neck(fpn, in_features=["a", "b", "c"])
    with pytest.raises(TypeError, match="expected a dict of features keyed"):
        neck([torch.zeros(1)] * 4)


# -- mmdetection -----------------------------------------------------------------------------

FAKE_REGISTRY_SOURCE = textwrap.dedent(
    '''
    class Registry:
        """The two methods of mmengine's Registry that registering and building a neck use."""

        def __init__(self, name):
            self.name = name
            self.module_dict = {}

        def register_module(self, name=None, force=False, module=None):
            name = name or module.__name__
            if name in self.module_dict and not force:
                raise KeyError(f"{name} is already registered in {self.name}")
            self.module_dict[name] = module
            return module

        def build(self, cfg):
            args = dict(cfg)
            return self.module_dict[args.pop("type")](**args)


    MODELS = Registry("model")
    '''
)


@pytest.fixture
def fake_mmdet(monkeypatch):
    """An importable ``mmdet`` package whose ``mmdet.registry.MODELS`` is a tiny Registry."""
    package = types.ModuleType("mmdet")
    package.__path__ = []
    registry = types.ModuleType("mmdet.registry")
    exec(FAKE_REGISTRY_SOURCE, registry.__dict__)
    package.registry = registry
    monkeypatch.setitem(sys.modules, "mmdet", package)
    monkeypatch.setitem(sys.modules, "mmdet.registry", registry)
    return registry


@pytest.fixture
def no_mmdet(monkeypatch):
    """mmdet made unimportable, as where it is not installed."""

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name == "mmdet" or name.startswith("mmdet."):
                raise ModuleNotFoundError(f"No module named '{name}'", name=name)
            return None

    for name in [n for n in sys.modules if n == "mmdet" or n.startswith("mmdet.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [Blocker(), *sys.meta_path])


def test_mmdet_registry_builds_the_neck_from_a_config_dict(fake_mmdet):
    assert register_mmdet() is True
    assert fake_mmdet.MODELS.module_dict == {"PyramidGraphNeck": PyramidGraphNeck}
    torch.manual_seed(0)
    neck = fake_mmdet.MODELS.build(dict(type="PyramidGraphNeck", spec="bifpn", in_channels=[40, 112, 320]))
    assert isinstance(neck, PyramidGraphNeck)
    assert (neck.in_channels, neck.out_channels, neck.strides) == ([40, 112, 320], 64, [8, 16, 32, 64, 128])
    outputs = neck((torch.randn(2, 40, 16, 16), torch.randn(2, 112, 8, 8), torch.randn(2, 320, 4, 4)))  # a 128x128 image
    assert type(outputs) is tuple
    assert [tuple(t.shape) for t in outputs] == [(2, 64, 16, 16), (2, 64, 8, 8), (2, 64, 4, 4), (2, 64, 2, 2), (2, 64, 1, 1)]


def test_mmdet_config_with_file_name_and_spec_params(fake_mmdet):
    register_mmdet()
    assert register_mmdet() is True  # registering again replaces the entry instead of raising KeyError
    neck = fake_mmdet.MODELS.build(dict(type="PyramidGraphNeck", spec="bifpn.yaml", in_channels=[40, 112, 320], channels=24, cells=1, max_level=6))
    assert (neck.out_channels, neck.strides) == (24, [8, 16, 32, 64])
    assert sum(p.numel() for p in neck.parameters()) == sum(p.numel() for p in pyramidgraph.compile("bifpn", [40, 112, 320], channels=24, cells=1, max_level=6).parameters())
    with pytest.raises(ValueError, match="PyramidGraphNeck returns a tuple as mmdetection necks do; return_type='dict' is not supported"):
        fake_mmdet.MODELS.build(dict(type="PyramidGraphNeck", spec="bifpn", in_channels=[40, 112, 320], return_type="dict"))


def test_mmdet_registration_at_import_happens_only_when_mmdet_is_loaded(fake_mmdet, monkeypatch):
    mmdet_adapter._register_if_mmdet_loaded()
    assert list(fake_mmdet.MODELS.module_dict) == ["PyramidGraphNeck"]
    fake_mmdet.MODELS.module_dict.clear()
    monkeypatch.delitem(sys.modules, "mmdet")
    mmdet_adapter._register_if_mmdet_loaded()
    assert fake_mmdet.MODELS.module_dict == {}


def test_without_mmdet_nothing_is_registered_and_nothing_raises(no_mmdet):
    assert register_mmdet() is False
    mmdet_adapter._register_if_mmdet_loaded()  # mmdet not loaded: a no-op
    assert "mmdet" not in sys.modules


def test_mmdet_without_registry_module_warns_at_import_and_raises_when_asked(monkeypatch):
    monkeypatch.setitem(sys.modules, "mmdet", types.ModuleType("mmdet"))  # mmdet 2.x: no mmdet.registry
    monkeypatch.delitem(sys.modules, "mmdet.registry", raising=False)
    with pytest.raises(ImportError, match="this mmdet has no mmdet.registry"):
        register_mmdet()
    with pytest.warns(UserWarning, match="PyramidGraphNeck not registered with mmdetection: PyramidGraphNeck registers with mmdetection 3's"):
        mmdet_adapter._register_if_mmdet_loaded()


def test_importing_pyramidgraph_does_not_import_an_installed_mmdet(tmp_path):
    package = tmp_path / "mmdet"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "registry.py").write_text(FAKE_REGISTRY_SOURCE)
    script = textwrap.dedent(
        """
        import sys
        import pyramidgraph, pyramidgraph.adapters
        print("imported:", "mmdet" in sys.modules)
        print("registered:", pyramidgraph.adapters.register_mmdet())
        from mmdet.registry import MODELS
        print("entries:", sorted(MODELS.module_dict))
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["imported: False", "registered: True", "entries: ['PyramidGraphNeck']"]
