"""Command-line options shared by several commands."""

from __future__ import annotations

from dataclasses import fields

import click

__all__ = ["TILE_HELP", "tile_config"]

#: Help text of every command's ``--tile`` option.
TILE_HELP = "tile fields NAME=VALUE,... (e.g. rows=8,cols=8,ext_bytes=16); see tilelab.pe_models.config.TileConfig"

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def tile_config(config, text):
    """``config`` with the fields that ``--tile NAME=VALUE,...`` text sets.

    Every name must be a field of the configuration and every value of its kind (integers in any
    base Python reads, booleans as true/false, 1/0, yes/no, on/off); the result is checked like any
    new configuration. Anything else is a :class:`click.BadParameter` naming the item.
    """
    known = {f.name: f.type for f in fields(config)}
    changes = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in known:
            raise click.BadParameter(f"{item!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(known))}",
                                     param_hint="--tile")
        if key in changes:
            raise click.BadParameter(f"{key} is given twice", param_hint="--tile")
        if key == "mem_impl":
            changes[key] = value
        elif key == "depthwise":
            if value.lower() not in _TRUE + _FALSE:
                raise click.BadParameter(f"depthwise must be true or false, not {value!r}", param_hint="--tile")
            changes[key] = value.lower() in _TRUE
        else:
            try:
                changes[key] = int(value, 0)
            except ValueError:
                raise click.BadParameter(f"{key} must be an integer, not {value!r}", param_hint="--tile") from None
    try:
        return config.replace(**changes)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--tile") from None
