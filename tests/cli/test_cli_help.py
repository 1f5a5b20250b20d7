"""`--help` of the group and of every command: exit 0 and document every option."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import click
import pytest
from click.testing import Result
from zksolvency.cli.main import main


def _commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, group
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


COMMANDS = dict(_commands(main))


def test_every_command_is_covered() -> None:
    names = {" ".join(p) for p in COMMANDS}
    expected = {
        "",
        "prove",
        "verify-inclusion",
        "verify-bundle",
        "deploy",
        "publish",
        "export",
        "setup",
        "packages",
    }
    assert expected <= names, sorted(names)


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=lambda p: " ".join(p) or "zksolvency")
def test_help_mentions_every_option(cli: Callable[..., Result], path: tuple[str, ...]) -> None:
    command = COMMANDS[path]
    for flag in ("--help", "-h"):
        result = cli(*path, flag)
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("Usage: "), result.stdout
        for param in command.params:
            if isinstance(param, click.Option):
                for opt in param.opts:
                    assert opt in result.stdout, f"{' '.join(path)} --help lacks {opt}"
            else:
                assert param.human_readable_name.upper() in result.stdout
    if isinstance(command, click.Group):
        for name in command.commands:
            assert name in result.stdout


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=lambda p: " ".join(p) or "zksolvency")
def test_option_names_are_unique(path: tuple[str, ...]) -> None:
    """Two options sharing a flag make click silently drop one (prove once had two --assets)."""
    flags = [o for p in COMMANDS[path].params for o in (*p.opts, *p.secondary_opts)]
    assert len(flags) == len(set(flags)), sorted(flags)
    names = [p.name for p in COMMANDS[path].params]
    assert len(names) == len(set(names)), names


def test_version_and_unknown_command(cli: Callable[..., Result]) -> None:
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.startswith("zksolvency, version ")
    result = cli("no-such-command")
    assert result.exit_code == 2 and "No such command 'no-such-command'" in result.output
