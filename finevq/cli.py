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


def _add_data(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="inspect or export FineVD-format label files",
        description="Work with FineVD-format label folders (what `finevq synth` writes and the release has).",
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    inspect = actions.add_parser(
        "inspect",
        help="print counts per split and question type, label distributions, unknown labels, missing videos",
    )
    inspect.add_argument("sources", nargs="+", metavar="FILES_OR_DIR")
    inspect.add_argument("--video-root", metavar="DIR", help="check that every labelled video is under DIR")
    inspect.add_argument("--json", action="store_true", help="print the summary as JSON")
    inspect.set_defaults(handler=_run_data_inspect)
    export = actions.add_parser(
        "export",
        help="write labels as parquet + dataset card that datasets.load_dataset(DIR) reads",
    )
    export.add_argument("source", metavar="SRC", help="a FineVD-format folder")
    export.add_argument("--to", required=True, metavar="DIR", help="the folder to write")
    export.add_argument("--video-root", metavar="DIR", help="where the videos are (default SRC/videos)")
    export.add_argument("--copy-videos", action="store_true", help="copy the videos into DIR/videos")
    export.add_argument("--missing", choices=("keep", "skip", "error"), default="keep", help="videos not on disk")
    export.add_argument(
        "--conversations-seed", type=int, metavar="SEED", help="also export training conversations made with SEED"
    )
    export.add_argument("--cache-dir", metavar="DIR", help="datasets cache folder (default: the HF datasets cache)")
    export.set_defaults(handler=_run_data_export)


def _run_data_inspect(args: argparse.Namespace) -> int:
    from finevq.data.inspection import format_summary, inspect_labels

    summary = inspect_labels(args.sources, video_root=args.video_root)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 1 if summary["errors"] else 0


def _run_data_export(args: argparse.Namespace) -> int:
    from finevq.data.export import export_dataset

    out = export_dataset(
        args.source,
        args.to,
        video_root=args.video_root,
        missing=args.missing,
        copy_videos=args.copy_videos,
        conversation_seed=args.conversations_seed,
        cache_dir=args.cache_dir,
    )
    print(f"wrote {out} (load it with datasets.load_dataset({str(out)!r}))")
    return 0


def _add_synth(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="generate FineVD-Synth: distorted videos with known fine-grained labels (FineVD format)",
        description="Write synthetic distorted videos with known per-dimension scores, levels, subtypes and QA "
        "files in the FineVD folder format. Same seed, same bytes; re-running resumes an interrupted run.",
    )
    parser.add_argument("--out", metavar="DIR", help="output folder (videos/, scores.csv, QA files, README.md)")
    parser.add_argument("--num-videos", type=int, default=100, metavar="N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resolution", type=int, nargs=2, default=(240, 480), metavar=("MIN", "MAX"),
                        help="short side range in pixels (default 240 480; small photos give smaller frames)")
    parser.add_argument("--fps", type=float, nargs=2, default=(24.0, 60.0), metavar=("MIN", "MAX"))
    parser.add_argument("--duration", type=float, nargs=2, default=(2.0, 10.0), metavar=("MIN", "MAX"),
                        help="seconds (default 2 10)")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N", help="cap on frames per video")
    parser.add_argument("--clean-share", type=float, default=None, metavar="F",
                        help="share of undistorted videos (default 0.15)")
    parser.add_argument("--photos", metavar="SOURCES", help="comma-separated photo sources: bundled (the default), "
                        "plasma-workspace-wallpapers, gnome-backgrounds, lomiri-wallpapers-16.04, "
                        "lomiri-wallpapers-20.04 (Debian packages), or folders of your own")
    parser.add_argument("--workers", type=int, default=1, metavar="K", help="processes (does not change the bytes)")
    parser.add_argument("--preview", metavar="PNG", help="also (or only) write a contact sheet of every subtype")
    parser.set_defaults(handler=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from finevq.errors import ConfigError

    if not args.out and not args.preview:
        raise ConfigError("finevq synth needs --out DIR (and/or --preview PNG)")
    from finevq.data.synth import SceneOptions, SynthConfig, generate, write_preview

    if args.preview:
        print(f"wrote {write_preview(args.preview, seed=args.seed)}")
    if args.out:
        photos = tuple(source.strip() for source in args.photos.split(",") if source.strip()) if args.photos else None
        scene = SceneOptions.from_ranges(args.resolution, args.fps, args.duration, args.max_frames, photos)
        chosen = {} if args.clean_share is None else {"clean_share": args.clean_share}
        config = SynthConfig(num_videos=args.num_videos, seed=args.seed, scene=scene, **chosen)
        records = generate(args.out, config, workers=args.workers)
        print(f"wrote {len(records)} videos and their labels to {args.out}")
    return 0


def _add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="DIR", help="model folder or hub id (default: the model shipped with finevq)")


def _add_score(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score",
        help="rate videos on each quality dimension and diagnose their distortions (JSONL or CSV rows)",
        description="Score videos: one row per video with per-dimension scores, levels and level probabilities, "
        "distortions and the worst dimension. A bad video gets an error row and the run goes on (exit status 1 "
        "at the end). Re-running with the same --output skips the videos already done. Under "
        "`accelerate launch -m finevq score ...` the processes share the videos and merge into one output.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="video files, folders (searched recursively) "
                        "or .txt/.list files listing paths")
    parser.add_argument("--dimensions", metavar="DIMS", help="comma-separated, e.g. color,noise,overall (default: all six)")
    parser.add_argument("--output", metavar="FILE", help="FILE.jsonl or FILE.csv (default: JSONL on standard output)")
    _add_model_option(parser)
    parser.add_argument("--batch-size", type=int, default=1, metavar="N", help="videos encoded together (default 1)")
    parser.add_argument("--workers", type=int, default=1, metavar="K", help="decoding processes (default 1; 0: none)")
    parser.add_argument("--timeline", type=float, metavar="SECONDS", help="also score windows of SECONDS (quality over time)")
    parser.add_argument("--no-diagnosis", action="store_true", help="skip the distortion questions")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    from finevq.inference.batch import ScoreJob, run_scoring

    job = ScoreJob(
        inputs=args.paths,
        output=args.output,
        model=args.model,
        dimensions=args.dimensions.split(",") if args.dimensions else None,
        diagnose=not args.no_diagnosis,
        batch_size=args.batch_size,
        workers=args.workers,
        timeline_seconds=args.timeline,
        progress=not args.quiet,
    )
    summary = run_scoring(job)
    print(f"finevq score: {summary.scored} scored, {summary.failed} failed, {summary.skipped} already done",
          file=sys.stderr)
    return 1 if summary.failed else 0


def _add_eval(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a model on a dataset split: SRCC/KRCC/PLCC per dimension and QA accuracies",
        description="Run the model over a split of a dataset and print the report the training recipe prints.",
    )
    parser.add_argument("--data", nargs="+", required=True, metavar="ARG",
                        help="LOADER SOURCE [KEY=VALUE ...]: finevd DIR, konvid_1k DIR, csv FILE video_column=... "
                        "(KEY=VALUE: the loader's options, e.g. video_root=DIR split_ratios=[4,1,1])")
    parser.add_argument("--split", default="test", help="train, validation or test (default test)")
    _add_model_option(parser)
    parser.add_argument("--output", metavar="REPORT.json", help="also write the report as JSON")
    parser.add_argument("--max-videos", type=int, metavar="N", help="evaluate the first N videos only")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from finevq.evaluation import evaluate, load_eval_rows
    from finevq.inference import FineVQ
    from finevq.metrics import format_report

    rows = load_eval_rows(args.data, args.split)
    assessor = FineVQ.from_pretrained(args.model)
    report = evaluate(assessor, rows, max_videos=args.max_videos, progress=not args.quiet)
    print(format_report(report), end="")
    if args.output:
        described = {"model": assessor.name, "data": args.data, "split": args.split, **report}
        Path(args.output).write_text(json.dumps(described, indent=2) + "\n")
    return 0


def _add_chat(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="chat about a video's quality in the terminal (answers stream)",
        description="Ask questions about a video; the conversation history carries over. "
        "An empty line, 'exit' or end of input quits; '/reset' starts a new conversation.",
    )
    parser.add_argument("video", metavar="VIDEO")
    _add_model_option(parser)
    parser.add_argument("--max-new-tokens", type=int, default=256, metavar="N")
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default)")
    parser.set_defaults(handler=_run_chat)


def _run_chat(args: argparse.Namespace) -> int:
    from finevq.inference import FineVQ

    assessor = FineVQ.from_pretrained(args.model)
    assessor.encoded(args.video)  # a bad video fails here, before the first question
    interactive = sys.stdin.isatty()
    history: list[dict] = []
    while True:
        if interactive:
            print("you> ", end="", flush=True)
        line = sys.stdin.readline()
        question = line.strip()
        if not line or question in ("", "exit", "quit"):
            return 0
        if question == "/reset":
            history = []
            continue
        history.append({"role": "user", "content": question})
        print("finevq> ", end="", flush=True)
        pieces = []
        for piece in assessor.chat(args.video, history, max_new_tokens=args.max_new_tokens, temperature=args.temperature):
            pieces.append(piece)
            print(piece, end="", flush=True)
        print(flush=True)
        history.append({"role": "assistant", "content": "".join(pieces)})


def _add_convert_official(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert-official",
        help="convert a released FineVQ checkpoint (IntMeGroup/FineVQ_*, InternVL2 layout) into a finevq model folder",
        description="Scan every tensor for NaN/Inf, merge unmerged LoRA, rewrite InternViT / InternLM2 / SlowFast "
        "into finevq's modules and write a safetensors folder with the official inference settings and a card. "
        "SRC: a local folder or a hub id.",
    )
    parser.add_argument("source", metavar="SRC", help="official checkpoint folder or hub id, e.g. IntMeGroup/FineVQ_score")
    parser.add_argument("--out", required=True, metavar="DIR", help="the folder to write")
    parser.add_argument("--repair", choices=("zero", "drop-unused"),
                        help="NaN/Inf tensors: zero sets their bad values to 0; drop-unused leaves out tensors "
                        "inference never reads (refused if a read one is affected). Default: refuse")
    parser.add_argument("--motion-frames", type=int, default=0, metavar="N",
                        help="SlowFast frames: 0 reads every frame, as the official code (default); N spreads a "
                        "budget of N (bounded memory on long videos)")
    parser.add_argument("--lora-scale", type=float, default=2.0, metavar="S", help="unmerged LoRA scale alpha/rank (default 2)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), help="weights dtype (default: the source's)")
    parser.set_defaults(handler=_run_convert_official)


def _run_convert_official(args: argparse.Namespace) -> int:
    import torch

    from finevq.modeling.official import convert_official

    dtype = getattr(torch, args.dtype) if args.dtype else None
    report = convert_official(args.source, args.out, args.repair, args.motion_frames, args.lora_scale, dtype)
    for problem in report.non_finite:
        print(f"non-finite: {problem.name}: {problem.bad_values} of {problem.total_values} values "
              f"({'read by inference' if problem.used else 'unused'})")
    for change in report.repaired:
        print(f"repair: {change}")
    print(f"read {report.tensors_read} tensors, merged {report.lora_pairs_merged} LoRA pair(s), "
          f"left out {len(report.unused_tensors)} unused; wrote {args.out} ({report.dtype})")
    return 0


_SUBCOMMANDS = (_add_probe, _add_data, _add_synth, _add_score, _add_eval, _add_chat, _add_convert_official)


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
