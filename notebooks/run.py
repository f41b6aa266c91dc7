"""Execute the experiment notebooks and save them with their outputs (what is committed).

    python notebooks/run.py                      # every notebook, full size (minutes each on a 2-core CPU)
    python notebooks/run.py 04 07                # the notebooks whose names start with 04 and 07
    python notebooks/run.py --scale quick        # the size the tests run; outputs are still written

Each notebook runs in a fresh kernel in a scratch working directory, with ``ZOO_NOTEBOOK_SCALE`` set
and nothing downloaded (``HF_*_OFFLINE``). Its ``RESULTS`` line is printed as it finishes. Needs the
``dev`` extra (nbclient, nbformat, ipykernel).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent


def execute(path: Path, scale: str, timeout: int, save: bool = True) -> object:
    """Run ``path`` top to bottom at ``scale``; write it back with outputs when ``save``. Returns the notebook."""
    import nbformat
    from nbclient import NotebookClient

    os.environ.update(ZOO_NOTEBOOK_SCALE=scale, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="zoo-notebook-") as workdir:
        client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=False,
                                resources={"metadata": {"path": workdir}})
        client.execute()
    if save:
        nbformat.write(notebook, path)
    return notebook


def results_line(notebook: object) -> str:
    for cell in reversed(notebook.cells):
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith("RESULTS "):
                    return line
    return "(no RESULTS line)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebook name prefixes (default: all)")
    parser.add_argument("--scale", choices=["quick", "full"], default="full")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.names:
        paths = [p for p in paths if any(p.name.startswith(n) for n in args.names)]
        if not paths:
            parser.error(f"no notebook starts with {args.names}")
    for path in paths:
        start = time.perf_counter()
        notebook = execute(path, args.scale, args.timeout)
        print(f"{path.name}: {time.perf_counter() - start:.0f} s  {results_line(notebook)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
