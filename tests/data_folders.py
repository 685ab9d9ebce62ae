"""Small FineVD-format label folders written by the data tests: score table, conversation files,
finevd.json and empty placeholder videos (the data layer only needs the paths to exist)."""

from __future__ import annotations

import json
from pathlib import Path

from finevq.taxonomy import COARSE_TYPES, DIMENSIONS

SCORE_COLUMNS = ["video", "split", *DIMENSIONS, *(f"subtype_{c}" for c in COARSE_TYPES)]
# Published spellings on purpose: the loader must map them to canonical names.
NOISE_LABELS = ("gussian noise", "None", "pulse noise")
NOISE_OPTIONS = ["None", "gussian noise", "pulse noise", "stripe noise", "other noise"]
DIMENSION_OPTIONS = "{A:[Blur], B:[Noise], C:[Video quality is good], D:[Color]}"


def mos_of(index: int, dimension: str) -> float:
    """A deterministic MOS for video `index` that spreads over the 0-100 range."""
    return round((index * 17 + DIMENSIONS.index(dimension) * 23) % 100 + 0.5, 2)


def conversation(video: str, question: str, answer: str, **extra) -> dict:
    turns = [{"from": "human", "value": question}, {"from": "ai", "value": answer}]
    return {"video": video, **extra, "conversations": turns}


def write_jsonl(path: Path, items: list[dict], line_end: str = "\n") -> Path:
    path.write_text("".join(json.dumps(item, ensure_ascii=False) + line_end for item in items), encoding="utf-8")
    return path


def write_finevd_folder(
    root: Path, videos: int = 12, published_split: bool = True, questions: bool = True, meta: bool = True
) -> Path:
    """A FineVD-format folder: every 4th video in test (when `published_split`), the rest train."""
    (root / "videos").mkdir(parents=True, exist_ok=True)
    names = [f"0_00_{i:02d}_16135028{i:02d}.mp4" for i in range(videos)]
    lines = [",".join(SCORE_COLUMNS)]
    for i, name in enumerate(names):
        split = ("test" if i % 4 == 0 else "train") if published_split else ""
        subtypes = ["none", NOISE_LABELS[i % 3], "none", "shooting system blur" if i % 2 else "none", "none"]
        lines.append(",".join([name, split, *(str(mos_of(i, d)) for d in DIMENSIONS), *subtypes]))
        (root / "videos" / name).write_bytes(b"")
    (root / "scores.csv").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    if meta:
        (root / "finevd.json").write_text(json.dumps({"score_range": [0, 100]}))
    if questions:
        for split in ("train", "test") if published_split else ("train",):
            chosen = [(i, n) for i, n in enumerate(names) if not published_split or (i % 4 == 0) == (split == "test")]
            write_jsonl(
                root / f"yesno_{split}.jsonl",
                [
                    conversation(n, "<|video|>\nIs there any noise distortion?", "No" if i % 3 == 1 else "Yes")
                    for i, n in chosen
                ],
            )
            write_jsonl(
                root / f"abcd_{split}_en.jsonl",
                [
                    conversation(
                        n,
                        "<|video|>Which noise distortion is in the video? "
                        + "{" + ", ".join(f"{chr(65 + k)}:[{o}]" for k, o in enumerate(NOISE_OPTIONS)) + "}",
                        "ABC"[[1, 0, 2][i % 3]],
                    )
                    for i, n in chosen
                ],
            )
            write_jsonl(
                root / f"abcd2_{split}.jsonl",
                [
                    conversation(n, f"<video> Which dimension hurts most? {DIMENSION_OPTIONS}", "B")
                    for _, n in chosen
                ],
            )
    return root
