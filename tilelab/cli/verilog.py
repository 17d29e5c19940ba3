"""``tilelab verilog BLOCK [options] -o FILE``: write the Verilog of a building block."""

from __future__ import annotations

import click

from tilelab.hdl.registry import BLOCKS, BlockEntry


def _command_for(entry: BlockEntry) -> click.Command:
    def run(output, top, **kwargs):
        from tilelab.cli.options import check_inputs_outputs
        from tilelab.sim.verilog import to_verilog

        check_inputs_outputs({}, {"-o": None if output == "-" else output})
        try:
            component = entry.build(**kwargs)
        except (ValueError, TypeError) as exc:
            raise click.UsageError(str(exc)) from None
        try:
            design = to_verilog(component, name=top)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--top'") from None
        if output == "-":
            click.echo(design.verilog, nl=False)
        else:
            with open(output, "w") as f:
                f.write(design.verilog)
            click.echo(f"wrote {output}: module {top}, {len(design.ports)} ports, "
                       f"{design.verilog.count(chr(10))} lines", err=True)

    params = [
        click.Option(["-o", "--output"], default="-", show_default=True, help="output file ('-' for stdout)"),
        click.Option(["--top"], default=entry.name.replace("-", "_"), show_default=True, help="top module name"),
    ]
    for p in entry.params:
        flag = "--" + p.name.rstrip("_").replace("_", "-")
        if p.type is bool:
            params.append(click.Option([f"{flag}/--no-{flag[2:]}", p.name], default=p.default, show_default=True,
                                       help=p.help))
        else:
            params.append(click.Option([flag, p.name], type=p.type, default=p.default, show_default=True,
                                       help=p.help))
    return click.Command(entry.name, callback=run, params=params, help=entry.help)


@click.group("verilog")
def command():
    """Write the Verilog of a building block (one subcommand per block)."""


for _entry in BLOCKS.values():
    command.add_command(_command_for(_entry))
