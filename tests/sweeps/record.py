"""Record a sweep: run every configuration of one group through its reference (peers environment).

    REFS=/tmp/refs /tmp/peers-venv/bin/python tests/sweeps/record.py GROUP [GROUP ...]

``GROUP`` names a module of this folder (``mmdet_fpn``...) whose ``SOURCE`` is the reference
source and whose ``CASES`` lists the configurations: dicts with ``id``, ``config`` (the
reference's, as ``from_reference`` takes it), ``images`` (``[h, w]`` each; the inputs are
``ceil(image / stride)``), and for a configuration the reference rejects the ``reason`` our
refusal must name. A group may define ``build(config, hw, batch)`` (the peers builders'
signature) to build the reference its own way, ``ours(config)`` to adapt the config for
``from_reference`` in the test, and ``DERIVED_CONFIG = True`` when its builder returns a config
with derived keys added (as ultralytics' does). For each case the reference is built with
the builders of ``../shared/peers`` (``make_fixtures.py``, ``record_fetched.py``: the reference
code is imported, never copied), its parameters and norm statistics are set from ``fill.py``,
and it runs in eval mode without autograd, float32, batch 1, on each of the case's images.
What happens is recorded: the constructor's exception (the reference refuses the
configuration), or per image the outputs or the forward's exception (it refuses those sizes).
The result, ``data/GROUP.pt``, holds no weights and no inputs: ``test_sweeps.py`` draws them
again from ``fill.py``. PEERS (default ``../shared/peers`` beside the checkout) is where the
builders live; REFS is where ``record_fetched.py`` finds the research repositories.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.environ.get("PEERS", os.path.join(HERE, "..", "..", "..", "shared", "peers"))
sys.path.insert(0, PEERS)
sys.path.insert(0, os.path.dirname(HERE))

import make_fixtures  # noqa: E402
import record_fetched  # noqa: E402

from sweeps.fill import input_values, is_filled, weight_values  # noqa: E402

BUILDERS = {**make_fixtures.BUILDERS, **record_fetched.BUILDERS}
FORMAT = 1


def _message(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()[:2000]


def _versions(source: str) -> dict[str, str]:
    versions = {"torch": str(torch.__version__)}
    prefix = source.split(".")[0]
    if prefix in record_fetched.REPOS:
        versions[record_fetched.REPOS[prefix][1]] = record_fetched.repo_commit(prefix)
    for name in ("torchvision", "mmdet", "mmcv", "effdet", "ultralytics", "segmentation_models_pytorch"):
        try:
            versions[name] = str(importlib.import_module(name).__version__)
        except Exception:  # noqa: BLE001 - a package the source does not use
            pass
    return versions


def _fill(module: torch.nn.Module, source: str, config: dict) -> list:
    """Set the module's parameters and norm statistics from fill.py; the state as recorded:
    ``(key, shape, None)`` for a drawn value, ``(key, shape, tensor)`` for a kept buffer."""
    params = dict(module.named_parameters())
    state = []
    with torch.no_grad():
        for key, value in module.state_dict(keep_vars=True).items():
            name = make_fixtures.rename(source, config, key)
            if value.is_floating_point() and is_filled(key, key in params):
                value.copy_(torch.from_numpy(weight_values(name, value.shape)))
                state.append((name, list(value.shape), None))
            elif value.numel() == 1 and not value.is_floating_point() and value.dim() == 0:
                state.append((name, [], int(value)))  # num_batches_tracked: a number, not a stored tensor
            else:
                state.append((name, list(value.shape), value.detach().clone()))
    return state


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    return a == b


def _outputs(out) -> tuple[list | None, list]:
    if isinstance(out, dict):
        return list(out), [v.contiguous() for v in out.values()]
    if isinstance(out, torch.Tensor):
        return None, [out.contiguous()]
    return None, [o.contiguous() for o in out]


def record_case(source: str, case: dict, builder=None) -> dict:
    """Build and run one case; ``builder`` (a group's own ``build``) replaces the peers' builder."""
    config = case["config"]
    entry = {"id": case["id"], "config": config, "note": case.get("note", ""), "reason": case.get("reason"), "refused": None, "runs": []}
    builder = builder or BUILDERS[source]
    for index, image in enumerate(case["images"]):
        torch.manual_seed(0)
        try:
            built = builder(config, tuple(image), 1)
        except Exception as exc:  # noqa: BLE001 - the reference refuses the configuration
            if index == 0:
                entry["refused"] = _message(exc)
                return entry
            raise
        module, input_names, xs, call = built[:4]
        if len(built) == 5:
            entry["config"] = built[4]  # the reference's derived config (ultralytics: layer indices)
        state = _fill(module, source, entry["config"])
        if index == 0:
            entry["state"] = state
            entry["num_params"] = sum(p.numel() for p in module.parameters())
        elif [(k, s) for k, s, _ in state] != [(k, s) for k, s, _ in entry["state"]] or any(
            not _same(a, b) for (_, _, a), (_, _, b) in zip(state, entry["state"])
        ):
            raise RuntimeError(f"{case['id']}: the module's state changes with the image; give each image its own case")
        inputs = [torch.from_numpy(input_values(case["id"], i, x.shape)) for i, x in enumerate(xs)]
        run = {"image": list(image), "input_shapes": [list(x.shape) for x in inputs], "input_names": input_names}
        module.eval()
        try:
            with torch.no_grad():
                out = call(module, inputs)
            run["output_type"] = "dict" if isinstance(out, dict) else type(out).__name__
            run["output_names"], outputs = _outputs(out)
            # one flat tensor per run: a recording holds hundreds of runs, and each stored tensor costs a file in the zip
            run["output_shapes"] = [list(o.shape) for o in outputs]
            run["outputs"] = torch.cat([o.reshape(-1).float() for o in outputs]) if outputs else torch.zeros(0)
        except Exception as exc:  # noqa: BLE001 - the reference cannot run these sizes
            run["error"] = _message(exc)
        entry["runs"].append(run)
    return entry


def record(group: str) -> str:
    spec = importlib.import_module(f"sweeps.{group}")
    torch.set_num_threads(1)
    cases = []
    for case in spec.CASES:
        try:
            entry = record_case(spec.SOURCE, case, getattr(spec, "build", None))
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            raise SystemExit(f"{group}: case {case['id']} could not be recorded") from None
        runs = ", ".join("ok" if "outputs" in r else "fails" for r in entry["runs"])
        print(f"{case['id']:48s} {'refused: ' + entry['refused'][:80] if entry['refused'] else runs}")
        cases.append(entry)
    path = os.path.join(HERE, "data", f"{group}.pt")
    torch.save({"format": FORMAT, "group": group, "source": spec.SOURCE, "versions": _versions(spec.SOURCE), "cases": cases}, path)
    return path


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(record(name), f"{os.path.getsize(os.path.join(HERE, 'data', name + '.pt')):,} bytes")
