"""Load a reference implementation's neck, with its weights, as a compiled spec.

>>> neck = from_reference(case["source"], case["config"], case["state_dict"])

``source`` and ``config`` are exactly what the parity fixtures record; each source is one
module here with one :class:`Reference` class.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from ..compiler import compile as compile_spec
from ..errors import SpecError
from ..module import PyramidNeck
from . import (  # noqa: F401  (register the references)
    afpn,
    asff,
    damoyolo,
    effdet,
    m2det,
    mmdet,
    mmdet_bfp,
    mmdet_channel_mapper,
    mmdet_cspnext,
    mmdet_ct_resnet,
    mmdet_dilated_encoder,
    mmdet_dropblock,
    mmdet_dyhead,
    mmdet_fpg,
    mmdet_fpn,
    mmdet_fpn_carafe,
    mmdet_hrfpn,
    mmdet_nasfcos,
    mmdet_nasfpn,
    mmdet_rfp,
    mmdet_ssd,
    mmdet_ssh,
    mmdet_yolov3,
    mmdet_yolox,
    rtdetr,
    smp,
    torchvision,
    ultralytics,
    ultralytics_yaml,
)
from .base import REFERENCES, Conversion, ConversionError, KeyMap, Reference, reference_for, register_reference

__all__ = ["from_reference", "conversion", "convert_state_dict", "REFERENCES", "Conversion", "KeyMap", "Reference", "register_reference"]


def conversion(source: str, config: Mapping[str, Any]) -> Conversion:
    """How ``config`` of reference ``source`` maps to a spec, parameters and keys.

    Each converter checks the values it uses; a config of the wrong shape altogether (not a
    mapping, a missing key, a list where a number goes) still ends as a :class:`SpecError`
    saying what is wrong, never as a ``KeyError`` or ``TypeError`` from inside a converter."""
    reference = reference_for(source)
    if not isinstance(config, Mapping):
        raise ConversionError(source, f"the config must be a mapping (a JSON object) of the reference's constructor arguments, not {type(config).__name__}")
    try:
        return reference.convert(config)
    except SpecError:  # a converter's own refusal (ConversionError), worded already: not wrapped again
        raise
    except KeyError as exc:
        raise ConversionError(source, f"the config has no {exc.args[0]!r}, which {source} needs") from None
    except (TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError, OverflowError) as exc:
        raise ConversionError(source, f"the config does not fit {source}: {type(exc).__name__}: {exc}") from None


def from_reference(
    source: str,
    config: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor] | None = None,
    *,
    optimize: str = "none",
    backend: str = "eager",
) -> PyramidNeck:
    """Compile the spec that reproduces the reference neck; load its ``state_dict`` if given.

    The module takes the reference's inputs (a list, or a dict keyed by its feature names)
    and returns its outputs in the reference's order and type. ``optimize`` and ``backend`` are
    :func:`pyramidgraph.compile`'s; the weights are loaded first, so an inference program
    derives its folded weights from the reference's.
    """
    from ..optimization import check_options
    from ..optimization import optimize as optimize_neck

    check_options(optimize, backend)
    plan = conversion(source, config)
    neck = compile_spec(
        plan.spec,
        plan.in_channels,
        image=plan.image,
        params=plan.params,
        input_names=plan.input_names,
        output_names=plan.output_names,
        return_type=plan.return_type,
    )
    if state_dict is not None:
        neck.load_state_dict(plan.key_map.convert(state_dict, neck.state_dict(), source), strict=True)
    if optimize != "none" or backend != "eager":
        optimize_neck(neck, optimize, backend)
    return neck


def convert_state_dict(source: str, config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference checkpoint under pyramidgraph's own key names."""
    neck = from_reference(source, config)
    return conversion(source, config).key_map.convert(state_dict, neck.state_dict(), source)
