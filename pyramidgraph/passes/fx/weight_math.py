"""The weight arithmetic of the folding passes, as small functions the graph calls.

A folding pass does not compute new weights: it adds a call of one of these to the graph, on
the nodes that read the original parameters. In a training graph the call runs every step
and gradients flow through it; in an inference program ``freeze`` runs it once and again
whenever the parameters change. Every function takes ``None`` for an absent bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fold_batch_norm(weight: torch.Tensor, bias: torch.Tensor | None, gamma: torch.Tensor | None, beta: torch.Tensor | None, mean: torch.Tensor, var: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``bn(conv(x))`` in eval mode as one conv: the kernel scaled per output channel by
    ``gamma / sqrt(var + eps)``, the bias moved through the norm's affine map."""
    scale = torch.rsqrt(var + eps)
    if gamma is not None:
        scale = scale * gamma
    shift = -mean * scale if bias is None else (bias - mean) * scale
    if beta is not None:
        shift = shift + beta
    return weight * scale.reshape(-1, *([1] * (weight.dim() - 1))), shift


def sum_kernels(weight_a: torch.Tensor, bias_a: torch.Tensor | None, weight_b: torch.Tensor, bias_b: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Two convs of one input, centred and summed (RepVGG's 3x3 and 1x1 branches), as one:
    the smaller kernel zero-padded to the larger's size in its centre, the biases added."""
    kh, kw = max(weight_a.shape[2], weight_b.shape[2]), max(weight_a.shape[3], weight_b.shape[3])

    def grown(w: torch.Tensor) -> torch.Tensor:
        ph, pw = (kh - w.shape[2]) // 2, (kw - w.shape[3]) // 2
        return F.pad(w, [pw, pw, ph, ph]) if ph or pw else w

    weight = grown(weight_a) + grown(weight_b)
    if bias_a is None and bias_b is None:
        return weight, None
    return weight, (bias_a if bias_a is not None else 0) + (bias_b if bias_b is not None else 0)


def scale_conv(weight: torch.Tensor, bias: torch.Tensor | None, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``conv(x) * s`` as one conv, for ``s`` a scalar or one value per output channel."""
    per_channel = scale.reshape(-1)
    weight = weight * per_channel.reshape(-1, *([1] * (weight.dim() - 1)))
    return weight, None if bias is None else bias * per_channel


def cat_kernels(*weights: torch.Tensor) -> torch.Tensor:
    """Kernels of convs of one input, stacked along the output channels."""
    return torch.cat(weights, 0)


def cat_biases(widths: tuple[int, ...], *biases: torch.Tensor | None) -> torch.Tensor | None:
    """The stacked convs' biases (zeros where one has none; None when none has one)."""
    present = next((b for b in biases if b is not None), None)
    if present is None:
        return None
    return torch.cat([b if b is not None else present.new_zeros(width) for b, width in zip(biases, widths)], 0)


def channels_last_weight(weight: torch.Tensor) -> torch.Tensor:
    """A 4-D derived kernel laid out channels-last, like the maps it convolves."""
    return weight.contiguous(memory_format=torch.channels_last) if weight.dim() == 4 else weight
