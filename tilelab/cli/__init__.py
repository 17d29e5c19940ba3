"""The ``tilelab`` command line."""

from __future__ import annotations

import sys

import click

from tilelab import __version__


class _Main(click.Group):
    """The ``tilelab`` group: a user's mistake is one line on stderr (``Error: ...``), exit status 2;
    a simulation that stalls or times out, or a simulator that is missing or fails to build, is
    one line too (the unit and what it waits on, or the log to read), exit status 1.

    Click prints a usage error after the command's usage and a help hint; here every error is the
    one line that names the option, the value and the limit, the same for every command.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as error:
            click.echo(f"Error: {error.format_message()}", err=True)
            sys.exit(error.exit_code)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except RuntimeError as error:
            if not isinstance(error, _run_errors()):
                raise
            # a stalled or timed-out simulation, a missing simulator, a failed build: one line
            click.echo(f"Error: {type(error).__name__}: {error}", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _run_errors() -> tuple[type[Exception], ...]:
    """The errors of a run that are reported as one line (exit status 1), not a traceback."""
    from tilelab.sim.builders import BuildError
    from tilelab.sim.io import SimulationStalled, SimulationTimeout
    from tilelab.sim.toolchain import ToolchainError

    return SimulationStalled, SimulationTimeout, ToolchainError, BuildError


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tilelab")
def main():
    """tilelab: RTL-level, bit-exact simulation of CNN accelerator tiles, NoCs and networks."""


def _register():
    # Subcommands live beside this file, one module per area; each exposes ``command``.
    import importlib

    for name in ("verilog", "bench", "demo", "conv", "analyze", "halo", "noc", "run", "estimate", "export", "sweep"):
        module = importlib.import_module(f"tilelab.cli.{name}")
        main.add_command(module.command)
    from tilelab.cli.build import build_command, cache_command

    main.add_command(build_command)
    main.add_command(cache_command)


_register()
