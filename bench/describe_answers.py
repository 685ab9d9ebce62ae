"""How often a model's free-form answer to "Describe the quality of this video." names the dimension
that hurts the video most (the label's worst dimension), on a FineVD-format split; and how long it takes.

Run: python bench/describe_answers.py DIR [--split test] [--model DIR] [--max-videos N]
Without --model it uses the shipped default model."""

from __future__ import annotations

import argparse
import re
import time

from tqdm.auto import tqdm

from finevq.data import load_finevd
from finevq.data.instructions import worst_dimension
from finevq.inference import FineVQ
from finevq.taxonomy import COARSE_TYPES, WORST_DIMENSION_GOOD

QUESTION = "Describe the quality of this video."
_NAMED = re.compile(r"the (\w+) quality hurts it the most", re.IGNORECASE)
_NONE_HURTS = "no single dimension hurts it much"


def named_worst(answer: str) -> str | None:
    """The dimension an answer says hurts most, "good" when it says none does, else None."""
    if _NONE_HURTS in answer.lower():
        return WORST_DIMENSION_GOOD
    match = _NAMED.search(answer)
    return match.group(1).lower() if match and match.group(1).lower() in COARSE_TYPES else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="FineVD-format folder (e.g. one `finevq synth` wrote)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", help="model folder (default: the shipped default model)")
    parser.add_argument("--max-videos", type=int)
    args = parser.parse_args()

    fv = FineVQ.from_pretrained(args.model)
    rows = load_finevd(args.source, "scores")[args.split]
    if args.max_videos:
        rows = rows.select(range(min(args.max_videos, len(rows))))
    counts = {"distorted": 0, "distorted_named": 0, "clean": 0, "clean_named": 0, "no_claim": 0}
    start = time.perf_counter()
    for row in tqdm(rows, desc="describe", unit="video"):
        truth = worst_dimension(row)
        said = named_worst(fv.chat(row["video"]["path"], QUESTION, stream=False))
        kind = "clean" if truth == WORST_DIMENSION_GOOD else "distorted"
        counts[kind] += 1
        counts[f"{kind}_named"] += said == truth
        counts["no_claim"] += said is None
    elapsed = time.perf_counter() - start
    print(f"model {fv.name}, {args.source} {args.split}: {len(rows)} videos, {elapsed / max(len(rows), 1):.2f} s each")
    print(f"distorted videos whose description names the worst dimension: "
          f"{counts['distorted_named']}/{counts['distorted']} = {counts['distorted_named'] / max(counts['distorted'], 1):.1%}")
    print(f"clean videos described as hurt by no dimension: "
          f"{counts['clean_named']}/{counts['clean']} = {counts['clean_named'] / max(counts['clean'], 1):.1%}")
    print(f"descriptions naming no worst dimension at all: {counts['no_claim']}")


if __name__ == "__main__":
    main()
