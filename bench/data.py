"""Times the FineVD loader at the published release's size (5074 videos, 4 question files per split):
parsing, the first `datasets` build, the cached second load, conversations and the export.

Run: python bench/data.py [--videos N]. Videos are empty placeholder files (the loader
only checks that they exist), so this measures the label pipeline, not decoding."""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import datasets

from finevq.data import build_conversations, export_dataset, load_finevd, read_finevd
from finevq.taxonomy import COARSE_TYPES, DIMENSIONS, SUBTYPES


def write_release_like_folder(root: Path, videos: int) -> None:
    (root / "videos").mkdir(parents=True)
    header = ["video", "split", *DIMENSIONS, *(f"subtype_{c}" for c in COARSE_TYPES)]
    lines, questions = [",".join(header)], {"train": [], "test": []}
    for i in range(videos):
        name = f"0_00_{i % 60:02d}_{1498361484 + i}.mp4"
        split = "test" if i % 5 == 0 else "train"
        subtypes = [SUBTYPES[c][i % len(SUBTYPES[c])] if i % 3 else "none" for c in COARSE_TYPES]
        lines.append(",".join([name, split, *(f"{(i * 7 + k * 13) % 100 + 0.25:.2f}" for k in range(6)), *subtypes]))
        (root / "videos" / name).write_bytes(b"")
        for coarse, subtype in zip(COARSE_TYPES, subtypes):
            shown = SUBTYPES[coarse][:3]
            options = ["None", *shown] + ([subtype] if subtype not in (*shown, "none") else [])
            letter = "A" if subtype == "none" else "ABCDE"[options.index(subtype)]
            rendered = "{" + ", ".join(f"{chr(65 + k)}:[{o}]" for k, o in enumerate(options)) + "}"
            yes_no = "No" if subtype == "none" else "Yes"
            questions[split].append((name, f"<|video|>Is there any {coarse} distortion in the video?", yes_no))
            questions[split].append((name, f"<|video|>Which {coarse} distortion is in the video? {rendered}", letter))
    (root / "scores.csv").write_text("\n".join(lines))
    (root / "finevd.json").write_text(json.dumps({"score_range": [0, 100]}))
    for split, items in questions.items():
        with open(root / f"qa_{split}.jsonl", "w") as handle:
            for name, question, answer in items:
                turns = [{"from": "human", "value": question}, {"from": "ai", "value": answer}]
                handle.write(json.dumps({"video": name, "conversations": turns}) + "\n")


def timed(label: str, function):
    start = time.perf_counter()
    result = function()
    print(f"{label:<44} {time.perf_counter() - start:8.3f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=5074)
    args = parser.parse_args()
    datasets.disable_progress_bars()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as temp:
        root, cache = Path(temp) / "finevd", Path(temp) / "cache"
        timed(f"write {args.videos} videos' labels", lambda: write_release_like_folder(root, args.videos))
        labels = timed("read_finevd (parse + merge, plain Python)", lambda: read_finevd(root))
        print(f"  {len(labels.scores)} videos, {len(labels.qa)} questions")
        scores = timed("load_finevd scores, first call (build)", lambda: load_finevd(root, cache_dir=cache))
        timed("load_finevd scores, second call (cached)", lambda: load_finevd(root, cache_dir=cache))
        timed("load_finevd qa, first call (build)", lambda: load_finevd(root, "qa", cache_dir=cache))
        timed("load_finevd qa, second call (cached)", lambda: load_finevd(root, "qa", cache_dir=cache))
        conversations = timed("build_conversations (scores, all types)", lambda: build_conversations(scores["train"]))
        print(f"  {len(conversations)} conversations from {len(scores['train'])} train videos")
        timed("export_dataset (parquet + card)", lambda: export_dataset(root, Path(temp) / "hub", cache_dir=cache))


if __name__ == "__main__":
    main()
