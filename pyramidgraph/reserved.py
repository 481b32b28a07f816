"""Names a spec cannot give a node, block or input, and why.

A node's name becomes an attribute of the compiled ``torch.fx.GraphModule`` (its modules live
at ``neck.<name>``) and, lower-cased, a variable in the generated ``forward``. So a node called
``forward``, ``training`` or ``graph`` would overwrite the module's own attribute, and one
called ``def`` or ``None`` would make the generated code invalid Python. The validator refuses
them with this reason, before anything is built. The attribute list is written out (validation
does not import torch); ``tests/test_hardening.py`` checks it against the installed torch.
"""

from __future__ import annotations

import keyword

__all__ = ["MODULE_ATTRIBUTES", "reserved_reason"]

MODULE_ATTRIBUTES = frozenset(
    {
        "T_destination", "_apply", "_backward_hooks", "_backward_pre_hooks", "_boxed_call",
        "_buffers", "_call_impl", "_code", "_compiled_call_impl", "_create_node_hooks",
        "_deepcopy_hooks", "_deepcopy_init", "_erase_node_hooks", "_forward_hooks",
        "_forward_hooks_always_called", "_forward_hooks_with_kwargs", "_forward_pre_hooks",
        "_forward_pre_hooks_with_kwargs", "_get_backward_hooks", "_get_backward_pre_hooks",
        "_get_name", "_graph", "_is_full_backward_hook", "_lineno_map", "_load_from_state_dict",
        "_load_state_dict_post_hooks", "_load_state_dict_pre_hooks",
        "_maybe_warn_non_full_backward_hook", "_modules", "_named_members",
        "_non_persistent_buffers_set", "_parameters", "_prologue_start", "_recompile_submodules",
        "_register_create_node_hook", "_register_deepcopy_hook", "_register_erase_node_hook",
        "_register_load_state_dict_pre_hook", "_register_replace_node_hook",
        "_register_state_dict_hook", "_replace_hooks", "_replicate_for_data_parallel",
        "_save_to_state_dict", "_set_replace_hook", "_slow_forward", "_state_dict_hooks",
        "_state_dict_pre_hooks", "_tracer_cls", "_tracer_extras", "_unregister_create_node_hook",
        "_unregister_deepcopy_hook", "_unregister_erase_node_hook", "_unregister_replace_node_hook",
        "_version", "_wrapped_call_impl", "add_module", "add_submodule", "apply", "bfloat16",
        "buffers", "call_super_init", "children", "code", "compile", "cpu", "cuda",
        "default_image", "delete_all_unused_submodules", "delete_submodule", "double", "dump_patches", "eval",
        "example_inputs", "extra_repr", "float", "forward", "get_buffer", "get_extra_state",
        "get_parameter", "get_submodule", "graph", "half", "in_channels", "inference_code", "info", "input_names",
        "ipu", "load_state_dict", "meta", "modules", "mtia", "named_buffers", "named_children",
        "named_modules", "named_parameters", "out_channels", "output_names", "output_shapes",
        "parameters", "print_readable", "recompile", "register_backward_hook", "register_buffer",
        "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
        "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
        "register_load_state_dict_pre_hook", "register_module", "register_parameter",
        "refresh", "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_",
        "set_extra_state", "set_submodule", "shape_env", "share_memory", "state_dict", "strides",
        "to", "to_empty", "to_folder", "train", "training", "type", "xpu", "zero_grad",
    }
)
"""Attributes of a compiled neck (``PyramidNeck``, a ``GraphModule``, an ``nn.Module``) and of
its instances, dunder names aside."""


DERIVED_PREFIX = "derived_"
"""The buffers of an inference program's folded weights (``derived_p4_bn_folded_weight``)."""


def reserved_reason(name: str) -> str | None:
    """Why ``name`` cannot name a node, block or input, or None when it can."""
    if keyword.iskeyword(name):
        return f"'{name}' is a Python keyword, and names become variables of the generated forward; choose another name, such as '{name}_'"
    if name == "external":
        return "'external' holds the modules a spec calls (apply: {call: ...}); choose another name, such as 'external_'"
    if name.startswith(DERIVED_PREFIX):
        return f"'{name}' starts with '{DERIVED_PREFIX}', the names of the weights an optimised neck derives from its parameters; choose another name, such as '{name[len(DERIVED_PREFIX):] or 'derived'}_'"
    if name in MODULE_ATTRIBUTES or name.startswith("__"):
        return f"'{name}' is an attribute of the compiled module (a torch.fx.GraphModule), where nodes keep their weights; choose another name, such as '{name}_'"
    return None
