"""``ragstream token|apikey|users|login|logout``: credentials for the topics' API.

A command group of ``ragstream.cli`` (which calls ``register``). ``token``
mints a JWT from ``JWT_SECRET_KEY`` or ``JWT_PRIVATE_KEY_FILE``; the others work on the
auth tables in the catalog database (``DATABASE_URL``) through ``services.auth_accounts``.
Secrets are printed once, to stdout, and never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from ragstream.cli import _env
from ragstream.cli._env import add_command
from services.auth_accounts import SCOPES, Accounts, check_scopes
from services.auth_tokens import TokenMinter
from stores.auth_store import SqlAuthStore
from streams.errors import RagstreamError

__all__ = ["parse_ttl", "register"]

_TTL = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 60}


def parse_ttl(value: str) -> int:
    """``90s``, ``30m``, ``2h``, ``1d`` (a bare number is minutes) in seconds."""
    match = _TTL.match(value.strip())
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"bad TTL {value!r}; use e.g. 90s, 30m, 2h, 1d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _scopes(values: list[str]) -> list[str]:
    """Repeated and comma-separated ``--scope`` values, flattened."""
    return [s.strip() for v in values for s in v.split(",") if s.strip()]


def _run(work: Callable[[Accounts], Awaitable[int]], *, minter: bool = False) -> int:
    """Run ``work`` on an ``Accounts`` over the configured database; errors print, exit 1."""
    settings = _env.settings()

    async def main() -> int:
        store = SqlAuthStore.from_settings(settings)
        try:
            await store.start()
            mint = TokenMinter(settings.security) if minter else None
            return await work(Accounts(store, settings.security, minter=mint))
        finally:
            await store.aclose()

    try:
        return asyncio.run(main())
    except RagstreamError as exc:
        print(f"error ({exc.code}): {exc}", file=sys.stderr)
        return 1


def _password(args: argparse.Namespace, prompt: str = "password: ") -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return getpass.getpass(prompt)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def cmd_token(args: argparse.Namespace) -> int:
    """Mint an access token for a tenant and scopes."""
    try:
        scopes = check_scopes(_scopes(args.scope))
        token = TokenMinter(_env.settings().security).mint(
            sub=args.sub or f"cli:{getpass.getuser()}",
            tenant=args.tenant,
            scopes=scopes,
            ttl_s=args.ttl,
        )
    except RagstreamError as exc:
        print(f"error ({exc.code}): {exc}", file=sys.stderr)
        return 1
    print(token)
    return 0


def cmd_apikey_create(args: argparse.Namespace) -> int:
    """Create a key; the key itself is printed once."""

    async def work(accounts: Accounts) -> int:
        new = await accounts.create_api_key(
            tenant=args.tenant, scopes=_scopes(args.scope), name=args.name
        )
        print(
            f"created API key {new.record.key_id} for tenant {args.tenant!r} "
            f"({' '.join(new.record.scopes)}); it is shown only now:",
            file=sys.stderr,
        )
        print(new.key)
        return 0

    return _run(work)


def cmd_apikey_list(args: argparse.Namespace) -> int:
    """List keys (never their secrets)."""

    async def work(accounts: Accounts) -> int:
        keys = await accounts.store.list_api_keys(args.tenant)
        _print_json(
            [
                {
                    "key_id": k.key_id,
                    "tenant": k.tenant,
                    "scopes": list(k.scopes),
                    "name": k.name,
                    "created_at": k.created_at,
                    "revoked_at": k.revoked_at,
                }
                for k in keys
            ]
        )
        return 0

    return _run(work)


def cmd_apikey_revoke(args: argparse.Namespace) -> int:
    """Revoke a key by id; it stops working on the next message."""

    async def work(accounts: Accounts) -> int:
        done = await accounts.revoke_api_key(args.key_id)
        print(f"{args.key_id}: {'revoked' if done else 'not found or already revoked'}")
        return 0 if done else 1

    return _run(work)


def cmd_users_create(args: argparse.Namespace) -> int:
    """Create a user (password from a prompt or ``--password-stdin``)."""
    password = _password(args)

    async def work(accounts: Accounts) -> int:
        user = await accounts.create_user(
            username=args.username,
            password=password,
            tenant=args.tenant,
            permissions=_scopes(args.permission),
        )
        print(
            f"created user {user.username!r} in tenant {user.tenant!r} "
            f"({' '.join(user.permissions)})"
        )
        return 0

    return _run(work)


def cmd_users_list(args: argparse.Namespace) -> int:
    """List users (never their password hashes)."""

    async def work(accounts: Accounts) -> int:
        users = await accounts.store.list_users(args.tenant)
        _print_json(
            [
                {
                    "username": u.username,
                    "tenant": u.tenant,
                    "permissions": list(u.permissions),
                    "disabled": u.disabled,
                    "created_at": u.created_at,
                }
                for u in users
            ]
        )
        return 0

    return _run(work)


def _cmd_set_disabled(disabled: bool) -> Callable[[argparse.Namespace], int]:
    def cmd(args: argparse.Namespace) -> int:
        async def work(accounts: Accounts) -> int:
            done = await accounts.set_disabled(args.username, disabled)
            state = "disabled" if disabled else "enabled"
            print(f"{args.username}: {state if done else 'no such user'}")
            return 0 if done else 1

        return _run(work)

    cmd.__doc__ = "Disable a user: their tokens stop working." if disabled else "Enable a user."
    return cmd


def cmd_users_set_permissions(args: argparse.Namespace) -> int:
    """Replace a user's permissions (issued tokens are narrowed at once)."""

    async def work(accounts: Accounts) -> int:
        done = await accounts.set_permissions(args.username, _scopes(args.permissions))
        print(f"{args.username}: {'updated' if done else 'no such user'}")
        return 0 if done else 1

    return _run(work)


def _refresh_token() -> str:
    """The refresh token, from stdin: never an argument (``ps`` would show it)."""
    return sys.stdin.readline().strip()


def cmd_login(args: argparse.Namespace) -> int:
    """Log in (or rotate a refresh token): prints access and refresh tokens as JSON."""
    if not args.refresh_stdin and not args.username:
        print("error: give a USERNAME, or --refresh-stdin", file=sys.stderr)
        return 2
    refresh = _refresh_token() if args.refresh_stdin else None
    password = None if refresh is not None else _password(args)

    async def work(accounts: Accounts) -> int:
        if refresh is not None:
            pair = await accounts.refresh(refresh)
        else:
            assert password is not None
            pair = await accounts.login(args.username, password)
        _print_json(
            {
                "access_token": pair.access_token,
                "refresh_token": pair.refresh_token,
                "token_type": pair.token_type,
                "expires_in": pair.expires_in,
            }
        )
        return 0

    return _run(work, minter=True)


def cmd_logout(args: argparse.Namespace) -> int:
    """Revoke the session of a refresh token (every token it rotated into)."""

    refresh = _refresh_token()

    async def work(accounts: Accounts) -> int:
        done = await accounts.logout(refresh)
        print("session revoked" if done else "unknown or already revoked")
        return 0 if done else 1

    return _run(work)


def register(sub: Any) -> None:
    """Add the credential commands to ``ragstream``'s subparsers."""
    scope_help = f"repeatable or comma-separated: {', '.join(sorted(SCOPES))}"
    p = add_command(
        sub,
        "token",
        help="mint an access token (JWT) from the configured key",
        examples=[
            "export RAGSTREAM_TOKEN=$(ragstream token --tenant acme --scope documents:write "
            "--scope search:read --ttl 30m)"
        ],
    )
    p.add_argument("--tenant", required=True)
    p.add_argument("--scope", action="append", required=True, help=scope_help)
    p.add_argument(
        "--ttl", type=parse_ttl, default=None, help="e.g. 30m (default: JWT_EXPIRATION_MINUTES)"
    )
    p.add_argument("--sub", help="subject claim (default cli:<login name>)")
    p.set_defaults(func=cmd_token)

    apikey = add_command(
        sub,
        "apikey",
        help="create, list or revoke API keys (x-api-key)",
        examples=["ragstream apikey create --tenant acme --scope documents:write --name billing"],
    )
    cmds = apikey.add_subparsers(dest="apikey_command", required=True, metavar="ACTION")
    p = add_command(
        cmds,
        "create",
        help="create a key (printed once)",
        examples=["ragstream apikey create --tenant acme --scope search:read --name chatbot"],
    )
    p.add_argument("--tenant", required=True)
    p.add_argument("--scope", action="append", required=True, help=scope_help)
    p.add_argument("--name", default="", help="a label, e.g. the producer's name")
    p.set_defaults(func=cmd_apikey_create)
    p = add_command(
        cmds, "list", help="list keys", examples=["ragstream apikey list --tenant acme --json"]
    )
    p.add_argument("--tenant")
    p.set_defaults(func=cmd_apikey_list)
    p = add_command(
        cmds, "revoke", help="revoke a key by id", examples=["ragstream apikey revoke 3f9c2a1b"]
    )
    p.add_argument("key_id", metavar="KEY_ID")
    p.set_defaults(func=cmd_apikey_revoke)

    users = add_command(
        sub,
        "users",
        help="create, list, disable or re-permission users",
        examples=["ragstream users list --tenant acme"],
    )
    cmds = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    p = add_command(
        cmds,
        "create",
        help="create a user",
        examples=[
            'printf "%s\\n" "$PASSWORD" | ragstream users create alice --tenant acme '
            "--permission search:read --password-stdin"
        ],
    )
    p.add_argument("username", metavar="USERNAME")
    p.add_argument("--tenant", required=True)
    p.add_argument("--permission", action="append", required=True, help=scope_help)
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(func=cmd_users_create)
    p = add_command(cmds, "list", help="list users", examples=["ragstream users list --json"])
    p.add_argument("--tenant")
    p.set_defaults(func=cmd_users_list)
    for name, disabled in (("disable", True), ("enable", False)):
        p = add_command(
            cmds, name, help=f"{name} a user", examples=[f"ragstream users {name} alice"]
        )
        p.add_argument("username", metavar="USERNAME")
        p.set_defaults(func=_cmd_set_disabled(disabled))
    p = add_command(
        cmds,
        "set-permissions",
        help="replace a user's permissions",
        examples=["ragstream users set-permissions alice search:read documents:write"],
    )
    p.add_argument("username", metavar="USERNAME")
    p.add_argument("permissions", nargs="+", metavar="PERMISSION", help=scope_help)
    p.set_defaults(func=cmd_users_set_permissions)

    p = add_command(
        sub,
        "login",
        help="log in: access + refresh token (JSON)",
        examples=[
            'printf "%s\\n" "$PASSWORD" | ragstream login alice --password-stdin',
            'printf "%s\\n" "$REFRESH_TOKEN" | ragstream login --refresh-stdin',
        ],
    )
    p.add_argument("username", nargs="?", metavar="USERNAME")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument(
        "--refresh-stdin",
        action="store_true",
        help="rotate the refresh token read from stdin instead of using a password",
    )
    p.set_defaults(func=cmd_login)
    p = add_command(
        sub,
        "logout",
        help="revoke the session of the refresh token read from stdin",
        examples=['printf "%s\\n" "$REFRESH_TOKEN" | ragstream logout'],
    )
    p.set_defaults(func=cmd_logout)
