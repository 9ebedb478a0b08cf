"""``ragstream schemas``: write the JSON Schema files of the wire contract."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ragstream.cli._env import add_command
from schemas.export import write_json_schemas

__all__ = ["register"]


def cmd_schemas(args: argparse.Namespace) -> int:
    """Write the JSON Schema files of the contract."""
    for path in write_json_schemas(Path(args.out)):
        print(path)
    return 0


def register(sub: Any) -> None:
    """Add ``ragstream schemas``."""
    p = add_command(
        sub,
        "schemas",
        help="write the contract's JSON Schema files",
        description="Write one JSON Schema file per message type of the topics' contract.",
        examples=[
            "ragstream schemas --out /tmp/contract",
        ],
    )
    p.add_argument("--out", default="schemas/json", help="directory (default schemas/json)")
    p.set_defaults(func=cmd_schemas)
