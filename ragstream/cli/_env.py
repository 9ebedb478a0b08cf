"""What every ``ragstream`` command shares: settings, credentials, logging, clean failures.

Settings come from the environment; when ``KAFKA_BOOTSTRAP_SERVERS`` is not set, a running
``ragstream dev`` stack is found through ``{data dir}/dev-stack.json``. Credentials come from
the environment or stdin, never from arguments (``ps`` shows those). ``run`` turns an
unreachable broker or a bad setting into one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import KafkaError
from pydantic import ValidationError

from ragstream.devrun import STATE_FILE
from streams.errors import ConfigError, DependencyError, RagstreamError
from streams.settings import Settings, default_data_dir
from streams.settings_errors import describe_settings_error

__all__ = [
    "Credentials",
    "add_command",
    "add_credentials",
    "add_tenant",
    "configure_logging",
    "credentials",
    "discover_dev_stack",
    "example",
    "fail",
    "run",
    "settings",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_HINT = "is a broker running? 'ragstream dev' starts one; or set KAFKA_BOOTSTRAP_SERVERS / -b"


def discover_dev_stack() -> None:
    """Point the environment at a running dev stack unless it is configured already."""
    state = default_data_dir() / STATE_FILE
    if "KAFKA_BOOTSTRAP_SERVERS" in os.environ or not state.exists():
        return
    try:
        data = json.loads(state.read_text())
        env, pid = data["env"], int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if not _alive(pid):  # `ragstream dev` was killed (SIGKILL, a crash): its ports are dead
        print(f"ignoring {state}: the dev stack (pid {pid}) is not running", file=sys.stderr)
        state.unlink(missing_ok=True)
        return
    for name, value in env.items():
        os.environ.setdefault(name, value)


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists (one we may not signal still exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def settings() -> Settings:
    """The settings every command uses (a running dev stack found first)."""
    discover_dev_stack()
    return Settings()


def configure_logging(loaded: Settings) -> None:
    """structlog as the settings say (commands that run long: the worker, the dev stack)."""
    from streams.logs import configure_logging as configure

    configure(level=loaded.log_level, fmt=loaded.log_format)


def example(*lines: str) -> str:
    """An ``epilog`` of examples for a command's ``--help``."""
    return "example:\n" + "\n".join(f"  {line}" for line in lines)


def add_command(
    sub: Any, name: str, *, help: str, examples: Sequence[str], description: str | None = None
) -> argparse.ArgumentParser:
    """A subcommand with its one-line help, a description and examples in ``--help``."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description=description or help[0].upper() + help[1:] + ".",
        epilog=example(*examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def add_tenant(p: argparse.ArgumentParser) -> None:
    """``--tenant`` (default ``$RAGSTREAM_TENANT`` or ``default``)."""
    p.add_argument(
        "--tenant",
        default=os.environ.get("RAGSTREAM_TENANT", "default"),
        help="tenant of the documents (default $RAGSTREAM_TENANT or 'default')",
    )


def add_credentials(p: argparse.ArgumentParser) -> None:
    """``--token-stdin`` / ``--api-key-stdin``; else $RAGSTREAM_TOKEN / $RAGSTREAM_API_KEY."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--token-stdin",
        action="store_true",
        help="read the JWT (sent as 'authorization: Bearer') from stdin; default $RAGSTREAM_TOKEN",
    )
    group.add_argument(
        "--api-key-stdin",
        action="store_true",
        help="read the API key (sent as 'x-api-key') from stdin; default $RAGSTREAM_API_KEY",
    )


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a client sends: a token or an API key (or neither, with auth disabled)."""

    token: str | None = None
    api_key: str | None = None

    def __repr__(self) -> str:  # never the secrets themselves
        token, api_key = ("***" if v else None for v in (self.token, self.api_key))
        return f"Credentials(token={token}, api_key={api_key})"


def credentials(args: argparse.Namespace) -> Credentials:
    """The credential of ``args``: stdin when asked, else the environment."""
    if getattr(args, "token_stdin", False):
        return Credentials(token=_stdin_secret("token"))
    if getattr(args, "api_key_stdin", False):
        return Credentials(api_key=_stdin_secret("API key"))
    token = os.environ.get("RAGSTREAM_TOKEN") or None
    api_key = os.environ.get("RAGSTREAM_API_KEY") or None
    if token and api_key:
        raise ConfigError("set RAGSTREAM_TOKEN or RAGSTREAM_API_KEY, not both")
    return Credentials(token=token, api_key=api_key)


def _stdin_secret(what: str) -> str:
    value = sys.stdin.readline().strip()
    if not value:
        raise ConfigError(f"no {what} on stdin")
    return value


def fail(command: str, message: str, *, code: int = EXIT_FAILED) -> int:
    """Print one error line for ``command`` on stderr; the exit code."""
    print(f"ragstream {command}: error: {message}", file=sys.stderr)
    return code


def run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; a bad setting or an unreachable dependency is one line, not a traceback."""
    command = str(getattr(args, "command", "") or "")
    # The Kafka client logs each failed connection attempt; without a handler of ours those
    # lines would reach stderr through logging's last resort. The error below says it once.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except ValidationError as exc:  # the environment: name the variable
        return fail(command, f"bad setting: {describe_settings_error(exc)}", code=EXIT_USAGE)
    except ConfigError as exc:
        return fail(command, str(exc), code=EXIT_USAGE)
    except (DependencyError, KafkaError, ConnectionError) as exc:
        return fail(command, f"{exc} ({_HINT})")
    except RagstreamError as exc:
        return fail(command, f"({exc.code}) {exc}")
