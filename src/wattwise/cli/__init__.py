"""The ``wattwise`` command line: one Typer app; each module here registers its commands.

A module in this package that defines ``register(app)`` adds its commands; discovery keeps
this file free of a list that every feature would have to edit.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil

import typer

app = typer.Typer(
    name="wattwise",
    help="wattwise keeps a data center's power chain and its workloads healthy together.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(app)


_register_all()


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app()
