"""``plateveil keys new`` / ``plateveil keys hash``: the key verbs of the console script.

The keys themselves (hashing, parsing ``PLATEVEIL_API_KEY_HASHES``, matching) are the upload
service's: :mod:`producer.apikeys`.
"""

from __future__ import annotations

import argparse
import sys

from producer.apikeys import KEY_ID, KeyHash, derived_key_id, hash_key, new_key

# ----------------------------------------------------------------------------------------------
# CLI: plateveil keys new


def register(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="API keys of the upload service")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    new = keys_sub.add_parser("new", help="make a key; print it and its PLATEVEIL_API_KEY_HASHES line")
    new.add_argument("--id", default=None, help="key id (client name) for logs, limits, allowlists and "
                                                "webhooks; default k- + 12 hex digits of the key's sha256")
    new.set_defaults(func=_cmd_new)
    hashed = keys_sub.add_parser("hash", help="print the PLATEVEIL_API_KEY_HASHES line of an existing key (stdin)")
    hashed.add_argument("--id", default=None, help="key id; default k- + 12 hex digits of the key's sha256")
    hashed.set_defaults(func=_cmd_hash)


def _cmd_new(args: argparse.Namespace) -> int:
    if args.id is not None and not KEY_ID.match(args.id):
        print("error: --id must match [a-z0-9][a-z0-9_.-]{0,62}")
        return 2
    key = new_key()
    key_id = args.id or derived_key_id(key)
    print(f"API_KEY={key}")
    print(f"PLATEVEIL_API_KEY_HASHES entry: {KeyHash(key_id, hash_key(key)).line()}")
    print("# give the key to the client once; store only the entry (comma-separate several)")
    return 0


def _cmd_hash(args: argparse.Namespace) -> int:
    if args.id is not None and not KEY_ID.match(args.id):
        print("error: --id must match [a-z0-9][a-z0-9_.-]{0,62}")
        return 2
    key = sys.stdin.readline().strip()
    if not key:
        print("error: give the key on stdin")
        return 2
    print(KeyHash(args.id or derived_key_id(key), hash_key(key)).line())
    return 0
