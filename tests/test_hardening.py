"""Hostile specs: an include never reads outside the folders a spec may read, and nothing of a
file it may not read reaches a message."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from cli_helpers import issue_lines

import pyramidgraph
from pyramidgraph import SpecError
from pyramidgraph.cli import main

SECRET = "root:x:0:0:secret-line-that-must-not-leak\n"

INNER = """\
pyramidgraph: 1
inputs: {A3: {level: 3}}
defaults: {channels: 8}
nodes:
  X3: {from: [A3], post: [conv3x3]}
outputs: [X3]
"""


def outer(ref: str) -> str:
    return (
        "pyramidgraph: 1\n"
        "example: {in_channels: [8], image: 32}\n"
        "inputs: {C3: {level: 3}}\n"
        f"nodes:\n  sub: {{include: '{ref}', inputs: [C3]}}\n"
        "outputs: [sub.X3]\n"
    )


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """specs/ (the user's folder), a secret file beside it, a shared folder of includable specs."""
    specs, shared = tmp_path / "specs", tmp_path / "shared"
    specs.mkdir()
    shared.mkdir()
    (tmp_path / "secret.yaml").write_text(SECRET)
    (shared / "inner.yaml").write_text(INNER)
    (specs / "inner.yaml").write_text(INNER)
    os.symlink(tmp_path / "secret.yaml", specs / "link.yaml")
    return {"root": tmp_path, "specs": specs, "shared": shared}


def refusal(ref: str, roots: str) -> str:
    return f"cannot include '{ref}': an include names a bundled spec or a file under the including spec's folder or a folder given with include_dirs (here: {roots})"


@pytest.mark.parametrize("ref", ["../secret.yaml", "link.yaml", "/etc/passwd", "/proc/self/environ", "sub/../../secret.yaml"])
def test_includes_outside_the_spec_folder_are_refused_without_quoting_the_file(layout, ref, capsys):
    spec = layout["specs"] / "outer.yaml"
    spec.write_text(outer(ref))
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(spec)
    (issue,) = caught.value.issues
    assert (issue.line, issue.path, issue.message) == (5, "nodes.sub.include", refusal(ref, str(layout["specs"].resolve())))
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "secret-line" not in err and "root:x" not in err
    assert issue_lines(err) == [str(issue)]


def test_includes_inside_the_spec_folder_and_named_folders_work(layout):
    spec = layout["specs"] / "outer.yaml"
    spec.write_text(outer("inner.yaml"))
    assert pyramidgraph.compile(spec).output_names == ["X3"]
    spec.write_text(outer("../shared/inner.yaml"))
    with pytest.raises(SpecError):
        pyramidgraph.validate(spec)
    neck = pyramidgraph.compile(spec, include_dirs=[layout["root"]])
    assert sum(p.numel() for p in neck.parameters()) == 8 * 8 * 9 + 8


def test_a_text_spec_reads_only_bundled_specs_and_named_folders(layout, monkeypatch):
    monkeypatch.chdir(layout["shared"])  # the working directory is not a place specs may read
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(outer("../secret.yaml"))
    assert [i.message for i in caught.value.issues] == [refusal("../secret.yaml", "none: the spec is not a file")]
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(outer("inner.yaml"))
    assert [i.message for i in caught.value.issues] == ["cannot include 'inner.yaml': no such file or bundled spec"]
    assert pyramidgraph.validate(outer("inner.yaml"), include_dirs=[layout["shared"]]).flat.name is not None


def test_cli_include_dir(layout, capsys):
    spec = layout["specs"] / "outer.yaml"
    spec.write_text(outer("../shared/inner.yaml"))
    assert main(["validate", str(spec)]) == 2
    capsys.readouterr()
    assert main(["validate", str(spec), "--include-dir", str(layout["shared"].parent)]) == 0
    assert capsys.readouterr().out == f"{spec}: ok (1 nodes, 1 outputs)\n"


def test_a_neck_with_a_relative_include_unpickles_in_another_working_directory(layout, monkeypatch):
    spec = layout["specs"] / "outer.yaml"
    spec.write_text(outer("inner.yaml"))
    neck = pyramidgraph.compile(spec).eval()
    data = pickle.dumps(neck)
    monkeypatch.chdir(layout["shared"].parent.parent)
    again = pickle.loads(data).eval()
    x = [torch.randn(1, 8, 4, 4)]
    with torch.no_grad():
        assert torch.equal(neck(x)[0], again(x)[0])


# -- paths that are not regular files, and text that is not a path -------------------------------


@pytest.fixture
def odd_paths(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.yaml"
    os.symlink("/dev/zero", zero)
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    return {"fifo": fifo, "zero": zero, "folder": folder}


KINDS = {"fifo": "a FIFO (named pipe)", "zero": "a character device", "folder": "a directory"}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_spec_path_that_is_not_a_regular_file_is_refused_at_once(odd_paths, kind):
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(odd_paths[kind])
    assert str(caught.value) == f"{odd_paths[kind]}: <spec>: cannot read spec: it is {KINDS[kind]}, not a regular file"


def test_text_no_file_can_be_named_by_is_a_spec_or_a_short_error():
    json_spec = '{"pyramidgraph": 1, "example": {"in_channels": [8], "image": 32}, "inputs": {"C3": {"level": 3}}, "nodes": {"P3": {"from": ["C3"], "channels": 8}}, "outputs": ["P3"]}'
    assert pyramidgraph.validate(json_spec + " " * 5000).flat.name is not None  # longer than a file name can be
    long_name = "a" * 5000
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(long_name)
    shown = "a" * 60 + "... (5000 characters)"
    assert str(caught.value).startswith(f"{shown}: <spec>: no spec '{shown}': not a file and not a bundled spec")
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(long_name + ".yaml")
    shown = "a" * 60 + "... (5005 characters)"
    assert str(caught.value).startswith(f"{shown}: <spec>: no spec '{shown}': not a file and not a bundled spec")


# -- convert: configs, checkpoints and output folders a user or an attacker can hand it ------------


def _convert(capsys, *argv: str) -> tuple[int, list[str]]:
    code = main(["convert", "--from", "torchvision.FeaturePyramidNetwork", *argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, issue_lines(err)


@pytest.fixture
def tv_case(tmp_path: Path) -> dict:
    case = torch.load(Path(__file__).parent / "interop" / "fixtures" / "tv_fpn_p6p7_from_p5.pt", weights_only=False)
    (tmp_path / "cfg.json").write_text(json.dumps(case["config"]))
    return {"case": case, "config": str(tmp_path / "cfg.json"), "dir": tmp_path}


@pytest.mark.parametrize(
    "config, message",
    [
        ("{}", "the config has no 'in_channels_list', which torchvision.FeaturePyramidNetwork needs"),
        ("[1, 2]", "the config must be a mapping (a JSON object) of the reference's constructor arguments, not list"),
        ('{"in_channels_list": 5, "out_channels": 8}', "the config does not fit torchvision.FeaturePyramidNetwork: TypeError: 'int' object is not iterable"),
        ('{"in_channels_list": [8, 16], "out_channels": NaN}', "the config does not fit torchvision.FeaturePyramidNetwork: ValueError: cannot convert float NaN to integer"),
    ],
)
def test_convert_refuses_configs_of_the_wrong_shape_in_one_line(tmp_path, capsys, config, message):
    (tmp_path / "cfg.json").write_text(config)
    assert _convert(capsys, "--config", str(tmp_path / "cfg.json"), "--out", str(tmp_path / "out")) == (2, [f"torchvision.FeaturePyramidNetwork: config: {message}"])


def test_convert_refuses_config_and_weights_paths_that_are_not_regular_files(odd_paths, tv_case, capsys):
    code, lines = _convert(capsys, "--config", str(odd_paths["fifo"]), "--out", str(tv_case["dir"] / "out"))
    assert (code, lines) == (2, [f"{odd_paths['fifo']}: config: cannot read the config as JSON: a FIFO (named pipe), not a regular file"])
    code, lines = _convert(capsys, "--config", tv_case["config"], "--weights", str(odd_paths["zero"]), "--out", str(tv_case["dir"] / "out"))
    assert (code, lines) == (2, [f"{odd_paths['zero']}: checkpoint: cannot load the checkpoint: a character device, not a regular file"])


def test_convert_refuses_checkpoints_that_are_not_state_dicts(tv_case, capsys):
    state = dict(tv_case["case"]["state_dict"])
    first, second = list(state)[:2]
    bad = dict(state, **{first: "x"})
    bad[5] = torch.zeros(1)
    sparse = dict(state, **{second: state[second].to_sparse()})
    meta = dict(state, **{second: torch.empty(state[second].shape, device="meta")})
    cases = {
        "list": ([1, 2], ["a checkpoint is a state_dict (a mapping of parameter names to tensors), not list"]),
        "tensor": (torch.zeros(3), ["a checkpoint is a state_dict (a mapping of parameter names to tensors), not Tensor"]),
        "none": (None, ["a checkpoint is a state_dict (a mapping of parameter names to tensors), not NoneType"]),
        "bad": (bad, [f"'{first}' holds a str, not a tensor", "key 5 is a int, not a parameter name"]),
        "sparse": (sparse, [f"'{second}' is a torch.sparse_coo tensor; a neck's weights are dense"]),
        "meta": (meta, [f"'{second}' is a meta tensor: it has a shape but no values"]),
    }
    for name, (content, messages) in cases.items():
        path = tv_case["dir"] / f"{name}.pt"
        torch.save(content, path)
        code, lines = _convert(capsys, "--config", tv_case["config"], "--weights", str(path), "--out", str(tv_case["dir"] / "out"))
        assert (code, lines) == (2, [f"{path}: checkpoint: {m}" for m in messages]), name


def test_output_paths_that_cannot_be_written_are_one_line_errors(tv_case, capsys):
    a_file = tv_case["dir"] / "a_file"
    a_file.write_text("x")
    assert _convert(capsys, "--config", tv_case["config"], "--out", str(a_file)) == (2, [f"<command line>: --out: '{a_file}' is a file; --out names the folder for neck.yaml and neck.pt"])
    assert _convert(capsys, "--config", tv_case["config"], "--out", str(a_file / "sub")) == (2, [f"<command line>: --out: cannot write '{a_file / 'sub'}': Not a directory"])
    assert main(["render", "fpn", "-o", str(a_file / "fpn.svg")]) == 2
    assert issue_lines(capsys.readouterr().err) == [f"<command line>: -o: cannot write '{a_file / 'fpn.svg'}': Not a directory"]
    assert main(["new", "mine", "--out", str(a_file / "sub")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"cannot write {a_file / 'sub' / 'mine.yaml'}: Not a directory" in err


# -- names that would break the compiled module, and values that would break the checker --------


def _one_node(name: str) -> str:
    return f"pyramidgraph: 1\nexample: {{in_channels: [8], image: 32}}\ninputs: {{C3: {{level: 3}}}}\nnodes:\n  {name}: {{from: [C3], channels: 8, post: [conv3x3]}}\noutputs: [{name}]\n"


@pytest.mark.parametrize("name", ["forward", "training", "graph", "code", "state_dict", "info", "half", "_modules"])
def test_node_names_that_are_module_attributes_are_refused(name):
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(_one_node(name))
    assert [str(i) for i in caught.value.issues] == [
        f"<string>:5:3: nodes.{name}: '{name}' is an attribute of the compiled module (a torch.fx.GraphModule), where nodes keep their weights; choose another name, such as '{name}_'"
    ]


@pytest.mark.parametrize("name", ["def", "None", "class", "lambda"])
def test_node_names_that_are_python_keywords_are_refused(name):
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(_one_node(name))
    assert [str(i) for i in caught.value.issues] == [
        f"<string>:5:3: nodes.{name}: '{name}' is a Python keyword, and names become variables of the generated forward; choose another name, such as '{name}_'"
    ]


@pytest.mark.parametrize("name", ["Class", "Def", "match", "self", "torch", "features", "forward_"])
def test_names_near_the_reserved_ones_compile_and_run(name):
    neck = pyramidgraph.compile(_one_node(name))
    assert [tuple(o.shape) for o in neck(neck.example_inputs())] == [(1, 8, 4, 4)]
    assert list(neck.state_dict()) == [f"{name}.post0.weight", f"{name}.post0.bias"]


def test_output_names_may_be_module_attributes():
    neck = pyramidgraph.compile(_one_node("P3").replace("outputs: [P3]", "outputs: {forward: P3}"), return_type="dict")
    assert neck.output_names == ["forward"]
    assert list(neck(neck.example_inputs())) == ["forward"]


def test_the_reserved_attribute_list_covers_the_installed_torch():
    from pyramidgraph.module import PyramidNeck
    from pyramidgraph.reserved import MODULE_ATTRIBUTES

    neck = pyramidgraph.compile("fpn", [8, 8, 8, 8], channels=8)
    attributes = {n for n in dir(PyramidNeck) if not n.startswith("__")} | {n for n in vars(neck) if not n.startswith("__")}
    assert attributes - MODULE_ATTRIBUTES == set()


@pytest.mark.parametrize(
    "text, message",
    [
        ("pyramidgraph: 1\nx: " + "[" * 5000 + "]" * 5000 + "\n", "spec nests deeper than 64 levels"),
        ("pyramidgraph: 1\nx: &a [*a]\n", "an alias refers to a value that contains it; a spec is a tree of plain data"),
        ("pyramidgraph: 1\nx: &a {b: *a}\n", "an alias refers to a value that contains it; a spec is a tree of plain data"),
        (
            "pyramidgraph: 1\nexample: {in_channels: [8], image: 32}\ninputs: {C3: {level: 3}}\nnodes:\n  P$l: {foreach: {1: [3]}, from: [C3]}\noutputs: [P3]\n",
            "mapping key '1' is not a string; keys are names: quote it ('1') if it is meant as one",
        ),
        (
            "pyramidgraph: 1\nparams:\n  a0: 1\n"
            + "".join(f"  a{i + 1}: ${{[a{i}]}}\n" for i in range(2000))
            + "example: {in_channels: [8], image: 32}\ninputs: {C3: {level: 3}}\nnodes:\n  P3: {from: [C3]}\noutputs: [P3]\n",
            "the value nests lists deeper than 32 levels",
        ),
    ],
    ids=["deep-nesting", "alias-in-itself-list", "alias-in-itself-map", "integer-key", "chained-deep-lists"],
)
def test_structures_that_would_recurse_without_end_are_one_issue(text, message):
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(text)
    assert [i.message for i in caught.value.issues] == [message]


def test_a_dict_spec_with_a_non_string_key_is_refused():
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate({"pyramidgraph": 1, 1: 2})
    assert str(caught.value) == "<dict>: <spec>: mapping key 1 is not a string; keys are names"


# -- expressions: bounded work ------------------------------------------------------------------


def _params_spec(params: str) -> str:
    return f"pyramidgraph: 1\nparams:\n{params}example: {{in_channels: [8], image: 32}}\ninputs: {{C3: {{level: 3}}}}\nnodes:\n  P3: {{from: [C3]}}\noutputs: [P3]\n"


def test_chained_squaring_stops_at_the_integer_bound_in_milliseconds():
    import time

    pyramidgraph.validate(_params_spec("  a0: 2\n"))  # warm: schema and imports
    spec = _params_spec("  a0: 2\n" + "".join(f"  a{i + 1}: ${{a{i} * a{i}}}\n" for i in range(40)))
    start = time.perf_counter()
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(spec)
    assert time.perf_counter() - start < 2.0
    assert [str(i) for i in caught.value.issues] == ["<string>:11:7: params.a8: 'a7 * a7' gives an integer of 257 bits; the limit is 256"]


@pytest.mark.parametrize(
    "expression, message",
    [
        ("${1e308 * 10}", "'1e+308 * 10' gives inf, not a finite number"),
        ("${2 ** 64 * 2 ** 64 * 2 ** 64 * 2 ** 64}", "'2 ** 64 * 2 ** 64 * 2 ** 64 * 2 ** 64' gives an integer of 257 bits; the limit is 256"),
    ],
)
def test_arithmetic_results_are_finite_and_bounded(expression, message):
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(_params_spec(f"  a: '{expression}'\n"))
    assert [i.message for i in caught.value.issues] == [message]


def test_the_integer_bound_is_configurable(monkeypatch):
    from pyramidgraph import expr

    spec = _params_spec("  a: '${2 ** 40 * 2 ** 40}'\n")
    assert pyramidgraph.validate(spec).flat.params["a"] == 2**80
    monkeypatch.setattr(expr, "MAX_INT_BITS", 64)
    with pytest.raises(SpecError, match="gives an integer of 81 bits; the limit is 64"):
        pyramidgraph.validate(spec)


# -- moving modules around ------------------------------------------------------------------------


def _changed_neck() -> torch.nn.Module:
    """An fpn changed the ways training code changes modules: a frozen weight, SyncBatchNorm,
    a buffer on a submodule and one on the neck itself (one of them not persistent)."""
    torch.manual_seed(0)
    neck = pyramidgraph.compile("fpn", [8, 16, 32, 64], channels=8, norm="bn")
    neck.L2.post0.weight.requires_grad_(False)
    neck.register_buffer("extra", torch.arange(3.0))
    neck.P2.register_buffer("scratch", torch.ones(2), persistent=False)
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(neck)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_pickle_and_deepcopy_keep_dtype_requires_grad_replaced_modules_and_buffers(dtype, how):
    import copy

    neck = _changed_neck().to(dtype)
    again = pickle.loads(pickle.dumps(neck)) if how == "pickle" else copy.deepcopy(neck)
    assert isinstance(again, pyramidgraph.PyramidNeck) and again.info.name == "fpn"
    assert {p.dtype for p in again.parameters()} == {dtype}
    assert again.L2.post0.weight.requires_grad is False and again.P2.post0.weight.requires_grad is True
    assert type(again.P2.post1) is torch.nn.SyncBatchNorm
    assert torch.equal(again.extra, torch.arange(3.0).to(dtype)) and torch.equal(again.P2.scratch, torch.ones(2).to(dtype))
    assert "P2.scratch" not in again.state_dict() and "extra" in again.state_dict()
    mine, theirs = neck.state_dict(), again.state_dict()
    assert list(mine) == list(theirs)
    assert all(torch.equal(mine[k], theirs[k]) and mine[k].dtype == theirs[k].dtype for k in mine)


def test_state_dict_round_trips_exactly_and_outputs_match_after_pickling():
    neck = _changed_neck().eval()
    fresh = pyramidgraph.compile("fpn", [8, 16, 32, 64], channels=8, norm="bn")
    fresh.register_buffer("extra", torch.zeros(3))
    fresh.load_state_dict(neck.state_dict(), strict=True)
    again = pickle.loads(pickle.dumps(neck)).eval()
    x = neck.example_inputs(batch=2, image=64)
    with torch.no_grad():
        reference = neck(x)
        assert all(torch.equal(a, b) for a, b in zip(reference, again(x)))
        assert all(torch.equal(a, b) for a, b in zip(reference, fresh.eval()(x)))


# -- numerics that cannot silently go wrong ---------------------------------------------------------


def _with_post(post: str) -> str:
    return f"pyramidgraph: 1\nexample: {{in_channels: [8], image: 32}}\ninputs: {{C3: {{level: 3}}}}\nnodes:\n  P3: {{from: [C3], channels: 8, post: [{post}]}}\noutputs: [P3]\n"


@pytest.mark.parametrize(
    "post, message",
    [
        ("{bn: {eps: 1.0e-320}}", "post op 'bn': parameter 'eps' must be between 1e-30 and 1 (smaller underflows in float32 and a zero variance gives NaN), not 1e-320"),
        ("{gn: {groups: 2, eps: .nan}}", "post op 'gn': parameter 'eps' must be between 1e-30 and 1 (smaller underflows in float32 and a zero variance gives NaN), not nan"),
        ("{bn: {momentum: -0.1}}", "post op 'bn': parameter 'momentum' must be between 0 and 1, not -0.1"),
        ("{act: {fn: leaky_relu, slope: .inf}}", "post op 'act': parameter 'slope' must be between 0 and 1 (a leaky ReLU's negative slope), not inf"),
    ],
)
def test_eps_momentum_and_slopes_outside_their_ranges_are_refused(post, message):
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(_with_post(post))
    assert [(i.path, i.message) for i in caught.value.issues] == [("nodes.P3.post[0]", message)]


def test_fast_weighted_sum_with_all_weights_at_or_below_zero_gives_zeros_and_zero_gradients():
    """relu(w) is all zero, so the sum is 0 / (0 + eps) = 0 for every input: no NaN, and the
    weights get zero gradients (relu's), as in EfficientDet. Training can move them back only
    through other nodes; the spec's `fusion: softmax` has no such dead state."""
    spec = "pyramidgraph: 1\ninputs: {A: {level: 4, channels: 3}, B: {level: 5, channels: 3}}\nnodes:\n  N: {level: 4, from: [A, B], fuse: fast}\noutputs: [N]\n"
    neck = pyramidgraph.compile(spec)
    neck.load_state_dict({"N.fuse.weight": torch.tensor([0.0, -2.0])})
    xs = [torch.randn(1, 3, 4, 4, requires_grad=True), torch.randn(1, 3, 2, 2, requires_grad=True)]
    (out,) = neck(xs)
    assert torch.equal(out, torch.zeros(1, 3, 4, 4))
    out.sum().backward()
    assert torch.equal(neck.get_parameter("N.fuse.weight").grad, torch.zeros(2))
    assert all(torch.equal(x.grad, torch.zeros_like(x)) for x in xs)


# -- bounded work: what a spec can make the validator do is linear in its size ---------------------

TINY = "pyramidgraph: 1\nexample: {in_channels: [8], image: 32}\ninputs: {C3: {level: 3}}\n"


def _refused_within(spec, seconds: float, **kwargs) -> list[str]:
    """The issues of ``spec``, which must be refused within ``seconds`` (measured after a warm
    call, so imports and the schema's construction are not counted)."""
    import time

    with pytest.raises(SpecError):
        pyramidgraph.validate("pyramidgraph: 1\n")
    start = time.perf_counter()
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(spec, **kwargs)
    elapsed = time.perf_counter() - start
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    return [str(i) for i in caught.value.issues]


LIMIT = "spec expands to more than 100000 YAML values (aliases counted at every use)"
LONG = "a list of more than 1000 items; the limit is 1000 (pyramidgraph.loader.MAX_LIST_ITEMS)"


@pytest.mark.parametrize(
    "spec, where",
    [
        ("pyramidgraph: 1\nnodes: [" + ",".join(["1"] * 100_000) + "]\n", f"<string>:2:{9 + 2 * 1000}: nodes[1000]"),
        ("pyramidgraph: 1\nnodes:\n" + "- 1\n" * 100_000, f"<string>:{3 + 1000}:3: nodes[1000]"),
        ("pyramidgraph: 1\nnodes: [" + ",".join(["1"] * 100_000) + "\n", f"<string>:2:{9 + 2 * 1000}: nodes[1000]"),
    ],
    ids=["flow-list", "block-list", "unclosed-flow-list"],
)
def test_a_100000_item_list_is_refused_at_once_at_its_1001st_item(spec, where):
    assert _refused_within(spec, 0.2) == [f"{where}: {LONG}"]


def test_a_dict_spec_with_a_long_list_is_refused():
    assert _refused_within({"pyramidgraph": 1, "nodes": list(range(1001))}, 0.2) == ["<dict>: <spec>: a list of 1001 items; the limit is 1000 (pyramidgraph.loader.MAX_LIST_ITEMS)"]


def test_100000_values_in_lists_are_refused_in_under_a_second_at_the_value_over_the_limit():
    # the top mapping, `pyramidgraph`, 1, `lists` and its list are five values and each inner
    # list 501: after 199 of them, 99,704; the 200th list is the 99,705th and its item 295 the 100,001st
    spec = "pyramidgraph: 1\nlists:\n" + ("- [" + ",".join(["1"] * 500) + "]\n") * 300
    assert _refused_within(spec, 1.0) == [f"<string>:{3 + 199}:{4 + 2 * 295}: lists[199][295]: {LIMIT}"]


def test_200000_yaml_documents_are_refused_in_under_a_second_at_the_second():
    assert _refused_within("---\n" * 200_000, 1.0) == ["<string>:2:1: <spec>: spec holds more than one YAML document; a spec is one (the second starts here)"]


def test_a_large_malformed_spec_gets_libyamls_located_message_at_once():
    spec = "pyramidgraph: 1\nnodes:\n" + ("  - [" + ",".join(["1"] * 600) + "]\n") * 60 + "  - [1, 2\n"
    assert len(spec) > pyramidgraph.loader.PRECISE_ERROR_BYTES
    assert _refused_within(spec, 1.0) == ["<string>:64:1: <spec>: malformed YAML: did not find expected ',' or ']' (while parsing a flow sequence started at line 63, column 5)"]


def test_a_small_malformed_spec_gets_the_python_parsers_message():
    assert _refused_within("pyramidgraph: 1\nnodes: [1, 2\n", 1.0) == [
        "<string>:3:1: <spec>: malformed YAML: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence started at line 2, column 8)"
    ]


def test_template_matching_of_names_is_linear():
    # a broken key of twenty `${x}a` parts against a 41-letter near-miss: as a regular expression
    # (a.+a.+...) this backtracked for seconds
    key = "${x}a" * 20
    spec = TINY + f"nodes:\n  '{key}': {{foreach: {{x: '${{missing}}'}}, from: [C3]}}\n  P3: {{from: [C3, {'a' * 40}b]}}\noutputs: [P3]\n"
    issues = _refused_within(spec, 0.5)
    assert issues == [
        f"<string>:5:121: nodes.{key}.foreach.x: unknown name 'missing'; did you mean 'min'?",
        f"<string>:6:19: nodes.P3.from[1]: unknown input or node '{'a' * 40}b'",
    ]


@pytest.mark.parametrize(
    "key, name, matches",
    [
        ("P${l}_td", "P4_td", True),
        ("P${l}_td", "P_td", False),  # a `$` part stands for one character at least
        ("P$l", "P45", True),
        ("${a}${b}", "xy", True),
        ("${a}${b}", "x", False),
        ("a${x}a", "aa", False),
        ("a${x}a", "aba", True),
        ("x${a}y${b}z", "xAyBz", True),
        ("x${a}y${b}z", "xyBz", False),
        ("plain", "plain", True),
        ("plain", "plainer", False),
    ],
)
def test_name_templates_match_the_names_their_keys_can_make(key, name, matches):
    from pyramidgraph.expand import NameTemplate

    assert NameTemplate(key).fullmatch(name) is matches


def test_suggestions_for_thousands_of_unknown_names_stay_bounded(monkeypatch):
    from pyramidgraph import errors

    monkeypatch.setattr(errors, "MAX_ISSUES", 10_000)  # report them all, to see the budget alone
    n = 2000
    spec = TINY + "nodes:\n" + "".join(f"  node_{i}: {{from: [nodx_{i}], level: 3}}\n" for i in range(n)) + "outputs: [node_0]\n"
    issues = _refused_within(spec, 3.0)  # 68 s before the bound; 0.9 s with it on 2 loaded cores
    assert len(issues) == n
    # each suggestion compares with the 2,001 visible names: the budget pays for the first nine
    per_suggestion = n + 1
    suggested = errors.MAX_SUGGESTION_COMPARISONS // per_suggestion
    assert issues[0] == "<string>:5:19: nodes.node_0.from[0]: unknown input or node 'nodx_0'; did you mean 'node_0'?"
    assert sum("did you mean" in i for i in issues) == suggested == 9
    assert issues[-1] == f"<string>:{4 + n}:22: nodes.node_{n - 1}.from[0]: unknown input or node 'nodx_{n - 1}'"


def test_the_suggestion_budget_is_configurable_and_unbounded_outside_analysis(monkeypatch):
    from pyramidgraph import errors

    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(TINY + "nodes:\n  P3: {from: [C33]}\noutputs: [P3]\n")
    assert [i.message for i in caught.value.issues] == ["unknown input or node 'C33'; did you mean 'C3'?"]

    monkeypatch.setattr(errors, "MAX_SUGGESTION_COMPARISONS", 0)
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(TINY + "nodes:\n  P3: {from: [C33]}\noutputs: [P3]\n")
    assert [i.message for i in caught.value.issues] == ["unknown input or node 'C33'"]
    assert errors.did_you_mean("C33", ["C3"]) == "; did you mean 'C3'?"


def _include_chain(folder: Path, width: int, depth: int) -> Path:
    """s0.yaml includes s1.yaml ``width`` times, which includes s2.yaml ``width`` times, ...:
    width ** depth copies of the one node of the last."""
    (folder / f"s{depth}.yaml").write_text(TINY + "nodes:\n  P3: {from: [C3]}\noutputs: [P3]\n")
    for i in range(depth - 1, -1, -1):
        nodes = "".join(f"  n{j}: {{include: s{i + 1}.yaml, inputs: [C3]}}\n" for j in range(width))
        reads = ", ".join(f"n{j}.P3" for j in range(width))
        (folder / f"s{i}.yaml").write_text(TINY + f"nodes:\n{nodes}  P3: {{from: [{reads}]}}\noutputs: [P3]\n")
    return folder / "s0.yaml"


def test_including_one_file_many_times_reads_it_once(tmp_path, monkeypatch):
    from pyramidgraph import loader

    reads = []
    real = loader.read_regular_file
    monkeypatch.setattr(loader, "read_regular_file", lambda path, limit: reads.append(str(path)) or real(path, limit))
    analysis = pyramidgraph.validate(_include_chain(tmp_path, 2, 7))  # 2 ** 7 = 128 copies of s7's node
    assert len(analysis.flat.nodes) == sum(2**i for i in range(8))
    assert sorted(reads) == sorted(str(tmp_path / f"s{i}.yaml") for i in range(8))


def test_an_include_bomb_stops_at_the_node_limit(tmp_path):
    # 30 ** 3 = 27,000 nodes: refused when the 5,001st is made, without reading on (it took 142 s)
    issues = _refused_within(_include_chain(tmp_path, 30, 3), 6.0)
    assert issues == [f"{tmp_path / 's3.yaml'}:5:7: nodes.P3: spec expands to more than 5000 nodes; check repeat counts and foreach ranges"]


# -- widths that validate one by one but cannot be allocated together -------------------------------


@pytest.mark.parametrize(
    "spec, params",
    [(name, {}) for name in sorted(pyramidgraph.bundled_specs())]
    + [
        ("fpn", {"norm": "bn"}),
        ("fpn", {"norm": "gn"}),
        ("bfp", {"refine": "conv", "norm": "bn"}),
        ("bfp", {"refine": "non_local", "norm": "gn"}),
        ("bifpn", {"separable": False}),
        ("yolox_pafpn", {"use_depthwise": True}),
    ],
    ids=lambda value: value if isinstance(value, str) else "-".join(f"{k}={v}" for k, v in value.items()) or "defaults",
)
def test_the_weight_estimate_is_within_one_percent_of_the_compiled_necks_tensors(spec, params):
    from pyramidgraph.lower import estimated_parameters

    estimate = estimated_parameters(pyramidgraph.validate(spec, **params).ir.ops)
    neck = pyramidgraph.compile(spec, **params)
    real = sum(p.numel() for p in neck.parameters()) + sum(b.numel() for b in neck.buffers())
    assert abs(estimate - real) <= 0.01 * real


WIDE = TINY.replace("in_channels: [8]", "in_channels: [65536]") + "nodes:\n  P3: {from: [C3], channels: 65536, post: [conv3x3]}\noutputs: [P3]\n"


def test_weights_that_cannot_be_allocated_are_refused_at_validation_with_the_estimate(capsys, tmp_path):
    message = (
        "the neck's weights would take about 155 GB (38.7 G float32 parameters), more than the 8 GB allowed "
        "(pyramidgraph.lower.MAX_WEIGHT_BYTES); the largest op is 'P3' (conv3x3, 65536 -> 65536 channels: about 38.7 G parameters): lower the widths"
    )
    assert _refused_within(WIDE, 1.0) == [f"<string>:5:3: nodes.P3: {message}"]
    path = tmp_path / "wide.yaml"
    path.write_text(WIDE)
    assert main(["validate", str(path)]) == 2
    assert issue_lines(capsys.readouterr().err) == [f"{path}:5:3: nodes.P3: {message}"]


def test_the_weight_limit_is_configurable(monkeypatch):
    from pyramidgraph import lower

    spec = WIDE.replace("65536", "512")  # 2.4 M parameters, 9.4 MB
    assert pyramidgraph.validate(spec).ir is not None
    monkeypatch.setattr(lower, "MAX_WEIGHT_BYTES", 1_000_000)
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(spec)
    assert caught.value.issues[0].message.startswith("the neck's weights would take about 9.44 MB (2.36 M float32 parameters), more than the 1 MB allowed")


# -- found by the fuzz campaign (benchmarks/fuzz_campaign.py) ----------------------------------------


def test_an_include_name_longer_than_a_file_name_can_be_is_a_located_error(tmp_path, capsys):
    path = tmp_path / "spec.yaml"
    path.write_text(TINY + "nodes:\n  sub: {include: '" + "x" * 256 + "', inputs: [C3]}\noutputs: [sub.X3]\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert issue_lines(err) == [f"{path}:5:18: nodes.sub.include: cannot include '{'x' * 256}': no such file or bundled spec"]


def test_a_neck_that_returns_nothing_is_refused():
    assert _refused_within(TINY + "nodes:\n  P3: {from: [C3], channels: 8}\noutputs: []\n", 1.0) == [
        "<string>:6:10: outputs: the neck returns nothing: list at least one node in outputs"
    ]


@pytest.mark.parametrize("op", ["csp", "c2f"])
def test_bottleneck_counts_are_bounded(op):
    issues = _refused_within(TINY + f"nodes:\n  P3: {{from: [C3], channels: 8, post: [{{{op}: {{blocks: 5000}}}}]}}\noutputs: [P3]\n", 1.0)
    assert issues == [f"<string>:5:3: nodes.P3: {op}: blocks must be between 0 and 64, got 5000"]


def test_quoted_source_lines_are_cut_to_a_window_around_the_column(tmp_path, capsys):
    path = tmp_path / "long.yaml"
    path.write_text(TINY + "nodes:\n  P3: {from: [" + ", ".join(map(str, range(500))) + "], channels: 8}\noutputs: [P3]\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    quoted = [line for line in err.splitlines() if line.startswith("    5 | ")]
    assert len(quoted) == 100 and max(len(line) for line in quoted) <= len("    5 | ") + 120 + 6
    # item 99 at column 401: the window starts 40 characters before it
    assert quoted[99] == "    5 | ...89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 1..."
    assert len(err) < 60_000  # 100 issues of three short lines; the whole line each time was 32 MB for 2,000 items


def test_more_problems_than_the_limit_stop_checking_with_a_note():
    issues = _refused_within(TINY + "nodes:\n  P3: {from: [" + ", ".join(map(str, range(1000))) + "], channels: 8}\noutputs: [P3]\n", 2.0)
    assert len(issues) == 101
    assert issues[0] == "<string>: <spec>: more than 100 problems: the first 100 follow, and checking stopped there (pyramidgraph.errors.MAX_ISSUES)"
    assert issues[1] == "<string>:5:15: nodes.P3.from[0]: expected a string or an object, got 0"
    assert issues[100] == "<string>:5:401: nodes.P3.from[99]: expected a string or an object, got 99"


def test_expansion_stops_at_the_problem_limit_too():
    n = 300
    spec = TINY + "nodes:\n" + "".join(f"  node_{i}: {{from: [nodx_{i}], level: 3}}\n" for i in range(n)) + "outputs: [node_0]\n"
    issues = _refused_within(spec, 2.0)
    assert len(issues) == 101 and issues[0].endswith("(pyramidgraph.errors.MAX_ISSUES)")
    assert issues[1] == "<string>:5:19: nodes.node_0.from[0]: unknown input or node 'nodx_0'; did you mean 'node_0'?"
