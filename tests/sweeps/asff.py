"""ASFF (the authors' code, YOLOv3-ASFF's three ``ASFF(level)`` fusions): what its constructor takes.

``ASFF(level, rfb, vis)`` hard-codes every width (inputs 256, 256, 512 at strides 8, 16, 32;
outputs 256, 512, 1024), and the peers wrapper builds all three levels, so a configuration is
``rfb`` (and the descriptive keys the converter checks: ``in_channels``, ``out_channels``,
``strides``, ``vis: false``, ``output_order``). Images: sides that are multiples of 32 (every
map exactly twice the next; a square one, a non-square one, one with odd coarse maps) and one
that is not: the reference's scale-factor upsampling then no longer meets the finer maps and it
fails, and so must ours. The outputs are 1792 channels wide in all, so the images are small.

Not swept: ``vis: true`` (the reference then returns the fusion weights besides the maps, which
the converter refuses: a neck returns its maps), ``output_order`` other than ``fine_to_coarse``
and widths other than the hard-coded ones (the wrapper ignores them, the converter refuses them:
tests/test_asff.py).
"""

from __future__ import annotations

from .afpn import interned

SOURCE = "asff.ASFF"

FAILS = [40, 72]
DESCRIBED = {"in_channels": [256, 256, 512], "out_channels": [256, 512, 1024], "strides": [8, 16, 32], "vis": False, "output_order": "fine_to_coarse"}

CASES = [
    {"id": "asff-base", "config": {}, "images": [[32, 64], FAILS]},
    {"id": "asff-rfb=False", "config": {"rfb": False}, "images": [[32, 32], FAILS]},
    {"id": "asff-rfb=True", "config": {"rfb": True}, "images": [[32, 64], FAILS]},
    {"id": "asff-rfb=True-odd", "config": {"rfb": True}, "images": [[96, 32], [72, 40]]},
    {"id": "asff-described", "config": dict(DESCRIBED), "images": [[32, 32], FAILS]},
    {"id": "asff-described-rfb=True", "config": {**DESCRIBED, "rfb": True}, "images": [[32, 32], [36, 32]]},
]


def build(config: dict, hw: tuple, batch: int) -> tuple:
    """The peers builder (``record_fetched.asff_asff``), its state keys interned."""
    import record_fetched

    return interned(record_fetched.asff_asff(config, hw, batch))
