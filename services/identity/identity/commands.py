"""The identity service's own commands: bootstrap a user with an API key, and rotate the vault keys.

python -m identity create-user --email dev@example.com [--name "Dev"] [--scopes jobs:read jobs:write ...]
python -m identity rotate-vault-keys
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from identity.bootstrap import components
from identity.domain.scopes import ALL_SCOPES
from identity.settings import IdentitySettings
from servicekit import errors
from servicekit.cli import Command

BOOTSTRAP_KEY_NAME = "bootstrap"


def _create_user_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--email", required=True, help="the user's email; an existing user with it is reused")
    parser.add_argument(
        "--name", default="", help="display name of a new user (default: the email's local part)"
    )
    parser.add_argument(
        "--scopes",
        nargs="+",
        default=sorted(ALL_SCOPES),
        metavar="SCOPE",
        help="scopes of the new API key (default: every scope)",
    )
    parser.add_argument("--key-name", default=BOOTSTRAP_KEY_NAME, help="display name of the new API key")


async def create_user(settings: IdentitySettings, args: argparse.Namespace) -> int:
    """Creates (or reuses) a user and prints a new API key for them, shown once."""
    # Logs go to stderr while the command runs, so stdout carries the key alone: KEY=$(... create-user).
    with contextlib.redirect_stdout(sys.stderr):
        parts = components(settings)
        try:
            user, created = await parts.services.users.ensure(args.email, args.name)
            issued = await parts.services.api_keys.issue(user.id, args.key_name, list(args.scopes), None)
        except errors.DomainError as exc:
            print(f"create-user failed: {exc.message}", file=sys.stderr)
            return 1
        finally:
            await parts.close()
    print(f"{'created' if created else 'reused'} user users/{user.id} <{user.email}>", file=sys.stderr)
    print(
        f"API key apiKeys/{issued.api_key.id} with scopes {' '.join(sorted(issued.api_key.scopes))}",
        file=sys.stderr,
    )
    print("the key is shown once; send it as 'Authorization: Bearer <key>':", file=sys.stderr)
    print(issued.key)
    return 0


async def rotate_vault_keys(settings: IdentitySettings, args: argparse.Namespace) -> int:
    """Re-seals every stored secret under VAULT_ACTIVE_KEY."""
    parts = components(settings)
    try:
        rotation = await parts.services.vault.rotate_keys()
    except errors.DomainError as exc:
        print(f"rotate-vault-keys failed: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await parts.close()
    print(
        f"examined {rotation.examined} grants, re-sealed {rotation.resealed} "
        f"under key {rotation.active_version}",
        file=sys.stderr,
    )
    return 0


COMMANDS: dict[str, Command[IdentitySettings]] = {
    "create-user": Command(
        "create a user (or reuse one by email) and print a new API key", create_user, _create_user_arguments
    ),
    "rotate-vault-keys": Command("re-seal every stored secret under VAULT_ACTIVE_KEY", rotate_vault_keys),
}
