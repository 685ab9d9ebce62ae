"""Entry point of `accelerate launch recipes/train.py --config recipes/configs/<experiment>.yaml`:
parses the config file, `--set key=value` overrides and `--resume`, then runs `finevq.training.train`."""

from __future__ import annotations

import argparse
import sys

from finevq.errors import FineVQError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train a FineVQ model (run it under `accelerate launch`).")
    parser.add_argument("--config", required=True, metavar="YAML",
                        help="experiment config, e.g. recipes/configs/smoke.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set training.lr=1e-4 (repeatable)")
    parser.add_argument("--resume", metavar="CHECKPOINT",
                        help="resume from this checkpoint folder (default: the newest one in output.dir)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from finevq.training import load_experiment, train

    try:
        train(load_experiment(args.config, args.overrides), resume_from=args.resume)
    except FineVQError as error:
        print(f"train: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
