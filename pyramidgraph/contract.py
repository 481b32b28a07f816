"""What a compiled neck accepts, checked where its forward starts.

The first node of every generated forward calls :meth:`InputContract.check_inputs`, which
unpacks the inputs (a list/tuple finest first, or a dict by input name) and checks their number,
that each is a 4-D tensor, its width and the batch size, then the spatial sizes. Anything wrong
raises one :class:`~pyramidgraph.errors.NeckInputError` naming the neck, the input, what was
expected and what came, instead of a ``conv2d`` or ``torch.cat`` error deep in the graph.

Sizes are checked with the compiler's own shape inference (:func:`pyramidgraph.lower.lower`
with the actual input sizes), so a neck refuses exactly the sizes it cannot line up, and no
size that works. That costs about a millisecond, so verdicts are remembered:

* every size tuple accepted once is accepted again by one dictionary lookup;
* along one axis, the input sizes usually form a chain ``s_l = ceil(s_0 / 2**(l - l_0))`` (what
  padded stride-2 convs give) or ``floor(...)`` (unpadded ones). Every size the neck computes is
  then a sum of floors, ceilings and multiples of ``s_0 / 2**k``, so whether two maps line up
  depends only on ``s_0 mod 2**(max_level - l_0)``, and a larger ``s_0`` never empties a window.
  One accepted ``s_0`` therefore vouches for every larger one of its residue class, and a neck
  runs shape inference at most once per class and axis (16 or 32 classes), whatever image sizes
  it sees. Height and width are inferred independently, so each axis is remembered on its own.

The rule a neck's sizes follow (``size_rule``) is derived the same way, by shape inference over
the residue classes; an ``upsample`` by scale (an op whose ``exact_ratio`` is true) is named in
it. Under ``torch.compile`` and ``torch.export`` (``torch.compiler.is_compiling()``) nothing is
checked: compiled programs guard their own shapes.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch

from .errors import NeckInputError
from .ops.base import one_call_when_traced
from .shape import halving_chain

try:
    from torch.compiler import is_compiling
except ImportError:  # pragma: no cover - torch < 2.3
    from torch._dynamo import is_compiling

__all__ = ["InputContract"]

ENABLED = True
"""Internal switch: False skips every check but unpacking (benchmarks/bench_input_check.py)."""

_MEMO_LIMIT = 4096
"""Remembered size tuples per neck; past it the exact-size memo starts again (the residue
classes, a few dozen entries, stay)."""


def _size(size: Sequence[int]) -> str:
    return f"{size[0]}x{size[1]}"


class InputContract:
    """The inputs of one compiled neck: names, widths and levels, and remembered size verdicts.

    ``lowering`` maps one ``(height, width)`` (or None) per spec input to the shape issues the
    compiler finds for those sizes; ``rebuild`` (the neck's ``info.rebuild``) recreates it when
    the contract was pickled without it. Copies of a neck share their contract: it holds no
    tensors and its memo is valid for every copy.
    """

    def __init__(
        self,
        neck: str,
        names: Sequence[str],
        widths: Sequence[int],
        levels: Sequence[int],
        used: Sequence[bool],
        max_level: int,
        exact_ops: Sequence[str] = (),
        lowering: Callable[[list], list] | None = None,
        rebuild: Mapping[str, Any] | None = None,
        batch_sensitive: bool = True,
    ):
        self.neck = neck
        self.names = tuple(names)
        self.widths = tuple(widths)
        self.levels = tuple(levels)
        self.checked = tuple(i for i, u in enumerate(used) if u)
        """Indices of the inputs the neck reads (inputs a spec accepts and ignores are not checked)."""
        self.exact_ops = tuple(exact_ops)
        self.rebuild = rebuild
        self._lowering = lowering
        levels_read = [self.levels[i] for i in self.checked]
        self.base_level = min(levels_read) if levels_read else 0
        self.period = 2 ** max(max_level - self.base_level, 0)
        self._finest = next((k for k, i in enumerate(self.checked) if self.levels[i] == self.base_level), 0)
        self._steps = tuple(self.levels[i] - self.base_level for i in self.checked)
        self._accepted: dict[tuple, bool] = {}
        self._rejected: dict[tuple, str] = {}
        self._classes: dict[tuple, int] = {}
        self._rule: str | None = None
        self.batch_sensitive = batch_sensitive
        """Whether a batch of one can fail where larger ones run (a group norm of one channel per
        group): then sizes are checked for a batch of one on their own."""
        self.precise_checks = 0
        """How many times shape inference ran, for call sizes or for ``size_rule`` (tests read it)."""

    @classmethod
    def from_ir(cls, ir: Any, doc: Any = None, flat: Any = None) -> InputContract:
        """The contract of ``ir``, re-running shape inference on ``doc``/``flat`` for new sizes.

        Input sizes known at compile time (from the image size) seed the memo."""
        readers = ir.users()
        outputs = {value for _, value in ir.outputs}
        spec_names = [name for name, _ in ir.inputs]
        external = ir.external_inputs()
        used = [name in readers or name in outputs for name in spec_names]
        levels = [shape.level for _, shape in external]
        max_level = max([shape.level for shape in ir.values().values()] + levels)
        exact = [op.name for op in ir.ops if op.op.exact_ratio]
        lowering = _Relower(doc, flat) if doc is not None and flat is not None else None
        sensitive = ir.meta.get("batch_sensitive", True)
        contract = cls(ir.name, [n for n, _ in external], [s.channels for _, s in external], levels, used, max_level, exact, lowering, batch_sensitive=sensitive)
        known = [shape.size for _, shape in external]
        if contract.checked and all(known[i] is not None for i in contract.checked):
            contract._remember(tuple(tuple(known[i]) for i in contract.checked))
        return contract

    # -- the check on every call ------------------------------------------------------------

    @one_call_when_traced
    def check_inputs(self, features: Any) -> list[torch.Tensor]:
        """The neck's inputs as a list (finest first), after checking them. (One call of the
        graph when ``torch.fx.symbolic_trace`` re-traces the neck.)"""
        xs = self.unpack(features)
        if is_compiling() or not ENABLED:
            return xs
        batch = first = None
        sizes = []
        for index in self.checked:
            x = xs[index]
            if not isinstance(x, torch.Tensor) or x.dim() != 4:
                raise self._not_a_map(index, x)
            n, c, h, w = x.shape
            if c != self.widths[index]:
                raise NeckInputError(f"neck '{self.neck}': input {self.names[index]}: expected {self.widths[index]} channels, got {c} (shape {tuple(x.shape)})")
            if batch is None:
                batch, first = n, index
            elif n != batch:
                raise NeckInputError(f"neck '{self.neck}': input {self.names[index]}: expected batch size {batch} (as {self.names[first]}), got {n}")
            sizes.append((h, w))
        key = tuple(sizes)
        one = batch == 1 and self.batch_sensitive  # a group norm of one channel per group on a 1x1 map runs for batches of two and more only
        try:
            known = (key, one) in self._accepted
        except TypeError:  # symbolic sizes (a tracer other than torch.compile/export): nothing to check
            return xs
        if not known:
            self._check_sizes(key, one)
        return xs

    def unpack(self, features: Any) -> list[torch.Tensor]:
        """A list/tuple (finest level first) or a mapping keyed by input name -> the list."""
        if isinstance(features, Mapping):
            missing = [n for n in self.names if n not in features]
            if missing:
                raise NeckInputError(f"neck '{self.neck}': missing inputs {missing}; expected keys {list(self.names)}, got {list(features)}")
            return [features[n] for n in self.names]
        if isinstance(features, (list, tuple)):
            if len(features) != len(self.names):
                raise NeckInputError(f"neck '{self.neck}': expected {len(self.names)} feature maps ({', '.join(self.names)}), got {len(features)}")
            return list(features)
        raise NeckInputError(f"neck '{self.neck}': expected a list, tuple or dict of tensors ({', '.join(self.names)}), got {type(features).__name__}")

    def _not_a_map(self, index: int, x: Any) -> NeckInputError:
        expected = f"a 4-D tensor (batch, {self.widths[index]}, height, width)"
        if isinstance(x, torch.Tensor):
            got = f"a {x.dim()}-D tensor of shape {tuple(x.shape)}"
        else:
            got = type(x).__name__
        return NeckInputError(f"neck '{self.neck}': input {self.names[index]}: expected {expected}, got {got}")

    # -- sizes ------------------------------------------------------------------------------

    def _axis_classes(self, key: tuple) -> list[tuple | None]:
        """Per axis, ``(axis, kind, residue)`` when the sizes form a ceil or floor chain, else None."""
        classes: list[tuple | None] = []
        for axis in (0, 1):
            first = key[self._finest][axis]
            sides = [size[axis] for size in key]
            if all(side == -(-first >> step) for side, step in zip(sides, self._steps)):
                classes.append((axis, "ceil", first % self.period))
            elif all(side == first >> step for side, step in zip(sides, self._steps)):
                classes.append((axis, "floor", first % self.period))
            else:
                classes.append(None)
        return classes

    def _remember(self, key: tuple, one: bool = False) -> None:
        if len(self._accepted) >= _MEMO_LIMIT:
            self._accepted.clear()
        self._accepted[key, one] = True
        for axis, cls in enumerate(self._axis_classes(key)):
            if cls is not None:
                first = key[self._finest][axis]
                self._classes[cls, one] = min(first, self._classes.get((cls, one), first))

    def _check_sizes(self, key: tuple, one: bool = False) -> None:
        """Accept ``key`` (the sizes of the checked inputs; ``one``: for a batch of one) or raise NeckInputError."""
        if not all(type(side) is int for size in key for side in size):
            return  # symbolic sizes: nothing to check
        for index, size in zip(self.checked, key):
            if min(size) < 1:
                raise NeckInputError(f"neck '{self.neck}': input {self.names[index]}: expected height and width of at least 1, got {_size(size)}")
        classes = self._axis_classes(key)
        if all(cls is not None and (cls, one) in self._classes and key[self._finest][cls[0]] >= self._classes[cls, one] for cls in classes):
            self._remember(key, one)
            return
        if (key, one) in self._rejected:
            raise NeckInputError(self._rejected[key, one])
        issues = self._issues(key, one)
        if issues is None or not issues:
            self._remember(key, one)
            return
        got = ", ".join(f"{self.names[i]} {_size(size)}" for i, size in zip(self.checked, key))
        where = f" at {issues[0].path}" if issues[0].path else ""
        problem = issues[0].message.split("; ")[0]  # the rest is a hint for the spec's author
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        message = f"neck '{self.neck}': input sizes fail{where}: {problem}{more}; expected {self.size_rule()}{self._too_small(key, one)}; got {got}"
        if len(self._rejected) >= _MEMO_LIMIT:
            self._rejected.clear()
        self._rejected[key, one] = message
        raise NeckInputError(message)

    def _too_small(self, key: tuple, one: bool) -> str:
        """``", ... too small ..."`` when ``key`` fails only for being small: sizes of its residue
        classes work once large enough (a window no longer empties, a group norm holds more than
        one value), which the rule alone would not say. Bisection over whole periods added to
        both sides at once (a few shape inferences, on the refusal path only)."""
        classes = self._axis_classes(key)
        if None in classes:
            return ""
        finest = key[self._finest]

        def works(step: int) -> bool:
            chains = [self._chain(finest[a] + step * self.period, classes[a][1]) for a in (0, 1)]
            return not self._issues(tuple((h[0], w[0]) for h, w in zip(chains[0], chains[1])), one)

        high = 16
        if not works(high):
            return ""  # fails however large: the rule says why
        low = 0  # fails
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if works(middle) else (middle, high)
        h, w = finest[0] + high * self.period, finest[1] + high * self.period
        stride = 2**self.base_level
        return f"; these are too small: sizes of the same residue classes work from {self.names[self.checked[self._finest]]} {h}x{w} (image {h * stride}x{w * stride})"

    def _issues(self, key: tuple, one: bool = False) -> list | None:
        """Shape issues for these sizes of the checked inputs (None: cannot tell)."""
        sizes: list[tuple[int, int] | None] = [None] * len(self.names)
        for index, size in zip(self.checked, key):
            sizes[index] = size
        return self._lower(sizes, one)

    def _lower(self, sizes: list, one: bool = False) -> list | None:
        if self._lowering is None and self.rebuild is not None:
            from .compiler import analyze

            arguments = self.rebuild
            analysis = analyze(arguments["spec"], arguments["in_channels"], image=arguments.get("image"), params=arguments.get("params"))
            self._lowering = _Relower(analysis.doc, analysis.flat)
        if self._lowering is None:
            return None
        self.precise_checks += 1
        return self._lowering(sizes, one)

    def _square(self, first: int, kind: str) -> list | None:
        """Issues for square inputs whose sides form a ``kind`` chain from ``first``."""
        return self._issues(self._chain(first, kind))

    def _chain(self, first: int, kind: str) -> tuple:
        return tuple((side, side) for side in halving_chain(first, kind, self._steps))

    def size_rule(self) -> str:
        """The sizes this neck takes, in words (derived by shape inference, then remembered)."""
        if self._rule is None:
            self._rule = self._derive_rule()
        return self._rule

    def _derive_rule(self) -> str:
        if not self.checked or self._lowering is None and self.rebuild is None:
            return "sizes the neck can line up"
        stride = 2**self.base_level
        base = self.period * 16  # large enough that no window empties

        def works(kind: str) -> list[bool]:
            return [not self._square(base + r, kind) for r in range(self.period)]

        def divisor(ok: list[bool]) -> int | None:
            """The smallest d such that every finest side divisible by d works."""
            return next((2**k for k in range(self.period.bit_length()) if all(ok[0 :: 2**k])), None)

        ceil = works("ceil")
        if all(ceil):
            floor = divisor(works("floor"))
            if floor == 1:
                return "any image size (inputs of ceil or floor of image / stride)"
            rule = "inputs of ceil(image / stride), as padded stride-2 convs give them, for any image size"
            return rule + (f"; floor(image / stride) only for image sides divisible by {floor * stride}" if floor else "")
        why = f" (fixed-factor upsampling in {', '.join(self.exact_ops[:2])}{', ...' if len(self.exact_ops) > 2 else ''})" if self.exact_ops else ""
        d = divisor(ceil)
        if d is None:
            return f"sizes the neck can line up{why}"
        finest = self.names[self.checked[self._finest]]
        if d >= 2 ** max(self._steps):
            return f"image sides divisible by {d * stride}{why}: {finest} a multiple of {d}, each input exactly half the next finer"
        return f"inputs of ceil(image / stride) with image sides divisible by {d * stride}{why}"

    # -- copying and pickling ---------------------------------------------------------------

    def __deepcopy__(self, memo: dict[int, Any]) -> InputContract:
        return self  # no tensors; the memo holds verdicts that are true for every copy

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_lowering"] = None  # rebuilt from `rebuild` when needed
        return state


class _Relower:
    """Shape inference of one analysed spec for given input sizes."""

    def __init__(self, doc: Any, flat: Any):
        self.doc = doc
        self.flat = flat

    def __call__(self, sizes: list, one: bool = False) -> list:
        from .lower import lower

        return lower(self.doc, self.flat, sizes, single_sample=one)[1]
