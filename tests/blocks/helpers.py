"""A torch.compile backend that records the aten ops traced (forward and backward) and runs them
as traced, so a test can say which ops a compiled block's graph holds."""

from collections.abc import Callable

from functorch.compile import make_boxed_func
from torch._functorch.aot_autograd import aot_module_simplified


def recording_backend(ops: set[str], keep: Callable = lambda node: True) -> Callable:
    """A backend adding to ``ops`` the short name (``sigmoid``, ``threshold_backward``) of every
    traced call for which ``keep(node)`` holds."""

    def compiler(graph, _):
        ops.update(str(node.target).split(".")[1] for node in graph.graph.nodes
                   if node.op == "call_function" and keep(node))
        return make_boxed_func(graph.forward)

    def backend(gm, example_inputs):
        return aot_module_simplified(gm, example_inputs, fw_compiler=compiler, bw_compiler=compiler)

    return backend
