"""FineVD-Synth generation: plans each video from (seed, index), renders, distorts and encodes it
atomically (resumable, parallel), then writes scores.csv, the QA files, finevd.json and a README."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from finevq.data.synth.codec import EncoderSettings, encode_to_file, vp9_options
from finevq.data.synth.content import SPLITS, Scene, SceneOptions, render, sample_scene, sample_split
from finevq.data.synth.distortions import (
    CLEAN_SHARE,
    DISTORTIONS,
    SHUFFLED_ORDER_SHARE,
    ClipContext,
    apply_distortions,
    sample_distortions,
)
from finevq.data.synth.labels import (
    SCORE_RANGE,
    clean_scores,
    describe_label_function,
    dimension_severities,
    label_video,
)
from finevq.data.synth.photos import BUNDLED, describe_sources
from finevq.errors import ConfigError
from finevq.taxonomy import COARSE_TYPES, DIMENSIONS, NO_DISTORTION, SPECIFIC_SUBTYPES, WORST_DIMENSION_GOOD

GENERATOR_VERSION = 2
"""Bumped whenever the same seed would give different videos; a folder made by another version is not resumed."""

RECORDS_DIR = "records"
CONFIG_FILE = "synth_config.json"
_DIMENSION_OPTION = {"color": "Color", "noise": "Noise", "artifact": "Artifact", "blur": "Blur",
                     "temporal": "Temporal", WORST_DIMENSION_GOOD: "Video quality is good"}
_LETTERS = "ABCDEF"


@dataclass(frozen=True)
class SynthConfig:
    """Everything that decides the bytes of a FineVD-Synth folder (the worker count does not)."""

    num_videos: int
    seed: int = 0
    scene: SceneOptions = field(default_factory=SceneOptions)
    clean_share: float = CLEAN_SHARE

    def identity(self) -> dict:
        """The settings a resumed run must share with the run that started the folder."""
        identity = {"generator_version": GENERATOR_VERSION, "seed": self.seed, "scene": asdict(self.scene),
                    "clean_share": self.clean_share}
        return json.loads(json.dumps(identity))  # as synth_config.json holds it (tuples read back as lists)


def video_name(index: int) -> str:
    return f"fvs_{index:06d}.mp4"


def final_encoder(rng: np.random.Generator) -> EncoderSettings:
    """The mild lossy encode every video gets last, as an upload does: mostly H.264, else HEVC or VP9,
    at qualities that leave a clean video clean."""
    gop = int(rng.integers(12, 121))
    codec = str(rng.choice(["libx264", "libx265", "libvpx-vp9"], p=[0.6, 0.2, 0.2]))
    if codec == "libx265":
        options = {"qp": str(int(rng.integers(14, 21))), "preset": "superfast"}
    elif codec == "libvpx-vp9":
        options = vp9_options(int(rng.integers(16, 29)))
    else:
        options = {"qp": str(int(rng.integers(12, 19))), "preset": str(rng.choice(["veryfast", "faster", "fast"]))}
    return EncoderSettings(codec, options, gop_size=gop)


def plan_video(config: SynthConfig, index: int) -> dict:
    """Everything random about video `index`, drawn from its own generator seeded by (seed, index):
    split, distortions with severities and parameters, scene, final encoder. No pixels yet."""
    rng = np.random.default_rng([config.seed, index])
    split = sample_split(rng)
    distortions = sample_distortions(rng, config.clean_share)
    moving = any(DISTORTIONS[subtype].needs_motion for subtype, _ in distortions)
    scene = sample_scene(rng, split, config.scene, moving=moving)
    parameters = [DISTORTIONS[subtype].sample(severity, rng) for subtype, severity in distortions]
    shuffled = len(distortions) > 1 and rng.uniform() < SHUFFLED_ORDER_SHARE
    if shuffled:
        order = rng.permutation(len(distortions))
        distortions, parameters = [distortions[i] for i in order], [parameters[i] for i in order]
    encoder = final_encoder(rng)
    return {
        "index": index,
        "video": video_name(index),
        "split": split,
        "content": scene.content,
        "scene": scene.to_dict(),
        "distortions": [{"subtype": s, "severity": round(v, 4), "params": p}
                        for (s, v), p in zip(distortions, parameters)],
        "shuffled_order": bool(shuffled),
        "encoder": encoder.to_dict(),
        "label_seed": int(rng.integers(0, 2**31)),
    }


def make_video(plan: dict, out_dir: Path) -> dict:
    """Render, distort and encode one planned video (written under a temporary name, then renamed),
    label it, and persist its record; returns the record."""
    scene = Scene.from_dict(plan["scene"])
    clip = render(scene)
    applied = [(d["subtype"], d["params"]) for d in plan["distortions"]]
    frames = apply_distortions(clip.frames, applied, ClipContext(clip.fps, clip.motion), plan.get("shuffled_order", False))
    target = out_dir / "videos" / plan["video"]
    temporary = target.with_name(f".{target.stem}.partial.mp4")
    encode_to_file(frames, scene.fps, EncoderSettings.from_dict(plan["encoder"]), temporary)
    os.replace(temporary, target)
    speed = float(np.hypot(*clip.motion.T).mean())
    clean = clean_scores(min(scene.width, scene.height), speed, np.random.default_rng(plan["label_seed"]))
    labels = label_video(clean, [(d["subtype"], d["severity"]) for d in plan["distortions"]])
    record = {**plan, "num_frames": int(len(frames)), "fps": float(scene.fps), "width": scene.width,
              "height": scene.height, "camera_speed": round(speed, 3), "clean_scores": clean, **asdict(labels)}
    _write_json_atomically(out_dir / RECORDS_DIR / f"{target.stem}.json", record)
    return record


def _write_json_atomically(path: Path, data: dict) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(temporary, path)


def _make_video_task(task: tuple[SynthConfig, int, str]) -> int:
    config, index, out_dir = task
    make_video(plan_video(config, index), Path(out_dir))
    return index


def _check_resumable(out_dir: Path, config: SynthConfig) -> None:
    config_path = out_dir / CONFIG_FILE
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        if previous != config.identity():
            differing = sorted(k for k in set(previous) | set(config.identity())
                               if previous.get(k) != config.identity().get(k))
            raise ConfigError(f"{out_dir} was generated with different settings ({', '.join(differing)}); "
                              f"use the same ones to resume, or a new --out folder")
    else:
        config_path.write_text(json.dumps(config.identity(), indent=1, sort_keys=True))


def _finished(out_dir: Path, index: int) -> bool:
    name = Path(video_name(index)).stem
    return (out_dir / RECORDS_DIR / f"{name}.json").exists() and (out_dir / "videos" / video_name(index)).exists()


def generate(out_dir: str | os.PathLike, config: SynthConfig, workers: int = 1, progress: bool = True) -> list[dict]:
    """Write a FineVD-format folder of `config.num_videos` synthetic videos into `out_dir`.

    Videos already finished by an earlier (interrupted) run with the same settings are kept; the
    annotation files are rewritten from all per-video records at the end. Returns the records."""
    from tqdm import tqdm

    if config.num_videos < 1:
        raise ConfigError(f"num_videos must be at least 1, got {config.num_videos}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / CONFIG_FILE).exists():
        # Writing here would overwrite the labels of whatever dataset the folder holds.
        raise ConfigError(f"--out {out} is a folder with files that FineVD-Synth did not write "
                          f"(no {CONFIG_FILE}); choose a new or empty folder")
    (out / "videos").mkdir(parents=True, exist_ok=True)
    (out / RECORDS_DIR).mkdir(exist_ok=True)
    _check_resumable(out, config)
    for stale in (out / "videos").glob(".*.partial.mp4"):
        stale.unlink()
    pending = [i for i in range(config.num_videos) if not _finished(out, i)]
    tasks = [(config, index, str(out)) for index in pending]
    bar = tqdm(total=config.num_videos, initial=config.num_videos - len(pending), unit="video",
               desc="finevq synth", disable=not progress)
    if workers > 1 and len(tasks) > 1:
        # Workers ignore Ctrl-C: the parent alone stops, and leaving the pool terminates them.
        with multiprocessing.get_context("fork").Pool(workers, initializer=signal.signal,
                                                      initargs=(signal.SIGINT, signal.SIG_IGN)) as pool:
            for _ in pool.imap_unordered(_make_video_task, tasks):
                bar.update()
    else:
        for task in tasks:
            _make_video_task(task)
            bar.update()
    bar.close()
    records = [json.loads((out / RECORDS_DIR / f"{Path(video_name(i)).stem}.json").read_text())
               for i in range(config.num_videos)]
    write_annotations(out, records, config)
    return records


def _conversation(video: str, question: str, answer: str) -> dict:
    return {"video": video, "conversations": [{"from": "human", "value": question}, {"from": "ai", "value": answer}]}


def _options_text(options: list[str]) -> str:
    return "{" + ", ".join(f"{letter}:[{text}]" for letter, text in zip(_LETTERS, options)) + "}"


def qa_items(record: dict, seed: int) -> dict[str, list[dict]]:
    """The yes/no, which-subtype and which-dimension conversations of one video, in the published
    formats (options shuffled with a generator seeded by (seed, index, 1))."""
    rng = np.random.default_rng([seed, record["index"], 1])
    video, subtypes = record["video"], record["subtypes"]
    yesno = [_conversation(video, f"Is there any {coarse} distortion in the video? Answer Yes or No.",
                           "No" if subtypes[coarse] == NO_DISTORTION else "Yes") for coarse in COARSE_TYPES]
    truth = record["main_subtype"]
    present = {s for s in subtypes.values()}
    pool = [s for s in SPECIFIC_SUBTYPES if s not in present]
    distractors = [str(x) for x in rng.choice(pool, size=3, replace=False)]
    options = ["None"] + ([] if truth == NO_DISTORTION else [truth]) + distractors
    options = [options[i] for i in rng.permutation(len(options))]
    answer_text = "None" if truth == NO_DISTORTION else truth
    subtype_question = ("Which distortion affects the quality of this video the most? Choose one option: "
                        + _options_text(options))
    worst = record["worst_dimension"]
    others = [d for d in _DIMENSION_OPTION if d != worst]
    dims = [worst] + [str(x) for x in rng.choice(others, size=3, replace=False)]
    dims = [dims[i] for i in rng.permutation(len(dims))]
    dimension_question = ("Which aspect hurts the quality of this video the most? Choose one option: "
                          + _options_text([_DIMENSION_OPTION[d] for d in dims]))
    return {
        "yesno": yesno,
        "abcd": [_conversation(video, subtype_question, _LETTERS[options.index(answer_text)])],
        "abcd2": [_conversation(video, dimension_question, _LETTERS[dims.index(worst)])],
    }


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    with temporary.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(temporary, path)


def write_annotations(out_dir: Path, records: list[dict], config: SynthConfig) -> None:
    """scores.csv, yesno/abcd/abcd2 files per split, finevd.json and README.md from the records."""
    columns = ["video", "split", *DIMENSIONS, *(f"subtype_{c}" for c in COARSE_TYPES),
               *(f"severity_{c}" for c in COARSE_TYPES), "content", "worst_dimension", "severities"]
    temporary = out_dir / ".scores.csv.partial"
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for record in records:
            applied = [(d["subtype"], d["severity"]) for d in record["distortions"]]
            severities = ";".join(f"{subtype}:{severity:.2f}" for subtype, severity in applied)
            per_dimension = dimension_severities(applied)
            writer.writerow([record["video"], record["split"], *(f"{record['scores'][d]:.3f}" for d in DIMENSIONS),
                             *(record["subtypes"][c] for c in COARSE_TYPES),
                             *(f"{per_dimension[c]:.4f}" for c in COARSE_TYPES), record["content"],
                             record["worst_dimension"], severities])
    os.replace(temporary, out_dir / "scores.csv")
    for split in SPLITS:
        items = [qa_items(r, config.seed) for r in records if r["split"] == split]
        if not items:
            continue
        _write_jsonl(out_dir / f"yesno_{split}.jsonl", [c for item in items for c in item["yesno"]])
        _write_jsonl(out_dir / f"abcd_{split}_en.jsonl", [c for item in items for c in item["abcd"]])
        _write_jsonl(out_dir / f"abcd2_{split}.jsonl", [c for item in items for c in item["abcd2"]])
    meta = {"name": "FineVD-Synth", "score_range": list(SCORE_RANGE), "seed": config.seed,
            "num_videos": len(records), "generator_version": GENERATOR_VERSION,
            "splits": {s: sum(r["split"] == s for r in records) for s in SPLITS}}
    _write_json_atomically(out_dir / "finevd.json", meta)
    (out_dir / "README.md").write_text(readme_text(records, config), encoding="utf-8")


def readme_text(records: list[dict], config: SynthConfig) -> str:
    """The generated folder's README: how it was made, content per split, distortions, label function."""
    counts = {s: sum(r["split"] == s for r in records) for s in SPLITS}
    content_rows = []
    for split in SPLITS:
        contents: dict[str, int] = {}
        for record in records:
            if record["split"] == split:
                contents[record["content"]] = contents.get(record["content"], 0) + 1
        listed = ", ".join(f"{name} ({n})" for name, n in sorted(contents.items())) or "-"
        content_rows.append(f"| {split} | {counts[split]} | {listed} |")
    subtype_counts = {s: 0 for s in SPECIFIC_SUBTYPES}
    for record in records:
        for distortion in record["distortions"]:
            subtype_counts[distortion["subtype"]] += 1
    clean = sum(not r["distortions"] for r in records)
    scene = config.scene
    photos = "; ".join(describe_sources(scene.photo_sources))
    photo_option = "" if scene.photo_sources == (BUNDLED,) else f" --photos {','.join(scene.photo_sources)}"
    return f"""# FineVD-Synth

Synthetic distorted videos with known fine-grained labels, in the FineVD folder format, made by
`finevq synth` (generator version {GENERATOR_VERSION}) with seed {config.seed}:

    finevq synth --out DIR --num-videos {config.num_videos} --seed {config.seed} \\
        --resolution {scene.min_side} {scene.max_side} --fps {scene.min_fps:g} {scene.max_fps:g} \\
        --duration {scene.min_duration:g} {scene.max_duration:g}{f" --max-frames {scene.max_frames}" if scene.max_frames else ""}{photo_option}

The same command writes the same bytes. Every video is planned from its own random generator
seeded by (seed, index); `records/` holds each video's full recipe (scene, camera, distortion
parameters, encoder) and labels.

## Content

Natural colour photos bundled with scikit-image, scikit-learn and matplotlib, filmed by a virtual
camera (pan, zoom, rotation, slight handheld jitter) with moving objects (patches of other photos
of the same split, bundled sprites, textured shapes), plus procedural scenes (1/f fractal colour
fields, antialiased shapes and text, tinted natural textures). Photos are held out by split, so the
validation and test splits show photos never seen in training. Photo sources: {photos}.

| split | videos | content (videos) |
|---|---|---|
{chr(10).join(content_rows)}

Clean videos: {clean} of {len(records)}. Frame sizes: short side {scene.min_side}-{scene.max_side} px (smaller
when the photo is small: clean clips are never upscaled), portrait and landscape; fps
{scene.min_fps:g}-{scene.max_fps:g}; {scene.min_duration:g}-{scene.max_duration:g} s. Final encoding: H.264 at QP 12-18
(visually lossless), single-threaded.

## Distortions

All 22 specific subtypes, at graded severities (five grades with jitter), alone or two to three at
once, each implementation's parameters randomised (kernels, noise spectra, codecs and their QP,
presets and GOPs, block sizes, waveforms). Occurrences in this folder:

{chr(10).join(f"- {s}: {n}" for s, n in subtype_counts.items())}

## Labels

{describe_label_function()}
`scores.csv` has one row per video: video, split, the six scores, `subtype_<type>` per coarse type,
`severity_<type>` per coarse type (the share of that dimension's clean score the distortions take off,
0 when none touches it: it ranks videos without the clean spread), and the extra columns `content`, `worst_dimension`, `severities` (subtype:severity of each distortion). The QA files
(`yesno_*`, `abcd_*_en`, `abcd2_*`) follow the published conversation format.
"""
