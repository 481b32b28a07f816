"""mmdetection's ``FPN_DropBlock`` (``mmdet/models/necks/fpn_dropblock.py``) as the ``fpn`` spec with DropBlock.

``FPN_DropBlock`` is mmdetection's ``FPN`` (every FPN argument, converted by
:mod:`.mmdet_fpn`) whose ``plugin`` (``mmdet/models/layers/dropblock.py``, ``DropBlock``; None:
none) runs on each top-down sum ``laterals[i - 1]`` after it is formed, from the coarsest down,
so the dropped sum feeds the next finer level; the coarsest lateral is not dropped. One module,
and so one call counter for ``warmup_iters``, serves every level: the spec's ``dropblock``
parameters (``dropblock``, ``dropblock_size``, ``dropblock_warmup``) put one ``dropblock`` op per
level that counts as that shared module does. DropBlock has no weights, so the ``state_dict``
is FPN's, key for key. The plugin is checked as DropBlock's constructor checks it (an odd
``block_size``, ``drop_prob`` in (0, 1], ``warmup_iters`` >= 0, both of the first two given);
DropBlock takes and ignores any further keyword arguments, so they are accepted and ignored
here too (the reference runs such a config, and refusing it would refuse what runs).
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion
from .mmcv_cfg import check_keys, fail
from .mmdet import register_neck
from .mmdet_fpn import FPN_KEYS, _convert

KIND = "FPN_DropBlock"
PLUGIN_DEFAULT = {"type": "DropBlock", "drop_prob": 0.3, "block_size": 3, "warmup_iters": 0}


def _plugin(plugin: Any) -> dict[str, Any]:
    """The ``plugin`` config -> the fpn spec's dropblock parameters, checked as DropBlock's asserts do."""
    if plugin is None:
        return {}
    if not isinstance(plugin, Mapping) or plugin.get("type") != "DropBlock":
        raise fail(KIND, f"plugin {plugin!r} is not supported (a DropBlock config, or None)")
    for key in ("drop_prob", "block_size"):
        if key not in plugin:
            raise fail(KIND, f"plugin DropBlock needs {key}")
    drop_prob, block_size, warmup = plugin["drop_prob"], plugin["block_size"], plugin.get("warmup_iters", 2000)
    if isinstance(drop_prob, bool) or not isinstance(drop_prob, (int, float)) or not 0 < drop_prob <= 1:
        raise fail(KIND, f"plugin drop_prob must be in (0, 1], got {drop_prob!r}")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1 or block_size % 2 == 0:
        raise fail(KIND, f"plugin block_size must be an odd positive integer, got {block_size!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise fail(KIND, f"plugin warmup_iters must be an integer >= 0, got {warmup!r}")
    return {"dropblock": float(drop_prob), "dropblock_size": block_size, "dropblock_warmup": warmup}


@register_neck(KIND)
def convert_fpn_dropblock(cfg: Mapping[str, Any], strides: list[int]) -> Conversion:
    check_keys(KIND, cfg, FPN_KEYS | {"plugin"})
    fpn = {k: v for k, v in cfg.items() if k != "plugin"}
    plan = _convert(fpn, strides, KIND)
    return Conversion(plan.spec, plan.in_channels, {**plan.params, **_plugin(cfg.get("plugin", PLUGIN_DEFAULT))}, plan.key_map, return_type=plan.return_type)
