#!/usr/bin/env python3
"""Run deepsky's notebooks headless, or strip their outputs (issue 8).

    python notebooks/run_notebook.py notebooks/02_anomaly.ipynb ...       # execute; exit 1 if a cell fails
    python notebooks/run_notebook.py --save out/nb notebooks/*.ipynb      # ... and keep the executed copies
    python notebooks/run_notebook.py --strip notebooks/*.ipynb            # clear outputs before committing
    python notebooks/run_notebook.py --check-stripped notebooks/*.ipynb   # exit 1 if any has outputs

The test suite (tests/notebooks.rs) runs every notebooks/*.ipynb through this script with the venv's
Python. Each notebook gets a fresh kernel of *this* Python (ipykernel), whatever kernels the user
has installed, with the notebook's folder as working directory and this process's environment:
DEEPSKY_BIN (the binary to run) and DEEPSKY_NB_OUT (where the notebook writes) pass through.
When a cell fails, the cell and its error are printed on stderr and the exit code is 1.
"""

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
KERNEL = "deepsky-python3"


def strip(nb):
    """Clear outputs and execution counts (and per-cell execution metadata); True if it changed."""
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code":
            if cell.get("outputs") or cell.get("execution_count") is not None:
                changed = True
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "collapsed", "scrolled"):
            if key in cell.metadata:
                del cell.metadata[key]
                changed = True
    return changed


def is_stripped(nb):
    return all(
        cell.cell_type != "code" or (not cell.get("outputs") and cell.get("execution_count") is None)
        for cell in nb.cells
    )


def private_kernel(tmp):
    """A kernelspec for this interpreter under a name no user kernel has, found through JUPYTER_PATH."""
    spec = Path(tmp) / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (deepsky notebooks)",
                "language": "python",
            }
        )
    )
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        p for p in [str(spec.parent.parent), os.environ.get("JUPYTER_PATH", "")] if p
    )
    # Connection files and IPython's profile in the temporary folder: no writes to $HOME, and no
    # user startup scripts changing what the notebooks do.
    os.environ["JUPYTER_RUNTIME_DIR"] = str(Path(tmp) / "runtime")
    os.environ["IPYTHONDIR"] = str(Path(tmp) / "ipython")
    os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")


def execute(path, timeout, save):
    """Run one notebook; returns an error text, or None on success."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        startup_timeout=120,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    error = None
    try:
        client.execute()
    except CellExecutionError as e:
        error = ANSI.sub("", str(e))
    except CellTimeoutError as e:
        error = f"a cell ran longer than {timeout} s: {ANSI.sub('', str(e))}"
    except DeadKernelError as e:
        error = f"the kernel died: {e}"
    except Exception as e:  # e.g. the kernel did not start
        error = f"{type(e).__name__}: {e}"
    if save:
        save.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, save / path.name)
    return error


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="+", type=Path)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--strip", action="store_true", help="clear outputs in place")
    mode.add_argument("--check-stripped", action="store_true", help="fail if a notebook has outputs")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    ap.add_argument("--save", type=Path, help="write the executed notebooks (with outputs) here")
    args = ap.parse_args()

    if args.strip or args.check_stripped:
        bad = []
        for path in args.notebooks:
            nb = nbformat.read(path, as_version=4)
            if args.strip:
                if strip(nb):
                    nbformat.write(nb, path)
                    print(f"stripped {path}")
            elif not is_stripped(nb):
                bad.append(str(path))
        if bad:
            print("outputs not stripped (run notebooks/run_notebook.py --strip): " + ", ".join(bad), file=sys.stderr)
            return 1
        return 0

    failed = 0
    with tempfile.TemporaryDirectory(prefix="deepsky-nb-") as tmp:
        private_kernel(tmp)
        for path in args.notebooks:
            t0 = time.perf_counter()
            error = execute(path, args.timeout, args.save)
            took = time.perf_counter() - t0
            if error is None:
                print(f"{path}: ok in {took:.1f} s", flush=True)
            else:
                failed += 1
                print(f"{path}: FAILED after {took:.1f} s", flush=True)
                print(f"{path}: a cell failed:\n{error}", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
