"""The `finevq` command: argument parsing and dispatch only; the work happens in the library.
Heavy modules (torch, transformers, gradio) are imported inside the subcommand that needs them."""

from __future__ import annotations

import argparse
import json
import sys

from finevq import __version__
from finevq.errors import FineVQError


def _add_probe(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="print a video's metadata (frames, fps, duration, size, codec, rotation) as JSON",
        description="Probe videos without decoding them fully; one JSON object per video.",
    )
    parser.add_argument("videos", nargs="+", metavar="VIDEO")
    parser.add_argument("--backend", choices=("auto", "decord", "pyav"), default="auto")
    parser.set_defaults(handler=_run_probe)


def _run_probe(args: argparse.Namespace) -> int:
    from finevq.video import probe

    failed = 0
    for path in args.videos:
        try:
            print(json.dumps(probe(path, backend=args.backend).to_dict()))
        except FineVQError as error:
            failed += 1
            print(json.dumps({"video": path, "error": str(error)}))
    return 1 if failed else 0


_SUBCOMMANDS = (_add_probe,)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finevq",
        description="Fine-grained quality assessment of user-generated videos.",
    )
    parser.add_argument("--version", action="version", version=f"finevq {__version__}")
    subparsers = parser.add_subparsers(title="subcommands", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except FineVQError as error:
        print(f"finevq: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("finevq: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
