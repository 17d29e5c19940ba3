"""The ``tilelab`` command line."""

from __future__ import annotations

import click

from tilelab import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tilelab")
def main():
    """tilelab: RTL-level, bit-exact simulation of CNN accelerator tiles, NoCs and networks."""


def _register():
    # Subcommands live beside this file, one module per area; each exposes ``command``.
    import importlib

    for name in ("verilog", "bench", "demo", "conv", "analyze", "halo", "noc", "run", "estimate"):
        module = importlib.import_module(f"tilelab.cli.{name}")
        main.add_command(module.command)


_register()
