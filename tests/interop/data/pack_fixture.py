"""Pack a parity fixture whose many small tensors make ``torch.save`` large (each tensor costs a
zip entry of a few hundred bytes): the state_dict becomes one flat float tensor plus its keys,
shapes and dtypes. ``unpack`` restores the fixture dict exactly.

    python3 tests/interop/data/pack_fixture.py FIXTURE.pt OUT.pt
"""

from __future__ import annotations

import sys
from collections import OrderedDict

import torch


def pack(case: dict) -> dict:
    state = case["state_dict"]
    packed = dict(case)
    packed["state_dict"] = {
        "keys": list(state),
        "shapes": [list(v.shape) for v in state.values()],
        "dtypes": [str(v.dtype).replace("torch.", "") for v in state.values()],
        "flat": torch.cat([v.reshape(-1).to(torch.float64) for v in state.values()]).to(torch.float32),
    }
    return packed


def unpack(packed: dict) -> dict:
    flat, state, offset = packed["state_dict"]["flat"], OrderedDict(), 0
    for key, shape, dtype in zip(packed["state_dict"]["keys"], packed["state_dict"]["shapes"], packed["state_dict"]["dtypes"]):
        count = 1
        for side in shape:
            count *= side
        state[key] = flat[offset : offset + count].reshape(shape).to(getattr(torch, dtype)).clone()
        offset += count
    assert offset == flat.numel()
    return dict(packed, state_dict=state)


if __name__ == "__main__":
    source, target = sys.argv[1], sys.argv[2]
    case = torch.load(source, weights_only=False)
    packed = pack(case)
    restored = unpack(packed)
    assert all(torch.equal(restored["state_dict"][k], v) for k, v in case["state_dict"].items())
    torch.save(packed, target)
