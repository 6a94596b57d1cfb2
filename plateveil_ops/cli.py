"""The ``plateveil`` console script.

Each package registers its own sub-commands, so this file stays a table of contents:
``conceal`` (workers.cli), ``reconcile`` and ``dlq ...`` (workers.ops), ``models ...``
(model_training.cli), ``doctor`` (plateveil_ops.doctor), ``events consume`` (producer.intake.sqs),
``keys new|hash`` (plateveil_ops.apikeys). Imports are lazy so that ``plateveil --help`` does not
load mxnet. It sits in the top layer (operations): it may import every package, nothing imports it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plateveil", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from model_training.cli import register as register_models
    from plateveil_ops.apikeys import register as register_keys
    from plateveil_ops.doctor import register as register_doctor
    from producer.intake.sqs import register as register_events
    from workers.cli import register as register_conceal
    from workers.ops import register as register_ops

    register_conceal(sub)
    register_ops(sub)
    register_models(sub)
    register_doctor(sub)
    register_events(sub)
    register_keys(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
