"""Write a converted neck as a standalone, editable spec."""

from __future__ import annotations

import json
from typing import Any, Mapping

import yaml

from ..compiler import load
from .base import Conversion


def converted_spec(plan: Conversion) -> dict[str, Any]:
    """The spec ``plan`` compiles, with its parameters and example filled in.

    ``include``d specs stay references to bundled specs, so the written spec stays short.
    """
    data = dict(load(plan.spec).data) if not isinstance(plan.spec, Mapping) else dict(plan.spec)
    params = dict(data.get("params") or {})
    for name, value in plan.params.items():  # a typed declaration keeps its type, allowed values and doc
        params[name] = dict(params[name], default=value) if isinstance(params.get(name), Mapping) else value
    if params:
        data["params"] = params
    example: dict[str, Any] = {"in_channels": list(plan.in_channels)}
    if plan.image:
        example["image"] = list(plan.image)
    data["example"] = example
    return data


def converted_spec_text(source: str, config: Mapping[str, Any], plan: Conversion) -> str:
    header = (
        f"# Converted by `pyramidgraph convert --from {source}`.\n"
        f"# Reference config: {json.dumps(config, sort_keys=True)}\n"
        + (f"# Reference interface: inputs {plan.input_names}, outputs {plan.output_names}, returns {plan.return_type}\n" if plan.input_names or plan.output_names else "")
    )
    return header + yaml.safe_dump(converted_spec(plan), sort_keys=False, default_flow_style=False, width=100)
