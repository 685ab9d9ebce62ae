"""The highest SRCC a model can reach on a FineVD-Synth split, and what caps it.

Readers of each video's record (its distortions, frame size and camera speed) compose scores and dimension
severities with the dataset's label function, scored as `finevq eval` scores a model: overall (and each
dimension) against MOS, each distortion dimension against -severity. "exact severities" knows every
distortion's subtype and severity: against MOS only the clean scores' natural spread, which no pixel shows,
caps it. "parameters (oracle)" knows each distortion's drawn parameters and infers its severity from them:
`finevq synth` draws them as severity times a random factor (noise sigma (2 + s * U(14, 26)) / 255, and so on),
so one parameter value fits several severities, and this is the best a perfect measurement of the pixels can
do, content aside. The oracle is, per subtype, gradient boosting from the drawn parameters to the severity (an
estimate of the expected severity given them), fitted on fresh draws of the generator's own samplers.
"subtypes only" knows which distortions are present and gives each the mean severity.

Each reader against -severity is also scored with its ties broken (a seeded jitter far below any real
difference): a dimension no distortion touched has severity exactly 0, a block of tied truths a reader saying
0 matches exactly, but a model's scores never tie, and then even a perfect order reaches only sqrt(1 - f^3),
f the share of videos in that block (printed per dimension; `metrics.diagnosed_scores` ties the videos a
model diagnoses as clean for this reason).

Run: python bench/synth_ceiling.py DIR [--split test] [--draws 20000] [--output F.json]"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from finevq.data.synth.distortions import DISTORTIONS, sample_severity
from finevq.data.synth.labels import dimension_scores, dimension_severities, expected_clean_scores
from finevq.data.synth.writer import RECORDS_DIR
from finevq.metrics import srcc
from finevq.taxonomy import COARSE_TYPES, DIMENSIONS

HIDDEN = {"seed", "severity"}
"""Parameters the oracle does not read: a seed says nothing about the severity, and lagging's own copy of its
severity (the chance of a stall) shows only through the stalls one clip happens to draw."""


def _flatten(params: dict, prefix: str = "") -> dict[str, float | str]:
    """A subtype's parameters as flat name -> number or category (nested dicts and lists unrolled)."""
    flat: dict[str, float | str] = {}
    for name, value in params.items():
        key = f"{prefix}{name}"
        if name in HIDDEN:
            continue
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{key}."))
        elif isinstance(value, (list, tuple)):
            flat.update(_flatten(dict(enumerate(value)), f"{key}."))
        elif isinstance(value, (bool, int, float)) or value is None:
            flat[key] = float(value) if value is not None else float("nan")
        else:
            try:
                flat[key] = float(value)
            except ValueError:
                flat[key] = str(value)
    return flat


class SeverityOracle:
    """Per subtype, the severity expected from its drawn parameters, fitted on the generator's own draws."""

    def __init__(self, draws: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self._columns: dict[str, list[str]] = {}
        self._categories: dict[str, dict[str, list[str]]] = {}
        self._fits: dict[str, HistGradientBoostingRegressor] = {}
        self.mean_severity = float(np.mean([sample_severity(rng) for _ in range(draws)]))
        for subtype, distortion in DISTORTIONS.items():
            severities = [sample_severity(rng) for _ in range(draws)]
            rows = [_flatten(distortion.sample(severity, rng)) for severity in severities]
            categories: dict[str, set[str]] = {}
            columns = set()  # a parameter no draw sets (a bit rate left to the quantiser) is no column at all
            for row in rows:
                for key, value in row.items():
                    if isinstance(value, str):
                        categories.setdefault(key, set()).add(value)
                    if isinstance(value, str) or np.isfinite(value):
                        columns.add(key)
            self._categories[subtype] = {key: sorted(values) for key, values in categories.items()}
            self._columns[subtype] = sorted(columns)
            fit = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=0)
            self._fits[subtype] = fit.fit(self._matrix(subtype, rows), severities)

    def _matrix(self, subtype: str, rows: list[dict]) -> np.ndarray:
        """Numbers as they are, categories as their index among the values the draws showed (NaN if absent)."""
        def encode(key: str, value) -> float:
            if isinstance(value, str):
                categories = self._categories[subtype].get(key, [])
                return float(categories.index(value)) if value in categories else float("nan")
            return float("nan") if value is None else float(value)

        return np.array([[encode(key, row.get(key)) for key in self._columns[subtype]] for row in rows])

    def severity(self, subtype: str, params: dict) -> float:
        estimate = self._fits[subtype].predict(self._matrix(subtype, [_flatten(params)]))[0]
        return float(np.clip(estimate, 0.0, 1.0))


def _readers(oracle: SeverityOracle) -> dict[str, Callable[[dict], list[tuple[str, float]]]]:
    """Each reader: a video record's distortions -> (subtype, severity) pairs as it sees them."""
    return {
        "exact severities": lambda record: [(d["subtype"], d["severity"]) for d in record["distortions"]],
        "parameters (oracle)": lambda record: [(d["subtype"], oracle.severity(d["subtype"], d["params"]))
                                               for d in record["distortions"]],
        "subtypes only": lambda record: [(d["subtype"], oracle.mean_severity) for d in record["distortions"]],
    }


def _severities(seen: list[list[tuple[str, float]]]) -> dict[str, list[float]]:
    """Per coarse type, each video's dimension severity from its (subtype, severity) pairs as read."""
    severities = {c: [] for c in COARSE_TYPES}
    for distortions in seen:
        for coarse, share in dimension_severities(distortions).items():
            severities[coarse].append(share)
    return severities


def _scores(values: list[float], untie: bool, rng: np.random.Generator) -> list[float]:
    """The values, or with `untie` plus a seeded jitter far below any real difference (scores as a model
    gives them: never tied)."""
    return list(np.array(values) + rng.uniform(0, 1e-7, len(values))) if untie else values


def split_records(folder: Path, split: str) -> list[dict]:
    records = [json.loads(path.read_text()) for path in sorted((folder / RECORDS_DIR).glob("*.json"))]
    return [record for record in records if record["split"] == split]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder written by finevq synth")
    parser.add_argument("--split", default="test")
    parser.add_argument("--draws", type=int, default=20000, help="draws per subtype the parameter oracle is fitted on")
    parser.add_argument("--output", help="also write the figures as JSON")
    args = parser.parse_args()
    started = time.perf_counter()
    records = split_records(args.folder, args.split)
    if not records:
        raise SystemExit(f"{args.folder}: no {args.split!r} records in {RECORDS_DIR}/")
    oracle = SeverityOracle(args.draws)
    print(f"## SRCC ceiling on the {args.split} split of {args.folder} ({len(records)} videos; parameter oracle "
          f"fitted on {args.draws} draws per subtype in {time.perf_counter() - started:.0f} s)")
    readers = _readers(oracle)
    truth = {d: [record["scores"][d] for record in records] for d in DIMENSIONS}
    severity = _severities([readers["exact severities"](record) for record in records])
    zero_share = {c: float(np.mean(np.array(severity[c]) == 0)) for c in COARSE_TYPES}
    report = {"split": args.split, "videos": len(records), "draws": args.draws, "zero_share": zero_share,
              "untied_cap": {c: float(np.sqrt(1 - f**3)) for c, f in zero_share.items()}, "vs_mos": {}, "vs_severity": {}}
    jitter = np.random.default_rng(0)
    rows_mos, rows_severity = [], []
    for reader, read in readers.items():
        seen = [read(record) for record in records]
        scores = [dimension_scores(expected_clean_scores(min(record["height"], record["width"]), record["camera_speed"]),
                                   distortions) for record, distortions in zip(records, seen)]
        severities = _severities(seen)
        report["vs_mos"][reader] = {d: srcc([row[d] for row in scores], truth[d]) for d in DIMENSIONS}
        rows_mos.append((reader, report["vs_mos"][reader]))
        for ties in ("as read", "ties broken"):
            untie = ties == "ties broken"
            row = {c: srcc(_scores([-s for s in severities[c]], untie, jitter), [-s for s in severity[c]])
                   for c in COARSE_TYPES}
            report["vs_severity"][f"{reader}, {ties}"] = row
            rows_severity.append((f"{reader}, {ties}", row))
    print(f"\nagainst MOS\n{'reader':<36} " + " ".join(f"{d:>9}" for d in DIMENSIONS))
    for name, row in rows_mos:
        print(f"{name:<36} " + " ".join(f"{row[d]:>9.3f}" for d in DIMENSIONS))
    print(f"\nagainst -severity\n{'reader':<36} " + " ".join(f"{c:>9}" for c in COARSE_TYPES))
    print(f"{'share with severity exactly 0 (f)':<36} " + " ".join(f"{zero_share[c]:>9.3f}" for c in COARSE_TYPES))
    print(f"{'untied cap sqrt(1 - f^3)':<36} " + " ".join(f"{report['untied_cap'][c]:>9.3f}" for c in COARSE_TYPES))
    for name, row in rows_severity:
        print(f"{name:<36} " + " ".join(f"{row[c]:>9.3f}" for c in COARSE_TYPES))
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
