"""Using compiled necks inside detection frameworks, without depending on any of them.

One small module per framework, each written against the interface the framework reads
(duck typing), so none of them imports the framework it serves:

* :mod:`.torchvision` -- :func:`with_backbone` (body + neck as ``BackboneWithFPN``:
  ``OrderedDict`` out, ``out_channels``);
* :mod:`.timm` -- ``pyramidgraph.compile(spec, feature_info=backbone.feature_info)``;
* :mod:`.detectron2` -- :class:`Detectron2Neck` (``output_shape()``, ``size_divisibility``,
  ``padding_constraints``, ``p<level>`` outputs);
* :mod:`.mmdet` -- :class:`PyramidGraphNeck` for ``neck=dict(type='PyramidGraphNeck', ...)``,
  registered by :func:`register_mmdet` or at import when mmdet is already loaded.
"""

from .detectron2 import Detectron2Neck
from .mmdet import PyramidGraphNeck, register_mmdet
from .timm import FeaturePyramid, read_feature_info
from .torchvision import BackboneWithNeck, with_backbone

__all__ = [
    "BackboneWithNeck",
    "Detectron2Neck",
    "FeaturePyramid",
    "PyramidGraphNeck",
    "read_feature_info",
    "register_mmdet",
    "with_backbone",
]
