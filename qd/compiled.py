"""``torch.compile`` of rollout blocks, bit-identical to eager where the eager path is the
reference.

Inductor fuses element-wise code into loops of its own, and there it computes transcendental
functions (``cos``, ``tanh``, ``exp``, ``sqrt``...) with its own vectorised routines, while
eager CPU kernels call other ones (e.g. MKL's vector math): the results differ in the last bit,
and over a 2,000-step episode a chaotic robot ends up somewhere else. With ``exact=True`` a
post-grad graph pass reroutes these functions to opaque ops, which inductor lowers to calls
of the eager ATen kernels (from the C++ wrapper: through the dispatcher, without Python), so
everything else is fused and the numbers are the eager ones (checked by the tests, env by
env); ``torch.linalg.vector_norm``, which inductor decomposes into a fused sum of squares, is
rerouted the same way before decomposition. ``exact=False`` lets inductor fuse them too:
faster, still deterministic and batch invariant, but not equal to eager.

On CUDA neither mode equals eager: Triton contracts multiply-adds and chooses its own reduction
order (measured on an H200: 29% of 2,000-step HardMaze episodes end bit-equal), so compiled CUDA
rollouts are close and deterministic, not exact.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

# Element-wise functions whose compiled form rounds differently from the eager CPU kernel
# (measured on torch 2.13: cos, sin, tan, exp, log, sqrt, atan2, atan, erf, pow, expm1, acos,
# asin, and tanh / sigmoid once fused with their input's arithmetic).
UNARY = (
    "acos",
    "asin",
    "atan",
    "cos",
    "cosh",
    "erf",
    "exp",
    "exp2",
    "expm1",
    "log",
    "log10",
    "log1p",
    "log2",
    "rsqrt",
    "sigmoid",
    "sin",
    "sinh",
    "sqrt",
    "tan",
    "tanh",
)
BINARY = ("atan2",)
LIBRARY = "qdtorch_eager"

_reroute: dict | None = None
_library = None


def _eager_ops() -> dict:
    """``{aten overload: opaque op calling it}``, defined once per process."""
    global _reroute, _library
    if _reroute is not None:
        return _reroute
    aten = torch.ops.aten
    lib = torch.library.Library(LIBRARY, "DEF")
    reroute = {}

    def define(name: str, schema: str, target) -> None:
        lib.define(f"{name}{schema}")
        lib.impl(name, lambda *args: target(*args), "CompositeExplicitAutograd")
        reroute[target] = getattr(getattr(torch.ops, LIBRARY), name).default

    for name in UNARY:
        define(name, "(Tensor x) -> Tensor", getattr(aten, name).default)
    for name in BINARY:
        define(name, "(Tensor x, Tensor y) -> Tensor", getattr(aten, name).default)
    define("pow_scalar", "(Tensor x, Scalar e) -> Tensor", aten.pow.Tensor_Scalar)
    define("pow_tensor", "(Tensor x, Tensor e) -> Tensor", aten.pow.Tensor_Tensor)
    # decomposed before the post-grad pass, so rerouted earlier (see _reroute_norms)
    lib.define("vector_norm(Tensor x, Scalar ord, int[]? dim, bool keepdim) -> Tensor")
    lib.impl(
        "vector_norm",
        lambda x, ord, dim, keepdim: torch.linalg.vector_norm(x, ord, dim, keepdim),
        "CompositeExplicitAutograd",
    )
    _library, _reroute = lib, reroute
    return reroute


def _reroute_norms(graph: torch.fx.Graph) -> None:
    """Pre-grad pass: ``torch.linalg.vector_norm`` -> the opaque op running the eager kernel
    (inductor would otherwise decompose it into a fused sum of squares and a square root)."""
    _eager_ops()
    target = getattr(torch.ops, LIBRARY).vector_norm.default
    for node in graph.nodes:
        if node.op == "call_function" and node.target is torch.linalg.vector_norm:
            names = ("x", "ord", "dim", "keepdim")
            values = dict(zip(names, node.args, strict=False))
            values.update({k: v for k, v in node.kwargs.items() if k in names})
            if "dtype" in node.kwargs and node.kwargs["dtype"] is not None:
                continue  # keep the compiled form; not used by the built-in envs
            dim = values.get("dim")
            node.target = target
            node.args = (
                values["x"],
                values.get("ord", 2),
                [dim] if isinstance(dim, int) else dim,
                values.get("keepdim", False),
            )
            node.kwargs = {}


def _lower_to_aten_fallbacks() -> None:
    """Lower each opaque op to a direct call of the ATen kernel it stands for.

    Inductor would otherwise call the opaque op itself, whose implementation is a Python
    function: from the C++ wrapper that is a round trip into Python per call. As an ATen
    fallback kernel the call stays in C++ (inductor's dispatcher shim), with the same kernel,
    hence the same numbers. Only this module's ops get a lowering; ``torch.compile`` of other
    code is unaffected.
    """
    from torch._inductor import lowering

    aten = torch.ops.aten
    ops = getattr(torch.ops, LIBRARY)
    targets = {opaque: target for target, opaque in _eager_ops().items()}
    targets[ops.vector_norm.default] = aten.linalg_vector_norm.default
    for opaque, target in targets.items():
        if opaque not in lowering.lowerings:
            handler = lowering.fallback_handler(target, add_to_fallback_set=False)
            lowering.register_lowering(opaque, type_promotion_kind=None)(handler)
    names = {str(target) for target in targets.values()}
    logging.getLogger("torch._inductor.ir").addFilter(_ShimNoticeFilter(names))


class _ShimNoticeFilter(logging.Filter):
    """Drops inductor's "missing a c-shim implementation" warning for the rerouted ATen ops
    (expected: the C++ wrapper then calls them through the dispatcher)."""

    def __init__(self, names: set[str]) -> None:
        super().__init__()
        self.names = names

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        shim = "c-shim" in str(record.msg)
        return not (shim and args and str(args[0]) in self.names)


def _pass_classes():
    """The two graph-pass classes (built on first use: importing inductor is slow)."""
    if "EagerMathPass" in globals():
        return globals()["EagerMathPass"], globals()["EagerNormPass"]
    from torch._inductor.custom_graph_pass import CustomGraphPass

    class EagerMathPass(CustomGraphPass):
        """Post-grad pass: transcendental ATen calls -> opaque ops running the eager kernels.

        ``uuid`` enters inductor's cache key, so cached code compiled without the pass is never
        reused for a graph compiled with it.
        """

        def __call__(self, graph: torch.fx.Graph) -> None:
            reroute = _eager_ops()
            for node in graph.nodes:
                if node.op == "call_function" and node.target in reroute:
                    node.target = reroute[node.target]

        def uuid(self) -> str:
            return f"qdtorch-eager-math-2:{','.join(UNARY + BINARY)}"

    class EagerNormPass(CustomGraphPass):
        """Pre-grad pass: :func:`_reroute_norms` (``uuid`` keys inductor's cache)."""

        def __call__(self, graph: torch.fx.Graph) -> None:
            _reroute_norms(graph)

        def uuid(self) -> str:
            return "qdtorch-eager-norm-2"

    _lower_to_aten_fallbacks()
    # Module-level names let inductor pickle the passes into its cache key (FX graph cache).
    for cls in (EagerMathPass, EagerNormPass):
        cls.__qualname__ = cls.__name__
        globals()[cls.__name__] = cls
    return EagerMathPass, EagerNormPass


def compile_function(
    fn: Callable,
    *,
    exact: bool = True,
    mode: str | None = None,
    dynamic: bool | None = True,
    cpp_wrapper: bool = False,
) -> Callable:
    """``torch.compile(fn)``; ``exact`` keeps transcendental functions on the eager kernels.

    Args:
        fn: the function to compile.
        exact: results bit-identical to eager (see the module docstring).
        mode: ``torch.compile`` mode (``default``; ``reduce-overhead`` adds CUDA graphs).
        dynamic: ``torch.compile``'s ``dynamic``: True makes every size symbolic; None
            (used by the rollout blocks) keeps sizes static unless marked dynamic.
        cpp_wrapper: inductor calls the compiled kernels from generated C++ instead of Python
            (less fixed cost per call; same kernels, same numbers).
    """
    options: dict = {"cpp_wrapper": True} if cpp_wrapper else {}
    if exact:
        _eager_ops()
        math_pass, norm_pass = _pass_classes()
        options["post_grad_custom_pre_pass"] = math_pass()
        options["pre_grad_custom_pass"] = norm_pass()
    kwargs = {"dynamic": dynamic, "options": options}
    if mode and mode != "default":
        # torch.compile takes either a mode or options: spell the mode's options out
        from torch._inductor import list_mode_options

        kwargs["options"] = {**list_mode_options(mode, dynamic), **options}
    return torch.compile(fn, **kwargs)
