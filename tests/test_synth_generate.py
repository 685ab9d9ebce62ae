"""`finevq synth` end to end on tiny videos: same seed gives the same bytes, an interrupted run
resumes, `load_finevd` reads the folder, the videos decode with the labelled size and frame count,
and `--preview` writes a contact sheet."""

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from finevq.cli import main
from finevq.data.synth import SceneOptions, SynthConfig, generate
from finevq.data.synth.codec import decode_bytes
from finevq.data.synth.labels import IMPACT
from finevq.errors import ConfigError
from finevq.taxonomy import COARSE_TYPES, LEVELS, QUESTION_TYPES, mos_to_level

TINY = SceneOptions(min_side=64, max_side=96, max_frames=6)
CONFIG = SynthConfig(num_videos=8, seed=3, scene=TINY)


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "a"
    generate(out, CONFIG, progress=False)
    return out


def test_same_seed_same_bytes_with_two_workers_and_resume(folder, tmp_path):
    again = tmp_path / "b"
    generate(again, CONFIG, workers=2, progress=False)
    assert digest(again) == digest(folder)
    # An interrupted run: one video and its record missing, another half-written under its temporary name.
    (again / "videos" / "fvs_000005.mp4").unlink()
    (again / "records" / "fvs_000005.json").unlink()
    (again / "records" / "fvs_000006.json").unlink()
    (again / "videos" / ".fvs_000007.partial.mp4").write_bytes(b"half")
    untouched = (again / "videos" / "fvs_000001.mp4").stat().st_mtime_ns
    generate(again, CONFIG, progress=False)
    assert digest(again) == digest(folder)
    assert (again / "videos" / "fvs_000001.mp4").stat().st_mtime_ns == untouched, "finished videos are skipped"
    other_seed = tmp_path / "c"
    generate(other_seed, SynthConfig(num_videos=2, seed=4, scene=TINY), progress=False)
    assert digest(other_seed)["videos/fvs_000000.mp4"] != digest(folder)["videos/fvs_000000.mp4"]


def test_resuming_with_other_settings_or_into_a_file_is_refused(folder, tmp_path):
    with pytest.raises(ConfigError, match="seed"):
        generate(folder, SynthConfig(num_videos=8, seed=99, scene=TINY), progress=False)
    with pytest.raises(ConfigError, match="num_videos"):
        generate(tmp_path / "none", SynthConfig(num_videos=0, seed=3, scene=TINY), progress=False)
    with pytest.raises(ConfigError, match="--resolution"):
        SceneOptions(min_side=300, max_side=200)
    with pytest.raises(ConfigError, match="--fps"):
        SceneOptions(min_fps=0, max_fps=30)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        generate(tmp_path / "file", CONFIG, progress=False)
    dataset = tmp_path / "my_finevd"
    dataset.mkdir()
    (dataset / "scores.csv").write_text("video,overall\na.mp4,50\n")
    with pytest.raises(ConfigError, match="files that FineVD-Synth did not write"):
        generate(dataset, CONFIG, progress=False)
    assert sorted(p.name for p in dataset.iterdir()) == ["scores.csv"]
    assert (dataset / "scores.csv").read_text() == "video,overall\na.mp4,50\n"


def test_folder_contents_match_the_records(folder):
    rows = (folder / "scores.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[:13] == ["video", "split", "color", "noise", "artifact", "blur", "temporal", "overall",
                           *(f"subtype_{c}" for c in COARSE_TYPES)]
    assert "content" in header and len(rows) == 9
    meta = json.loads((folder / "finevd.json").read_text())
    assert meta["score_range"] == [0, 100] or meta["score_range"] == [0.0, 100.0]
    readme = (folder / "README.md").read_text()
    assert "finevq synth" in readme and "impact" in readme and "chelsea (test)" in readme
    for record_path in sorted((folder / "records").glob("*.json")):
        record = json.loads(record_path.read_text())
        frames = decode_bytes((folder / "videos" / record["video"]).read_bytes())
        assert frames.shape == (record["num_frames"], record["height"], record["width"], 3)
        assert record["levels"]["overall"] == mos_to_level(record["scores"]["overall"], 0, 100)
        assert record["num_frames"] <= 6 and min(record["width"], record["height"]) <= 96
    from finevq.video import probe, sample_video

    record = json.loads((folder / "records" / "fvs_000000.json").read_text())
    info = probe(folder / "videos" / "fvs_000000.mp4")
    assert (info.num_frames, info.width, info.height) == (record["num_frames"], record["width"], record["height"])
    assert abs(info.fps - record["fps"]) < 0.01
    sample = sample_video(folder / "videos" / "fvs_000000.mp4", num_keyframes=4, num_motion_frames=4)
    assert sample.keyframes.shape == (4, record["height"], record["width"], 3)
    qa = (folder / "yesno_train.jsonl").read_text().splitlines()
    assert qa and all(json.loads(line)["conversations"][1]["value"] in ("Yes", "No") for line in qa)


def test_load_finevd_reads_the_folder_unchanged(folder):
    from finevq.data import load_finevd

    scores = load_finevd(folder, cache_dir=tempfile.mkdtemp())
    records = [json.loads(p.read_text()) for p in sorted((folder / "records").glob("*.json"))]
    assert sum(len(scores[split]) for split in scores) == len(records)
    by_name = {r["video"]: r for r in records}
    for split in scores:
        for row in scores[split]:
            record = by_name[row["name"]]
            assert record["split"] == split
            assert abs(row["mos_overall"] - record["scores"]["overall"]) < 1e-2
            assert LEVELS[row["level_overall"]] == record["levels"]["overall"]
            assert all(row[f"subtype_{c}"] == record["subtypes"][c] for c in COARSE_TYPES)
            for coarse in COARSE_TYPES:  # severity 0 exactly where no distortion touches the dimension
                touched = any(coarse in IMPACT[d["subtype"]] for d in record["distortions"])
                assert (row[f"severity_{coarse}"] > 0) == touched
                lost = 1 - record["scores"][coarse] / record["clean_scores"][coarse]
                assert row[f"severity_{coarse}"] == pytest.approx(lost, abs=2e-4)
    qa = load_finevd(folder, config="qa", cache_dir=tempfile.mkdtemp())
    types = {row["question_type"] for split in qa for row in qa[split]}
    assert types == set(QUESTION_TYPES) - {"score"}, "yes/no, which-subtype and which-dimension questions"


def test_cli_writes_folder_and_preview(tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    code = main(["synth", "--out", str(tmp_path / "cli"), "--num-videos", "2", "--seed", "1", "--resolution", "64",
                 "80", "--duration", "0.2", "0.3", "--preview", str(sheet)])
    assert code == 0
    assert len(list((tmp_path / "cli" / "videos").glob("*.mp4"))) == 2
    image = np.asarray(Image.open(sheet))
    assert image.shape[0] > 22 * 100 and image.std() > 20
    assert main(["synth"]) == 2
    assert "needs --out" in capsys.readouterr().err


def test_plans_shuffle_some_distortion_orders_and_vary_the_final_mild_encode():
    from fractions import Fraction

    from finevq.data.synth.codec import EncoderSettings, round_trip
    from finevq.data.synth.writer import plan_video

    plans = [plan_video(SynthConfig(num_videos=400, seed=5, scene=TINY), index) for index in range(400)]
    several = [p for p in plans if len(p["distortions"]) > 1]
    shuffled = [p for p in several if p["shuffled_order"]]
    assert 0.1 < len(shuffled) / len(several) < 0.4
    assert not any(p["shuffled_order"] for p in plans if len(p["distortions"]) <= 1)
    assert {p["encoder"]["codec"] for p in plans} == {"libx264", "libx265", "libvpx-vp9"}
    rng = np.random.default_rng(0)
    ramp = np.linspace(40, 200, 96)[None, None, :, None] + np.linspace(0, 30, 64)[None, :, None, None]
    frames = np.clip(ramp + rng.normal(0, 4, (8, 64, 96, 3)), 0, 255).astype(np.uint8)
    worst = {"libx264": "18", "libx265": "20", "libvpx-vp9": "28"}
    checked = set()
    for plan in plans:
        settings = EncoderSettings.from_dict(plan["encoder"])
        if settings.codec in checked or settings.options.get("qp", settings.options.get("crf")) != worst[settings.codec]:
            continue
        error = round_trip(frames, Fraction(25), settings).astype(float) - frames
        assert 10 * np.log10(255**2 / (error**2).mean()) > 32, settings  # a clean video stays clean
        checked.add(settings.codec)
    assert checked == set(worst)
