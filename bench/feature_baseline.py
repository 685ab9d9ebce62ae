"""How much the LLM path gains or loses against a classic learner on hand-made features: natural-scene
statistics of MSCN coefficients (as BRISQUE and NIQE measure them) plus the model's own low-level statistics
(colour, sharpness, noise, blocks; frame-difference change, flicker, jitter) and, where the model reads them, its
distortion detector statistics, fed to gradient boosting, ridge and a one-hidden-layer network (scores; the network
reads the values standardised, and mapped through their training distributions to normal scores as the model's
`statistics_quantiles` does) and to gradient boosting and logistic regression (is each coarse distortion type
present, the yes/no question).

Run: python bench/feature_baseline.py --data DIR [--model DIR] [--generalisation-work DIR] [--workers N] [--cache DIR]
DIR: a FineVD-Synth folder (`finevq synth`); the learners fit its train split, and every figure is SRCC on its
test split (against MOS, and against -severity for the distortion dimensions) and, with
--generalisation-work, on the independent clips bench/generalisation.py made there (against -severity),
beside the LLM model's own SRCC on the same videos; then the accuracy of each learner's and of the model's
diagnosis (`assess`) at telling whether each coarse distortion type is present, on the same sets, and per subtype
of the test split the share of its videos each calls present. Each video's measurements are kept in --cache as they
are taken, so an interrupted or failed run resumes where it stopped."""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import QuantileTransformer, StandardScaler

from finevq.data import load_finevd
from finevq.inference import FineVQ
from finevq.metrics import accuracy, srcc
from finevq.modeling.statistics import finite_statistics, mscn_statistics
from finevq.taxonomy import COARSE_TYPES, DIMENSIONS, NO_DISTORTION


def video_features(model: FineVQ, sample) -> np.ndarray:
    """One vector per video sample: the mean and spread over keyframes of the MSCN statistics and of
    the processor's other frame statistics (on the decoded keyframes, before the model's resize; a
    processor with nss_statistics measures the MSCN ones itself), the clip statistics and, for a model
    that reads them, the distortion detector statistics."""
    tensors = model.processor.video_tensors(sample)
    per_frame = tensors["frame_statistics"]
    if not model.processor.settings.nss_statistics:
        luma = torch.from_numpy(sample.keyframes).float().div(255) @ torch.tensor([0.299, 0.587, 0.114])
        per_frame = torch.cat([mscn_statistics(luma), per_frame], dim=1)
    per_video = [tensors["clip_statistics"].flatten(), tensors.get("detector_statistics", torch.zeros(0))]
    return torch.cat([per_frame.mean(0), per_frame.std(0), *per_video]).numpy()


def _network() -> MLPRegressor:
    """As wide as the tiny model's detector projector; stops when a held-out tenth stops improving."""
    return MLPRegressor(hidden_layer_sizes=(320,), alpha=1e-2, early_stopping=True, max_iter=200, random_state=0)


def learners() -> dict:
    return {
        "gradient boosting": lambda: HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=0),
        "ridge": lambda: make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))),
        "network": lambda: make_pipeline(StandardScaler(), _network()),
        "network, normal scores": lambda: make_pipeline(
            QuantileTransformer(n_quantiles=128, output_distribution="normal", random_state=0), _network()),
    }


def presence_learners() -> dict:
    return {
        "gradient boosting": lambda: HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=0),
        "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
    }


def _present(split, coarse: str) -> list[bool]:
    """Whether each video of a FineVD-Synth split carries a distortion of the coarse type."""
    return [subtype != NO_DISTORTION for subtype in split[f"subtype_{coarse}"]]


_worker_model: FineVQ | None = None
_worker_cache: Path | None = None


def _start_worker(model_name: str | None, cache: str) -> None:
    global _worker_model, _worker_cache
    torch.set_num_threads(1)  # one core a worker: the workers, not torch's threads, share the cores
    _worker_model = FineVQ.from_pretrained(model_name)
    weights = hashlib.sha1()
    for tensor in _worker_model.model.state_dict().values():
        weights.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    # One folder per model's weights: a retrained model of the same name measures afresh.
    _worker_cache = Path(cache) / weights.hexdigest()
    _worker_cache.mkdir(parents=True, exist_ok=True)


def _cache_file(path: str) -> str:
    """The cache entry of one video; a rewritten video gets a new entry."""
    stat = os.stat(path)
    key = f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha1(key.encode()).hexdigest() + ".json"


def _video_row(job: tuple[str, bool]) -> tuple[np.ndarray, dict | None]:
    """One video's features and, when asked, the model's own assessment: its scores and which coarse distortion
    types it diagnoses as present (one pass: the model samples it once), from the cache when an earlier run
    measured them."""
    path, llm_wanted = job
    entry = _worker_cache / _cache_file(path)
    if entry.exists():
        cached = json.loads(entry.read_text())
        if cached.get("llm") is not None or not llm_wanted:
            return np.array(cached["features"]), cached.get("llm")
    sample = _worker_model.processor.sample(path)
    llm = None
    if llm_wanted:
        assessment = _worker_model.assess(sample)
        llm = {"scores": assessment.scores, "present": {t: d.present for t, d in assessment.distortions.items()}}
    features = video_features(_worker_model, sample)
    partial = entry.with_suffix(f".{os.getpid()}.part")
    partial.write_text(json.dumps({"features": features.tolist(), "llm": llm}))
    partial.replace(entry)
    return features, llm


def _features_of(pool, paths: list[str], name: str, llm_wanted: bool = True) -> tuple[np.ndarray, list[dict]]:
    """Features and, with llm_wanted, the model's own assessment of each video, in path order; the learners'
    training videos need no assessment, which costs more than the features."""
    rows, assessments = [], []
    for index, (features, llm) in enumerate(pool.imap(_video_row, [(p, llm_wanted) for p in paths])):
        rows.append(features)
        if llm_wanted:
            assessments.append(llm)
        print(f"\r{name}: {index + 1}/{len(paths)}", end="", flush=True)
    print()
    # The learners read the statistics as the model's projectors do: a few detector ratios can be infinite.
    return finite_statistics(torch.from_numpy(np.stack(rows))).numpy(), assessments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a FineVD-Synth folder")
    parser.add_argument("--model", help="the LLM model compared (default: the shipped one); its processor measures the statistics")
    parser.add_argument("--generalisation-work", help="the --work folder of a bench/generalisation.py run")
    parser.add_argument("--output", help="also write the figures as JSON")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes measuring videos")
    parser.add_argument("--cache", default="/tmp/finevq-feature-baseline", help="where each video's measurements are kept")
    args = parser.parse_args()
    started = time.perf_counter()
    model = FineVQ.from_pretrained(args.model)
    if not model.processor.settings.quality_statistics:
        raise SystemExit("the model's processor measures no quality statistics; pass a model that has them")
    splits = load_finevd(args.data, "scores")
    train, test = splits["train"], splits["test"]
    with multiprocessing.get_context("spawn").Pool(args.workers, _start_worker, (args.model, args.cache)) as pool:
        x_train, _ = _features_of(pool, [row["video"]["path"] for row in train], "train features", llm_wanted=False)
        x_test, llm_test = _features_of(pool, [row["video"]["path"] for row in test], "test features")
        score_sets = {"synth test vs MOS": (x_test, llm_test, {d: list(test[f"mos_{d}"]) for d in DIMENSIONS})}
        score_sets["synth test vs -severity"] = (x_test, llm_test, {
            d: [-v for v in test[f"severity_{d}"]] for d in COARSE_TYPES})
        presence_sets = {"synth test": (x_test, llm_test, {t: _present(test, t) for t in COARSE_TYPES})}
        if args.generalisation_work:
            work = Path(args.generalisation_work)
            labels = json.loads((work / "labels.json").read_text())
            x_real, llm_real = _features_of(pool, [str(work / label["video"]) for label in labels], "independent clips")
            score_sets["independent clips vs -severity"] = (x_real, llm_real, {
                d: [-label["severity"][d] for label in labels] for d in DIMENSIONS})
            presence_sets["independent clips"] = (x_real, llm_real, {
                t: [label["severity"][t] > 0 for label in labels] for t in COARSE_TYPES})
    report = {"model": model.name, "train_videos": len(train), "features": int(x_train.shape[1]), "srcc": {},
              "presence_accuracy": {}}
    regressors = {(d, learner): make().fit(x_train, np.array(train[f"mos_{d}"], dtype=float))
                  for d in DIMENSIONS for learner, make in learners().items()}
    for set_name, (x, llm, truths) in score_sets.items():
        print(f"\n{set_name} (SRCC)\n{'dimension':<10} {'LLM':>7} {'boosting':>9} {'ridge':>7} {'network':>8} "
              f"{'normal scores':>14}")
        table = report["srcc"][set_name] = {}
        for dimension, truth in truths.items():
            row = {"LLM": srcc([a["scores"][dimension] for a in llm], truth)}
            for learner in learners():
                row[learner] = srcc(regressors[dimension, learner].predict(x).tolist(), truth)
            table[dimension] = row
            print(f"{dimension:<10} {row['LLM']:>7.3f} {row['gradient boosting']:>9.3f} {row['ridge']:>7.3f} "
                  f"{row['network']:>8.3f} {row['network, normal scores']:>14.3f}")
    classifiers = {(t, learner): make().fit(x_train, _present(train, t))
                   for t in COARSE_TYPES for learner, make in presence_learners().items()}
    calls = {}  # (set, coarse type) -> {reader: whether it calls each video's distortion present}
    for set_name, (x, llm, truths) in presence_sets.items():
        print(f"\n{set_name}: is the distortion present (accuracy)\n"
              f"{'type':<10} {'LLM':>7} {'boosting':>9} {'logistic':>9} {'absent':>7}")
        table = report["presence_accuracy"][set_name] = {}
        for coarse, truth in truths.items():
            readers = calls[set_name, coarse] = {"LLM": [a["present"][coarse] for a in llm]} | {
                learner: classifiers[coarse, learner].predict(x).tolist() for learner in presence_learners()}
            row = {reader: accuracy(called, truth) for reader, called in readers.items()}
            row["share absent"] = 1 - float(np.mean(truth))
            table[coarse] = row
        table["mean"] = {key: float(np.mean([table[t][key] for t in truths])) for key in table[COARSE_TYPES[0]]}
        for coarse, row in table.items():
            print(f"{coarse:<10} {row['LLM']:>7.3f} {row['gradient boosting']:>9.3f} {row['logistic']:>9.3f} "
                  f"{row['share absent']:>7.3f}")
    # Which subtypes each reader misses: the share of the test videos of a subtype called present.
    print(f"\nsynth test: share called present, by subtype\n{'subtype':<30} {'n':>4} {'LLM':>6} {'boosting':>9}")
    report["called_present"] = {}
    for coarse in COARSE_TYPES:
        subtypes = np.array(test[f"subtype_{coarse}"])
        llm_present = np.array(calls["synth test", coarse]["LLM"])
        boosting_present = np.array(calls["synth test", coarse]["gradient boosting"])
        for subtype in sorted(set(subtypes)):
            chosen = subtypes == subtype
            row = report["called_present"][f"{coarse}: {subtype}"] = {
                "videos": int(chosen.sum()), "LLM": float(llm_present[chosen].mean()),
                "gradient boosting": float(boosting_present[chosen].mean())}
            print(f"{coarse + ': ' + subtype:<30} {row['videos']:>4} {row['LLM']:>6.2f} {row['gradient boosting']:>9.2f}")
    print(f"\n{len(train)} training videos, {x_train.shape[1]} features, {time.perf_counter() - started:.0f} s")
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
