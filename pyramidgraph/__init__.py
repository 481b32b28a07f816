"""pyramidgraph: detector necks as YAML graphs, validated and compiled to ``torch.fx``.

>>> import pyramidgraph
>>> neck = pyramidgraph.compile("bifpn")              # the spec's example backbone
>>> outs = neck(neck.example_inputs(batch=2))
>>> neck.output_names, neck.out_channels

Everything a user can get wrong raises :class:`SpecError`, whose ``issues`` list every
problem with its file, line, column and spec path.
"""

from .compiler import Analysis, analyze, compile, load, validate
from .errors import Issue, SpecError
from .info import NeckCost, neck_info
from .library import bundled_specs
from .module import PyramidNeck, ShapeSpec
from .schema import spec_schema

__version__ = "0.1.0"

__all__ = [
    "Analysis",
    "Issue",
    "NeckCost",
    "PyramidNeck",
    "ShapeSpec",
    "SpecError",
    "analyze",
    "neck_info",
    "bundled_specs",
    "compile",
    "load",
    "spec_schema",
    "validate",
    "__version__",
]
