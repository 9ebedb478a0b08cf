"""CLI conventions: one error line on stderr, exit codes, --version, -b, no secrets in argv."""

from __future__ import annotations

import argparse
import io
import socket

import pytest

from ragstream.cli import _env, build_parser, main


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _no_dev_stack(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No running dev stack and no credentials leak in from the developer's environment."""
    monkeypatch.setenv("RAGSTREAM_DATA_DIR", str(tmp_path))
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "RAGSTREAM_TOKEN", "RAGSTREAM_API_KEY"):
        monkeypatch.setenv(name, "recorded")  # so that whatever a test sets is undone after it
        monkeypatch.delenv(name)


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    """``ragstream --version`` prints the installed version and exits 0."""
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("ragstream ")


@pytest.mark.parametrize("command", [["search", "q", "--json"], ["delete", "doc"], ["breakers"]])
def test_an_unreachable_broker_is_one_line_on_stderr(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """No traceback: one line naming the command and how to start a broker, stdout clean."""
    code = main(["-b", f"127.0.0.1:{_closed_port()}", *command])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"ragstream {command[0]}: error: ")
    assert "ragstream dev" in lines[0] and "KAFKA_BOOTSTRAP_SERVERS" in lines[0]


def test_a_bad_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid environment variable exits 2 with its name, not a pydantic dump."""
    monkeypatch.setenv("KAFKA_PARTITIONS", "0")
    code = main(["search", "q"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (
        "ragstream search: error: bad setting: KAFKA_PARTITIONS: "
        "Input should be greater than or equal to 1"
    )


def test_bootstrap_server_option_sets_the_brokers(monkeypatch: pytest.MonkeyPatch) -> None:
    """``-b host:port`` is what the command's settings then read."""
    seen: list[str] = []

    def fake_search(args: argparse.Namespace) -> int:
        seen.append(_env.settings().kafka.bootstrap_servers)
        return 0

    monkeypatch.setattr("ragstream.cli.search.cmd_search", fake_search)
    assert main(["-b", "broker:9093", "search", "q"]) == 0
    assert seen == ["broker:9093"]


@pytest.mark.parametrize("flag", ["--token", "--api-key"])
def test_secrets_are_not_arguments(flag: str) -> None:
    """A credential on the command line (visible in ``ps``) is refused by the parser."""
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["search", "q", flag, "secret"])
    assert exit_.value.code == 2


def test_credentials_come_from_stdin_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--token-stdin`` reads one line; otherwise the environment; never both kinds."""
    args = build_parser().parse_args(["search", "q", "--token-stdin"])
    monkeypatch.setattr("sys.stdin", io.StringIO("tok-from-stdin\n"))
    assert _env.credentials(args) == _env.Credentials(token="tok-from-stdin")
    assert "tok-from-stdin" not in repr(_env.Credentials(token="tok-from-stdin"))
    plain = build_parser().parse_args(["search", "q"])
    monkeypatch.setenv("RAGSTREAM_API_KEY", "rsk_1_2")
    assert _env.credentials(plain) == _env.Credentials(api_key="rsk_1_2")
    monkeypatch.setenv("RAGSTREAM_TOKEN", "t")
    with pytest.raises(Exception, match="not both"):
        _env.credentials(plain)


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((name, sub))
                found += [(f"{name} {n}", p) for n, p in _subcommands(sub)]
    return found


def test_every_command_has_help_and_an_example() -> None:
    """Each command and subcommand documents itself with a description and an example."""
    commands = _subcommands(build_parser())
    assert len(commands) >= 12
    for name, parser in commands:
        assert parser.description, name
        assert parser.epilog and parser.epilog.startswith("example:"), name
