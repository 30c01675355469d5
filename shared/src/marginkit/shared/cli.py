"""Turn a method's config dataclasses into a command line with subcommands.

Each method declares one dataclass of settings per mode with the paper's defaults, and a
handler that takes it. :func:`run_commands` builds ``prog <command> --field value ...``
with `tyro <https://brentyi.github.io/tyro/>`_; nothing here parses arguments by hand.

Examples
--------
>>> import dataclasses
>>> @dataclasses.dataclass
... class DemoConfig:
...     steps: int = 10
...     '''Number of optimizer steps.'''
>>> run_commands("toy", {"demo": (DemoConfig, lambda c: c.steps * 2)}, ["demo", "--steps", "3"])
6
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Command = tuple[type, Callable[[Any], Any]]


def parse_config(config_class: type, args: Sequence[str], prog: str) -> Any:
    """Fill ``config_class`` from ``args`` (flat ``--field value`` flags)."""
    import tyro

    return tyro.cli(config_class, args=list(args), prog=prog)


def _usage(prog: str, commands: Mapping[str, Command]) -> str:
    lines = [f"usage: {prog} <command> [--help] [options]", "", "commands:"]
    for name, (config_class, _) in commands.items():
        summary = (config_class.__doc__ or "").strip().splitlines()
        lines.append(f"  {name:<14}{summary[0] if summary else ''}")
    lines.append("")
    lines.append(f"`{prog} <command> --help` lists that command's settings and defaults.")
    return "\n".join(lines)


def run_commands(
    prog: str,
    commands: Mapping[str, Command],
    argv: Sequence[str] | None = None,
) -> Any:
    """Parse ``argv`` as ``<command> [flags]`` and call that command's handler.

    Parameters
    ----------
    prog:
        Program name shown in help, e.g. ``"marginkit-tcm"``.
    commands:
        ``{"train": (TrainConfig, train_handler), ...}``; a handler receives the filled
        config instance and its return value is returned.
    argv:
        Arguments without the program name; ``sys.argv[1:]`` when ``None``.

    A console script's ``main`` should call this and return ``None``: the script wrapper
    passes ``main()``'s value to ``sys.exit``, which turns any other object into status 1.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage(prog, commands))
        if not args:
            raise SystemExit(2)
        raise SystemExit(0)
    name, rest = args[0], args[1:]
    if name not in commands:
        print(_usage(prog, commands), file=sys.stderr)
        raise SystemExit(f"{prog}: unknown command {name!r}; choose one of {', '.join(commands)}")
    config_class, handler = commands[name]
    config = parse_config(config_class, rest, prog=f"{prog} {name}")
    return handler(config)
