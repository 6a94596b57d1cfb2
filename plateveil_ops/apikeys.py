"""``plateveil keys new`` / ``plateveil keys hash``: the key verbs of the console script.

The keys themselves (hashing, parsing ``PLATEVEIL_API_KEY_HASHES``, matching) are the upload
service's: :mod:`producer.apikeys`.
"""

from __future__ import annotations

import argparse
import sys

from producer.apikeys import KEY_ID, KeyHash, derived_key_id, hash_key, new_key

MIN_KEY_CHARS = 20   # `keys new` makes 43 (256 bits); `keys hash` refuses shorter existing keys

# ----------------------------------------------------------------------------------------------
# CLI: plateveil keys new


def register(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="API keys of the upload service")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    new = keys_sub.add_parser("new", help="make a key; print it and its PLATEVEIL_API_KEY_HASHES line")
    new.add_argument("--id", default=None, help="key id (client name) for logs, limits, allowlists and "
                                                "webhooks; default k- + 12 hex digits of the key's sha256")
    new.add_argument("--review", action="store_true", help="a reviewer key of the /review pages: its entry goes "
                     "to PLATEVEIL_REVIEW_KEY_HASHES and --id is the reviewer's login name (required)")
    new.set_defaults(func=_cmd_new)
    hashed = keys_sub.add_parser("hash", help="print the PLATEVEIL_API_KEY_HASHES (or PLATEVEIL_REVIEW_KEY_HASHES) "
                                              "entry of an existing key (stdin)")
    hashed.add_argument("--id", default=None, help="key id (reviewer name); default k- + 12 hex digits of the "
                                                   "key's sha256")
    hashed.set_defaults(func=_cmd_hash)


def _cmd_new(args: argparse.Namespace) -> int:
    if args.id is not None and not KEY_ID.match(args.id):
        print("error: --id must match [a-z0-9][a-z0-9_.-]{0,62}")
        return 2
    if args.review and args.id is None:
        print("error: --review needs --id NAME (the reviewer's login name)")
        return 2
    key = new_key()
    key_id = args.id or derived_key_id(key)
    print(f"{'REVIEW_KEY' if args.review else 'API_KEY'}={key}")
    print(f"PLATEVEIL_{'REVIEW' if args.review else 'API'}_KEY_HASHES entry: {KeyHash(key_id, hash_key(key)).line()}")
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
    if len(key) < MIN_KEY_CHARS:
        print(f"error: a key of fewer than {MIN_KEY_CHARS} characters is guessable; make one with `plateveil keys new`")
        return 2
    print(KeyHash(args.id or derived_key_id(key), hash_key(key)).line())
    return 0
