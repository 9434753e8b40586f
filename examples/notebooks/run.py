"""Execute the example notebooks and write the executed copies (for the documentation site and CI).

    python examples/notebooks/run.py --out docs/notebooks              # every notebook, quick mode
    python examples/notebooks/run.py --out /tmp/nb 03_evaluation       # one, by name (or file, or path)
    python examples/notebooks/run.py --out /tmp/nb --full              # the durations the notebooks state
    python examples/notebooks/run.py --clean                           # store them without outputs (after editing)

Each notebook runs in a fresh ``python3`` kernel of this interpreter (``sys.executable``, whatever
kernel spec is installed), with the notebook's own folder as working directory, a time limit per
cell, and ``CAMLOC_NOTEBOOK_QUICK=1`` in its environment unless ``--full`` (the notebooks read it to
shrink their work so that all of them run in a few minutes on a CPU). Quick mode also runs torch on
one thread (``OMP_NUM_THREADS=1``, unless set or ``--threads N``): on a shared CPU that is several
times faster for the notebooks' small batches. The executed copy goes to
``OUT/NAME.ipynb``, written atomically; one line per notebook gives its wall time.

A failing notebook does not stop the others. Each failure is one line naming the notebook, the cell
and the error; the full traceback goes to ``OUT/NAME.error.txt``, no executed copy is written (a
stale one from an earlier run is removed) and the exit status is 1. Usage errors (a name that is not
a notebook) exit with 2.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
#: The environment variable the notebooks read; "1" makes each run in well under a minute.
QUICK_ENV = "CAMLOC_NOTEBOOK_QUICK"
#: Seconds one cell may run before the notebook counts as failed.
CELL_TIMEOUT = 600

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class Outcome:
    """How one notebook went: its wall time and, on failure, one line saying where and why."""

    name: str
    seconds: float
    error: Optional[str] = None


def notebooks(names: list[str]) -> list[Path]:
    """The notebooks to run: every ``*.ipynb`` beside this script, or those named (a stem such as
    ``01_quickstart``, a file name, a path, or a unique prefix such as ``01``).

    Raises:
        SystemExit: (status 2) a name that matches no notebook, or several.
    """
    found = sorted(HERE.glob("*.ipynb"))
    if not names:
        return found
    chosen = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            chosen.append(path.resolve())
            continue
        stem = path.name[:-6] if path.name.endswith(".ipynb") else path.name
        hits = [p for p in found if p.stem == stem] or [p for p in found if p.stem.startswith(stem)]
        if len(hits) != 1:
            known = ", ".join(p.stem for p in found) or "none"
            what = "matches no notebook" if not hits else f"matches {len(hits)} notebooks"
            raise SystemExit(_usage(f"{name!r} {what}; give a file or one of: {known}"))
        chosen.append(hits[0])
    return chosen


def _usage(message: str) -> int:
    print(f"run.py: error: {message}", file=sys.stderr)
    return 2


def _kernel_manager():
    """A kernel manager whose ``python3`` kernel is this interpreter, whatever kernel specs say."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    class ThisPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                              display_name="Python 3 (ipykernel)", language="python", resource_dir=str(HERE))

    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())


def _one_line(text: str) -> str:
    text = " ".join(_ANSI.sub("", text).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _text(nb) -> str:
    """A notebook as nbformat writes it to a file (ending in a newline)."""
    import nbformat

    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def run_notebook(path: Path, out: Path, timeout: int) -> Outcome:
    """Execute ``path`` in a fresh kernel; write ``out/NAME.ipynb`` or, on failure, ``out/NAME.error.txt``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    from camloc.utils.atomic import atomic_write_text

    name = path.name
    executed, error_file = out / name, out / f"{path.stem}.error.txt"
    where = {"index": None}
    nb = None
    t0 = time.perf_counter()
    # the kernel process's own stderr (start-up warnings, a crash's last words) goes to the error file only
    kernel_log = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
    try:
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", km=_kernel_manager(),
                                resources={"metadata": {"path": str(path.parent)}})
        client.on_cell_execute = lambda cell, cell_index: where.update(index=cell_index)
        client.execute(stderr=kernel_log)
    except Exception as exc:  # any failure of this notebook is reported; the next one still runs
        seconds = time.perf_counter() - t0
        cell = ""
        if where["index"] is not None and nb is not None:
            i = where["index"]
            code = sum(c.cell_type == "code" for c in nb.cells[: i + 1])
            cell = f"cell {i + 1} of {len(nb.cells)} (code cell {code}): "
        if isinstance(exc, CellExecutionError):
            why = f"{exc.ename}: {exc.evalue}" if exc.ename else str(exc)
        elif isinstance(exc, CellTimeoutError):
            why = f"timed out after {timeout} s (--timeout)"
        elif isinstance(exc, DeadKernelError):
            why = f"the kernel died ({exc})"
        else:
            why = f"{type(exc).__name__}: {exc}"
        kernel_log.seek(0)
        stderr = kernel_log.read().strip()
        kernel_log.close()
        atomic_write_text(error_file, f"{name}: {cell}{_ANSI.sub('', why)}\n\n{_ANSI.sub('', str(exc))}\n"
                          + (f"\nthe kernel's stderr:\n{stderr}\n" if stderr else ""))
        executed.unlink(missing_ok=True)  # no stale copy of an earlier, passing run
        return Outcome(name, seconds, _one_line(f"{cell}{why}") + f" (full traceback: {error_file})")
    seconds = time.perf_counter() - t0
    kernel_log.close()
    atomic_write_text(executed, _text(nb))
    error_file.unlink(missing_ok=True)
    return Outcome(name, seconds)


#: The only notebook-level metadata a stored notebook keeps.
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def clean(path: Path) -> bool:
    """Rewrite a stored notebook without outputs, execution counts or editor metadata (cell tags
    are kept, e.g. ``parameters``); True if anything changed. Written atomically."""
    import nbformat

    from camloc.utils.atomic import atomic_write_text

    before = path.read_text(encoding="utf-8")
    nb = nbformat.reads(before, as_version=4)
    nb.metadata = nbformat.NotebookNode({"kernelspec": dict(KERNELSPEC)})
    for cell in nb.cells:
        tags = cell.metadata.get("tags")
        cell.metadata = nbformat.NotebookNode({"tags": tags} if tags else {})
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        if "attachments" in cell and not cell["attachments"]:
            del cell["attachments"]
    after = _text(nb)
    if after != before:
        atomic_write_text(path, after)
    return after != before


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", metavar="NAME", help="notebooks to run (default: all in examples/notebooks)")
    p.add_argument("--out", help="folder for the executed copies (created)")
    p.add_argument("--clean", action="store_true",
                   help="execute nothing: store the notebooks without outputs, execution counts or editor metadata")
    p.add_argument("--full", action="store_true", help=f"run at full length (do not set {QUICK_ENV}=1)")
    p.add_argument("--timeout", type=int, default=CELL_TIMEOUT, help="seconds one cell may run (default %(default)s)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for torch in the kernels (OMP_NUM_THREADS); default 1 in quick mode, unless "
                        "OMP_NUM_THREADS is set, and torch's own choice with --full; 0: torch's own choice")
    args = p.parse_args(argv)
    paths = notebooks(args.names)
    if not paths:
        return _usage(f"no notebooks in {HERE}")
    try:
        import ipykernel  # noqa: F401
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError as exc:
        return _usage(f"{exc.name} is not installed: pip install -e \".[docs]\" (it brings nbclient and ipykernel)")
    if args.clean:
        for path in paths:
            print(f"{'cleaned' if clean(path) else 'clean  '} {path.name}")
        return 0
    if args.out is None:
        return _usage("--out DIR is required (where the executed copies go), unless --clean")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _usage(f"cannot create --out {out}: {exc.strerror or exc}")
    if args.full:
        os.environ.pop(QUICK_ENV, None)
    else:
        os.environ[QUICK_ENV] = "1"
    # figures inline, whatever MPLBACKEND the caller has (Agg in CI would keep them out of the copies)
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    threads = args.threads
    if threads is None and not args.full and "OMP_NUM_THREADS" not in os.environ:
        # the notebooks' work is small batches, and torch's OpenMP threads wait on each other whenever
        # another process holds a core: on a shared 2-core machine under load, one thread ran all five
        # notebooks in 71 s against 308 s with torch's default of two
        threads = 1
    if threads:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    elif threads == 0:
        os.environ.pop("OMP_NUM_THREADS", None)
        os.environ.pop("MKL_NUM_THREADS", None)
    mode = "full" if args.full else f"quick ({QUICK_ENV}=1)"
    if os.environ.get("OMP_NUM_THREADS"):
        mode += f", {os.environ['OMP_NUM_THREADS']} torch thread(s)"
    print(f"running {len(paths)} notebook(s), {mode}, into {out}", flush=True)
    outcomes, t0 = [], time.perf_counter()
    for path in paths:
        outcome = run_notebook(path, out, args.timeout)
        outcomes.append(outcome)
        status = "ok    " if outcome.error is None else "FAILED"
        print(f"{status} {outcome.name:<28} {outcome.seconds:6.1f} s" + (f"  {outcome.error}" if outcome.error else ""),
              flush=True)
    failed = [o for o in outcomes if o.error is not None]
    total = time.perf_counter() - t0
    print(f"{len(outcomes) - len(failed)} of {len(outcomes)} notebook(s) ran in {total:.1f} s"
          + (f"; failed: {', '.join(o.name for o in failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
