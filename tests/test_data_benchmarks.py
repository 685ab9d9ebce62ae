"""Benchmark loaders on small label files in each published format (KoNViD-1k CSVs, LIVE-VQC .mat,
YouTube-UGC xlsx, LSVQ CSVs, LIVE-YT-Gaming CSV/.mat, a generic CSV) with placeholder videos."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from openpyxl import Workbook

from finevq.data import load_benchmark, load_report
from finevq.data.splits import random_protocol_split
from finevq.errors import ConfigError, LabelError
from finevq.taxonomy import LEVELS, mos_to_level


def touch(folder, *names):
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")


def all_rows(data):
    return {row["name"]: (split, row) for split, rows in data.items() for row in rows}


def test_konvid_quoted_crlf_csv_with_nominal_scale_levels(tmp_path):
    ids = [3337642103 + i for i in range(10)]
    lines = ['"flickr_id","mos"'] + [f'"{i}","{1.22 + 0.3 * k:.2f}"' for k, i in enumerate(ids)]
    (tmp_path / "KoNViD_1k_mos.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    touch(tmp_path / "KoNViD_1k_videos", *(f"{i}.mp4" for i in ids[:-1]))
    data = load_benchmark("konvid_1k", tmp_path, cache_dir=tmp_path / "cache")
    rows = all_rows(data)
    assert len(rows) == 9 and load_report(data)["missing_videos"] == [f"{ids[-1]}.mp4"]
    split, row = rows[f"{ids[3]}.mp4"]
    assert row["mos_overall"] == pytest.approx(2.12) and row["mos_noise"] is None and row["level_noise"] is None
    assert LEVELS[row["level_overall"]] == mos_to_level(2.12, 1.0, 5.0)
    assert row["level_ranges"]["overall"] == [1.0, 5.0] and row["source"] == "konvid_1k"
    assert set(data) == {"train", "validation", "test"}


def test_konvid_attributes_file_resolves_legacy_names(tmp_path):
    (tmp_path / "KoNViD_1k_attributes.csv").write_text(
        "flickr_id,file_name,MOS\n"
        "3337642103.0,3337642103_original_centercrop_960x540_8s.mp4,3.5\n"
        "4000000000,4000000000_cut_centercrop_960x540_8s.mp4,2.5\n"
    )
    touch(tmp_path / "KoNViD_1k_videos", "3337642103_original_centercrop_960x540_8s.mp4", "4000000000.mp4")
    rows = all_rows(load_benchmark("konvid_1k", tmp_path, cache_dir=tmp_path / "cache", missing="error"))
    assert rows["3337642103.mp4"][1]["video"]["path"].endswith("3337642103_original_centercrop_960x540_8s.mp4")
    assert rows["4000000000.mp4"][1]["video"]["path"].endswith("/4000000000.mp4")


@pytest.mark.parametrize("shape", ["row", "column"])
def test_live_vqc_mat_in_either_orientation(tmp_path, shape):
    names = [f"A{i:03d}.mp4" for i in range(1, 6)]
    cell = np.empty((1, 5) if shape == "row" else (5, 1), dtype=object)
    for i, name in enumerate(names):
        cell.flat[i] = name
    mos = np.array([6.2, 30.0, 50.0, 75.5, 94.3])
    scipy.io.savemat(tmp_path / "data.mat", {"video_list": cell, "mos": mos.reshape(cell.shape)})
    touch(tmp_path / "Video", *names)
    rows = all_rows(load_benchmark("live_vqc", tmp_path, cache_dir=tmp_path / "cache"))
    assert {n: r["mos_overall"] for n, (_, r) in rows.items()} == dict(zip(names, mos.tolist()))
    assert LEVELS[rows["A005.mp4"][1]["level_overall"]] == "excellent"


def test_youtube_ugc_xlsx_skips_unrated_and_accepts_originals(tmp_path):
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "MOS"
    sheet.append(["vid", "category", "resolution", "MOS full", "MOS chunk00"])
    for i in range(6):
        sheet.append([f"Gaming_720P-{i:04x}", "Gaming", 720, None if i == 5 else 1.5 + i * 0.5, 3.0])
    workbook.save(tmp_path / "original_videos_MOS_for_YouTube_UGC_dataset.xlsx")
    h264_copies = [f"Gaming_720P-{i:04x}_crf_10_ss_00_t_20.0.mp4" for i in range(4)]
    touch(tmp_path / "videos", *h264_copies, "Gaming_720P-0004.mkv")
    rows = all_rows(load_benchmark("youtube_ugc", tmp_path, cache_dir=tmp_path / "cache", missing="error"))
    assert len(rows) == 5
    assert rows["Gaming_720P-0004_crf_10_ss_00_t_20.0.mp4"][1]["video"]["path"].endswith("Gaming_720P-0004.mkv")
    assert rows["Gaming_720P-0001_crf_10_ss_00_t_20.0.mp4"][1]["mos_overall"] == 2.0


def test_lsvq_official_split_with_1080p_test_and_float_booleans(tmp_path):
    lines = ["name,p1,mos,is_test"] + [
        f"yfcc-batch1/{i},x,{40 + i},{['True', 'False', '1.0', '0.0', 'false'][i % 5]}" for i in range(20)
    ]
    (tmp_path / "labels_train_test.csv").write_text("\n".join(lines))
    (tmp_path / "labels_test_1080p.csv").write_text("name,mos\nyt-1080/1,60\nyt-1080/2,70,extra\nyt-1080/3\n")
    touch(tmp_path / "videos", *(f"yfcc-batch1/{i}.mp4" for i in range(20)), "yt-1080/1.mp4", "yt-1080/2.mp4")
    data = load_benchmark("lsvq", tmp_path, cache_dir=tmp_path / "cache")
    sizes = {split: len(rows) for split, rows in data.items()}
    assert sizes == {"train": 10, "validation": 2, "test": 8, "test_1080p": 2}
    tested = {int(n.split("/")[1][:-4]) for n in data["test"]["name"]}
    assert tested == {i for i in range(20) if i % 5 in (0, 2)}
    with pytest.raises(ConfigError, match="unknown split protocol"):
        load_benchmark("lsvq", tmp_path, protocol="kfold", cache_dir=tmp_path / "cache")


def test_live_yt_gaming_csv_and_mat_add_the_extension(tmp_path):
    (tmp_path / "LIVE-YT-Gaming_mos.csv").write_text(
        "File,MOS,width,height\nFortnite-001,55.5,1920,1080\nLoL-002,20,1280,720\n"
    )
    touch(tmp_path / "videos", "Fortnite-001.mp4", "LoL-002.mp4")
    rows = all_rows(load_benchmark("live_yt_gaming", tmp_path, cache_dir=tmp_path / "cache", missing="error"))
    assert sorted(rows) == ["Fortnite-001.mp4", "LoL-002.mp4"]
    mat = tmp_path / "gaming.mat"
    names = np.array(["Fortnite-001", "LoL-002"], dtype=object).reshape(2, 1)
    scipy.io.savemat(mat, {"video_list": names, "MOS": np.array([[55.5, 20.0]])})
    loaded = load_benchmark("live_yt_gaming", mat, video_root=tmp_path / "videos", cache_dir=tmp_path / "cache")
    from_mat = all_rows(loaded)
    assert {n: r["mos_overall"] for n, (_, r) in from_mat.items()} == {"Fortnite-001.mp4": 55.5, "LoL-002.mp4": 20.0}


def test_generic_csv_random_protocol_follows_the_seeded_split(tmp_path):
    names = [f"clip{i}.mp4" for i in range(30)]
    (tmp_path / "my.csv").write_text("path,x\n" + "".join(f"{n},{i * 3.0}\n" for i, n in enumerate(names)))
    touch(tmp_path, *names)
    columns = {"video_column": "path", "mos_column": "x", "cache_dir": tmp_path / "cache"}
    data = load_benchmark("csv", tmp_path / "my.csv", split_index=4, **columns)
    expected = random_protocol_split(names, 4)
    assert {n: s for n, (s, _) in all_rows(data).items()} == expected
    assert data["train"][0]["level_ranges"]["overall"] == [0.0, 87.0]  # min/max rule for a generic CSV
    other = load_benchmark("csv", tmp_path / "my.csv", split_index=5, **columns)
    assert set(other["test"]["name"]) != set(data["test"]["name"])


def test_generic_csv_with_split_column_uses_it_and_errors_are_clear(tmp_path):
    rows = [f"{name}.mp4,{i},{'test' if name == 'c' else 'train'}" for i, name in enumerate("abcde", start=1)]
    (tmp_path / "s.csv").write_text("video,mos,subset\n" + "\n".join(rows) + "\n")
    touch(tmp_path, "a.mp4", "b.mp4", "c.mp4", "d.mp4", "e.mp4")
    data = load_benchmark("csv", tmp_path / "s.csv", split_column="subset", cache_dir=tmp_path / "cache")
    assert data["test"]["name"] == ["c.mp4"] and len(data["validation"]) == 1
    with pytest.raises(LabelError, match="no column score"):
        load_benchmark("csv", tmp_path / "s.csv", mos_column="score", cache_dir=tmp_path / "cache")
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "KoNViD_1k_mos.csv").write_text("flickr_id,mos\n1,2\n")
    with pytest.raises(ConfigError, match="konvid_1k has no official split"):
        load_benchmark("konvid_1k", tmp_path / "k", protocol="official", cache_dir=tmp_path / "cache")
    with pytest.raises(ConfigError, match="unknown benchmark"):
        load_benchmark("kinetics", tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(LabelError, match="no KoNViD-1k label file"):
        load_benchmark("konvid_1k", tmp_path, cache_dir=tmp_path / "cache")
