"""``wattwise bench [--quick] [--out DIR]``: the scenario benchmark (wattwise vs baselines on the twin).

The benchmark lives in the repository's ``bench/benchmark.py`` (it is a measurement script, not
part of the installed package); this command finds it next to the source tree and runs it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def benchmark_script() -> Path | None:
    """``bench/benchmark.py`` of the checkout this package runs from (None when installed elsewhere)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "bench" / "benchmark.py"
        if candidate.is_file():
            return candidate
    return None


def bench(
    quick: Annotated[bool, typer.Option("--quick", help="Reduced suite (CI): 400 servers, 4 scenarios")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Report folder (default: bench/reports)")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Parallel runs (processes)")] = 3,
) -> None:
    """Run the scenario benchmark and write the report (markdown, JSON, PNG plots)."""
    script = benchmark_script()
    if script is None:
        console.print("[red]bench/benchmark.py not found: run from a wattwise source checkout[/red]")
        raise typer.Exit(2)
    spec = importlib.util.spec_from_file_location("wattwise_benchmark", script)
    if spec is None or spec.loader is None:
        console.print(f"[red]cannot load {script}[/red]")
        raise typer.Exit(2)
    module = importlib.util.module_from_spec(spec)
    sys.modules["wattwise_benchmark"] = module
    spec.loader.exec_module(module)
    argv = ["--workers", str(workers)] + (["--quick"] if quick else []) + (["--out", str(out)] if out else [])
    code = int(module.main(argv))
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command."""
    app.command("bench")(bench)
