"""The ``samsegment`` command line: one module per subcommand, each with ``register`` and ``run``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence

from ..atomic import recording_writes
from ..errors import SAMSegmentError

_COMMANDS = (
    "segment",
    "models",
    "download",
    "demo",
    "evaluate",
    "finetune",
    "priors",
    "everything",
    "register",
    "serve",
)
# Developer tools, left out of the engine copy the Slicer extension installs (SAMSegment/CMakeLists.txt).
_DEVELOPER_COMMANDS = ("bench", "loadtest")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="samsegment", description="Segment Anything for 3D medical volumes.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the engine does")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in _COMMANDS + _DEVELOPER_COMMANDS:
        if name in _DEVELOPER_COMMANDS and importlib.util.find_spec(f"{__name__}.{name}_command") is None:
            continue
        module = importlib.import_module(f"{__name__}.{name}_command")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    with recording_writes() as written:
        try:
            return int(args.run(args) or 0)
        except SAMSegmentError as error:
            print(f"samsegment: error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            # Outputs reach their names only whole (``atomic``): what was renamed is all there is.
            if written:
                done = (
                    f"{', '.join(map(str, written))} {'was' if len(written) == 1 else 'were'} written, no other output"
                )
            else:
                done = "no output was written"
            print(f"samsegment: interrupted; {done}.", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
