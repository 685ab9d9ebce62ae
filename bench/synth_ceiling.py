"""The highest SRCC any model can reach on a FineVD-Synth split: scores predicted from everything a
video shows (each distortion's subtype and exact severity, the frame size, the camera speed) by the
label function itself, against the labels, which add the clean scores' natural spread no pixel shows.

Run: python bench/synth_ceiling.py DIR [--split test]. Prints per dimension the SRCC of these oracle
scores, the bound for `finevq eval` on that split, and the share of videos whose dimension is clean
(their labels differ by the natural spread only, so ranking them is a coin toss)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scipy.stats import spearmanr

from finevq.data.synth.labels import dimension_scores, expected_clean_scores
from finevq.data.synth.writer import RECORDS_DIR
from finevq.taxonomy import COARSE_OF_SUBTYPE, COARSE_TYPES, DIMENSIONS


def oracle_and_labels(folder: Path, split: str) -> tuple[list[dict], list[dict], list[set]]:
    oracle, labels, distorted = [], [], []
    for path in sorted((folder / RECORDS_DIR).glob("*.json")):
        record = json.loads(path.read_text())
        if record["split"] != split:
            continue
        distortions = [(item["subtype"], item["severity"]) for item in record["distortions"]]
        clean = expected_clean_scores(min(record["width"], record["height"]), record["camera_speed"])
        oracle.append(dimension_scores(clean, distortions))
        labels.append(record["scores"])
        distorted.append({COARSE_OF_SUBTYPE[subtype] for subtype, _ in distortions})
    return oracle, labels, distorted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder written by finevq synth")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    oracle, labels, distorted = oracle_and_labels(args.folder, args.split)
    if not labels:
        raise SystemExit(f"{args.folder}: no {args.split!r} records in {RECORDS_DIR}/")
    print(f"## SRCC ceiling on the {args.split} split of {args.folder} ({len(labels)} videos)")
    for dimension in DIMENSIONS:
        srcc = spearmanr([row[dimension] for row in oracle], [row[dimension] for row in labels]).statistic
        clean = "" if dimension not in COARSE_TYPES else (
            f"; clean in {sum(dimension not in present for present in distorted) / len(labels):.0%} of videos")
        print(f"{dimension:9s} {srcc:.3f}{clean}")


if __name__ == "__main__":
    main()
