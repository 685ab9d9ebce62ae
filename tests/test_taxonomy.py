"""The vocabulary: canonical names, every published alias, level binning and Q-Align scores."""

import pytest

from finevq import taxonomy as tx
from finevq.errors import LabelError

PUBLISHED = {
    # Chinese -> canonical, English as published -> canonical (finevq.md table)
    "饱和度过低": "low saturation", "饱和度过高": "high saturation", "过暗": "over dark",
    "过亮": "over bright", "对比度不足": "low contrast", "对比度过高": "high contrast",
    "其他色彩失真": "other color distortion", "高斯噪声": "gaussian noise", "脉冲噪声": "pulse noise",
    "条纹噪声": "stripe noise", "其他噪声": "other noise", "压缩伪影": "compression artifact",
    "块效应": "square artifact", "振铃效应": "ring artifact", "摩尔纹": "moire pattern",
    "其他伪影": "other artifact", "分辨率模糊": "resolution blur", "拍摄系统模糊": "shooting-system blur",
    "压缩模糊": "compression blur", "运动模糊": "motion blur", "曝光模糊": "exposure blur",
    "高斯模糊": "gaussian blur", "其他模糊": "other blur", "抖动": "shaking", "卡顿": "lagging",
    "频闪": "flickering", "其他时序失真": "other temporal distortion",
    "low contrast ratio": "low contrast", "high contrast ratio": "high contrast",
    "gussian noise": "gaussian noise", "sqaure artifact": "square artifact",
    "shooting system blur": "shooting-system blur", "guassian blur": "gaussian blur",
    "other tempporal distortion": "other temporal distortion", "None": "none",
}


def test_counts_match_the_paper():
    assert len(tx.DIMENSIONS) == 6 and len(tx.LEVELS) == 5 and len(tx.COARSE_TYPES) == 5
    assert len(tx.ALL_SUBTYPES) == 27 and len(tx.SPECIFIC_SUBTYPES) == 22
    assert [len(tx.SUBTYPES[t]) for t in tx.COARSE_TYPES] == [7, 4, 5, 7, 4]


@pytest.mark.parametrize("published,canonical", sorted(PUBLISHED.items()))
def test_every_published_spelling_maps_to_its_canonical_name(published, canonical):
    assert tx.canonical_subtype(published) == canonical


def test_bom_case_and_spacing_do_not_matter():
    assert tx.canonical_subtype("\ufeffGaussian_Noise ") == "gaussian noise"
    assert tx.canonical_dimension("Video quality is good") == tx.WORST_DIMENSION_GOOD
    assert tx.canonical_dimension("Temporal") == "temporal"


def test_unknown_labels_are_errors_that_list_them():
    with pytest.raises(LabelError, match="purple haze"):
        tx.canonical_subtype("purple haze")
    with pytest.raises(LabelError, match=r"\['bogus', 'weird'\]"):
        tx.canonical_labels(["motion blur", "weird", "bogus"])


def test_level_binning_is_equal_width_best_first():
    levels = [tx.mos_to_level(m, 0, 100) for m in (0, 19.9, 20, 45, 60, 80, 100, -8.6, 120)]
    assert levels == ["bad", "bad", "poor", "fair", "good", "excellent", "excellent", "bad", "excellent"]
    with pytest.raises(LabelError):
        tx.mos_to_level(float("nan"), 0, 100)
    with pytest.raises(LabelError):
        tx.mos_to_level(5, 1, 1)


def test_qalign_score_weights():
    assert tx.level_score([1, 0, 0, 0, 0]) == 1.0
    assert tx.level_score([0, 0, 0, 0, 1]) == 0.0
    assert tx.level_score([0.2] * 5) == pytest.approx(0.5)


def test_coarse_type_of_subtype():
    assert tx.coarse_type_of("sqaure artifact") == "artifact"
    assert tx.coarse_type_of("lagging") == "temporal"
    with pytest.raises(LabelError):
        tx.coarse_type_of("None")
