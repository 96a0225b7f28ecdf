"""Who may log in to the app: `user:password` lines, plain or hashed, checked in constant time.

A line is `user:password` or `user:pbkdf2_sha256$<iterations>$<salt>$<base64 hash>` (the
format Django uses, made with hashlib.pbkdf2_hmac: no extra dependency). Blank lines and
lines starting with `#` are skipped. Make a hashed line with
`python -m vepo_viz.ui.auth hash --user NAME` (reads the password without echoing it).
`Credentials.check` is the callable handed to gradio's `launch(auth=...)`.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import secrets
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vepo_viz.errors import VepoInputError

SCHEME = "pbkdf2_sha256"
"""The hashed-password scheme: PBKDF2-HMAC-SHA256, stored as Django stores it."""

ITERATIONS = 600_000
"""PBKDF2 iterations of a new hash (OWASP's 2023 figure for PBKDF2-HMAC-SHA256)."""

_DUMMY = f"{SCHEME}${ITERATIONS}$vepo-viz-dummy$" + base64.b64encode(b"\0" * 32).decode()
"""Checked against when the user is unknown, so that an unknown name costs as much as a
wrong password of a hashed entry (plain entries compare in microseconds either way)."""


def hash_password(password: str, iterations: int = ITERATIONS, salt: str | None = None) -> str:
    """`pbkdf2_sha256$<iterations>$<salt>$<base64 hash>` of `password`."""
    salt = salt or secrets.token_urlsafe(16)
    if "$" in salt:
        raise VepoInputError("the salt may not contain '$'")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"{SCHEME}${iterations}${salt}${base64.b64encode(digest).decode()}"


def _verify(password: str, stored: str) -> bool:
    """True when `password` matches `stored` (a hash or a plain password); constant time."""
    parts = stored.split("$")
    if len(parts) == 4 and parts[0] == SCHEME and parts[1].isdigit():
        _, iterations, salt, expected = parts
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations))
        return hmac.compare_digest(base64.b64encode(digest).decode().encode(), expected.encode())
    return hmac.compare_digest(password.encode(), stored.encode())


def _entry(line: str, where: str) -> tuple[str, str]:
    """(user, stored password) of one `user:password` line (the password is never echoed)."""
    user, sep, password = line.partition(":")
    user = user.strip()
    if not sep or not user or not password:
        raise VepoInputError(f"{where}: expected user:password (or user:{SCHEME}$...)")
    if password.startswith(f"{SCHEME}$") and len(password.split("$")) != 4:
        raise VepoInputError(f"{where}: a hashed password is {SCHEME}$<iterations>$<salt>$<hash>")
    return user, password


@dataclass(frozen=True)
class Credentials:
    """The users allowed to log in (user -> plain password or pbkdf2_sha256 hash)."""

    users: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.users)

    @classmethod
    def parse(cls, entries: Iterable[str] = (), files: Iterable[str | Path] = ()) -> Credentials:
        """Users from `user:password` strings and from files of such lines."""
        users: dict[str, str] = {}
        for i, entry in enumerate(entries, start=1):
            user, password = _entry(entry, f"--auth entry {i}")
            users[user] = password
        for path in files:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as error:
                raise VepoInputError(f"cannot read the auth file {path}: {error}") from error
            for n, line in enumerate(text.splitlines(), start=1):
                if line.strip() and not line.lstrip().startswith("#"):
                    user, password = _entry(line.rstrip("\r"), f"{path}, line {n}")
                    users[user] = password
        return cls(users)

    def check(self, username: str, password: str) -> bool:
        """gradio's auth callable: True for a known user with the right password."""
        stored = self.users.get(username)
        ok = _verify(password or "", stored if stored is not None else _DUMMY)
        return ok and stored is not None


def main(argv: list[str] | None = None) -> int:
    """`python -m vepo_viz.ui.auth hash --user NAME`: print a hashed auth-file line."""
    parser = argparse.ArgumentParser(
        prog="python -m vepo_viz.ui.auth",
        description="Make a line for app.py --auth-file with a hashed password.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("hash", help="print user:pbkdf2_sha256$... for a password")
    make.add_argument("--user", required=True, help="the login name")
    make.add_argument("--iterations", type=int, default=ITERATIONS, help="PBKDF2 iterations")
    make.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (scripts)"
    )
    args = parser.parse_args(argv)
    if ":" in args.user:
        parser.error("the user name may not contain ':'")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            parser.error("the passwords differ")
    if not password:
        parser.error("empty password")
    print(f"{args.user}:{hash_password(password, args.iterations)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
