"""``lm_eval --model zoo`` from lm-eval's own command line.

lm-eval 0.4.13 looks models up in its own registry only: the names in
``lm_eval.models.MODEL_MAPPING`` and whatever ``@register_model`` added in code that ran before the
command resolved ``--model`` (it reads no entry points and imports no plugins; its ``--include_path``
is for task YAMLs). So a model living outside lm-eval's source tree needs an import hook:

    python -m zoo.eval.plugin install     # writes zoo_lm_eval.pth into this environment's site-packages
    lm_eval --model zoo --model_args checkpoint=runs/gpt_clm/checkpoints/last.ckpt \\
        --tasks zoo_cloze --include_path "$(python -m zoo.eval.tasks path)"
    python -m zoo.eval.plugin uninstall   # removes it

Python runs a ``.pth`` file's ``import`` line at every interpreter start. This one calls
``install()``, which only adds a meta-path finder (standard library, nothing else imported): when
``lm_eval.api.registry`` is first imported, the finder runs the module as usual and then registers
``zoo`` as a lazy entry (``"zoo.eval.harness:ZooLM"``), so the zoo and torch load only when lm-eval
asks for that model. ``zoo eval`` needs none of this (it imports the model itself).
"""

from __future__ import annotations

import importlib.abc
import sys
import sysconfig
from pathlib import Path
from types import ModuleType
from typing import Any

REGISTRY = "lm_eval.api.registry"
NAME, TARGET = "zoo", "zoo.eval.harness:ZooLM"
PTH = "zoo_lm_eval.pth"
# One line (a .pth runs lines that start with "import"); a zoo uninstalled later costs nothing.
PTH_LINE = ('import sys; exec("try:\\n import zoo.eval.plugin as p\\n p.install()\\nexcept Exception:\\n pass")\n')


def register(registry: ModuleType) -> None:
    """Register ``zoo`` in lm-eval's model registry (lazily: nothing is imported yet)."""
    models = registry.model_registry
    if NAME not in models:
        models.register(NAME, target=TARGET)


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds ``lm_eval.api.registry`` with the other finders and registers ``zoo`` once it has run."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != REGISTRY:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                run = spec.loader.exec_module

                def exec_module(module: ModuleType, run: Any = run) -> None:
                    run(module)
                    register(module)

                spec.loader.exec_module = exec_module  # type: ignore[method-assign]
                return spec
        return None


def install() -> None:
    """Make ``zoo`` a model lm-eval knows, now if lm-eval's registry is loaded, else when it loads."""
    if REGISTRY in sys.modules:
        register(sys.modules[REGISTRY])
    elif not any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())


def pth_path(site_packages: str | Path | None = None) -> Path:
    return Path(site_packages or sysconfig.get_path("purelib")) / PTH


def main(argv: list[str] | None = None) -> int:
    """``python -m zoo.eval.plugin install | uninstall | status``."""
    argv = sys.argv[1:] if argv is None else argv
    path = pth_path()
    if argv == ["install"]:
        path.write_text(PTH_LINE, encoding="utf-8")
        print(f"wrote {path}: `lm_eval --model zoo` works in this environment")
    elif argv == ["uninstall"]:
        path.unlink(missing_ok=True)
        print(f"removed {path}")
    elif argv == ["status"]:
        print(f"{path}: {'installed' if path.is_file() else 'not installed'}")
    else:
        print("usage: python -m zoo.eval.plugin install | uninstall | status", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
