"""Export of FineVD-format labels as a Hub-ready dataset folder: parquet files per config and split, and a
README.md dataset card whose YAML declares the configs, so plain `datasets.load_dataset(DIR)` reads it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import datasets
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData
from tqdm.auto import tqdm

from finevq.data.builder import load_report
from finevq.data.finevd import load_finevd
from finevq.data.folder import finevd_files
from finevq.data.formats import is_conversation_file
from finevq.data.instructions import build_conversations
from finevq.errors import FineVQError

VIDEO_FOLDER = "videos"

_CARD_TEXT = """
# {title}

Fine-grained video quality labels in the FineVD format, exported by `finevq data export`.

- `scores`: one row per video: MOS and level (`excellent` ... `bad`) of the six dimensions color, noise,
  artifact, blur, temporal, overall; the distortion subtype present per coarse type (`none` if none);
  `level_ranges`: the MOS range each dimension's five equal-width level bins span.
- `qa`: one row per published question (yes/no, which subtype, which dimension, score), with the
  options, the answer as published and its canonical label.
{conversations_line}
The `video` column holds paths relative to this folder (`{videos}/<name>`); {videos_note}

```python
from datasets import load_dataset
scores = load_dataset("path/or/hub-id")          # default config: scores
qa = load_dataset("path/or/hub-id", "qa")
```
"""


def _exportable(dataset: datasets.Dataset) -> datasets.Dataset:
    """The split with `video` as a plain relative path string, first column."""
    videos = [f"{VIDEO_FOLDER}/{name}" for name in dataset["name"]]
    dataset = dataset.remove_columns("video").add_column("video", videos)
    return dataset.select_columns(["video", *[c for c in dataset.column_names if c != "video"]])


def _copy_videos(scores: datasets.DatasetDict, out_dir: Path) -> int:
    copied = 0
    rows = [(name, path["path"]) for split in scores.values() for name, path in zip(split["name"], split["video"])]
    for name, source in tqdm(rows, desc="copying videos", unit="video"):
        target = out_dir / VIDEO_FOLDER / name
        if not os.path.isfile(source) or (target.is_file() and target.stat().st_size == os.path.getsize(source)):
            continue  # missing on disk, or already copied by an interrupted earlier run
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        copied += 1
    return copied


def export_dataset(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    video_root: str | os.PathLike | None = None,
    missing: str = "keep",
    copy_videos: bool = False,
    conversation_seed: int | None = None,
    title: str = "FineVD labels",
    cache_dir: str | os.PathLike | None = None,
    **finevd_options,
) -> Path:
    """Write `source` (a FineVD-format folder or label files) to `out_dir` as parquet + dataset card.

    Configs: `scores`, `qa` when there are published questions, and `conversations` (training
    conversations built with `conversation_seed`) when a seed is given. `copy_videos` copies the
    videos into `out_dir/videos` (resumable: files already there are kept). Returns `out_dir`."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / "README.md").is_file():
        raise FineVQError(f"export folder {out} exists and is not an earlier export; choose an empty folder")
    options = {"video_root": video_root, "missing": missing, "cache_dir": cache_dir, **finevd_options}
    configs = {"scores": load_finevd(source, "scores", **options)}
    if any(path.suffix == ".jsonl" and is_conversation_file(path) for path in finevd_files(source)):
        configs["qa"] = load_finevd(source, "qa", **options)
    if conversation_seed is not None:
        configs["conversations"] = build_conversations(configs["scores"], seed=conversation_seed)
    card_data = DatasetCardData()
    infos, metadata = {}, {}
    for name, dataset_dict in configs.items():
        splits = datasets.SplitDict()
        for split, dataset in dataset_dict.items():
            exported = _exportable(dataset)
            exported.to_parquet(str(out / name / f"{split}-00000-of-00001.parquet"))
            splits.add(datasets.SplitInfo(name=split, num_examples=len(exported)))
        infos[name] = datasets.DatasetInfo(features=exported.features, splits=splits, config_name=name)
        metadata[name] = {
            "data_files": [{"split": split, "path": f"{name}/{split}-*.parquet"} for split in dataset_dict],
            **({"default": True} if name == "scores" else {}),
        }
    DatasetInfosDict(infos).to_dataset_card_data(card_data)
    MetadataConfigs(metadata).to_dataset_card_data(card_data)
    copied = _copy_videos(configs["scores"], out) if copy_videos else 0
    report = load_report(configs["scores"])
    videos_note = f"{copied} videos were copied there." if copy_videos else "videos are not included: put them there."
    if report["missing_videos"]:
        videos_note += f" {len(report['missing_videos'])} labelled videos were not on disk when exported."
    conversations_line = (
        f"- `conversations`: training conversations (seed {conversation_seed}) as user/assistant turns.\n"
        if "conversations" in configs
        else ""
    )
    text = _CARD_TEXT.format(
        title=title, conversations_line=conversations_line, videos=VIDEO_FOLDER, videos_note=videos_note
    )
    DatasetCard(f"---\n{card_data.to_yaml()}\n---\n{text}").save(str(out / "README.md"))
    return out
