"""Typed configs: YAML files and `--set` overrides into nested dataclasses, type checks, clear errors
naming the file and the key, `__post_init__` validation, and YAML that round-trips."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest
import yaml

from finevq.config import config_to_dict, load_config, save_config
from finevq.errors import ConfigError


@dataclass
class Lora:
    rank: int = 8
    alpha: float = 16.0
    targets: list[str] = field(default_factory=lambda: ["qkv", "o"])


@dataclass
class Model:
    backbone: Literal["tiny", "internvl"] = "tiny"
    base_path: Optional[str] = None
    lora: Lora = field(default_factory=Lora)
    vision_lora: Lora | None = None


@dataclass
class Training:
    lr: float = 4e-5
    epochs: int = 1
    bf16: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    frame_sizes: tuple[int, ...] = (224,)
    loss_weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


@dataclass
class Experiment:
    name: str
    model: Model = field(default_factory=Model)
    training: Training = field(default_factory=Training)
    output: Path = Path("runs/default")


SMOKE = """\
name: smoke
model:
  backbone: tiny
  lora:
    rank: 4
    targets: [qkv]
training:
  lr: 1e-4
  betas: [0.8, 0.95]
"""


@pytest.fixture
def smoke(tmp_path: Path) -> Path:
    path = tmp_path / "smoke.yaml"
    path.write_text(SMOKE)
    return path


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def _error(cls, path=None, overrides=()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(cls, path, overrides)
    return str(info.value)


def test_file_values_over_defaults(smoke):
    config = load_config(Experiment, smoke)
    assert config.name == "smoke"
    assert config.model.lora == Lora(rank=4, alpha=16.0, targets=["qkv"])
    assert config.training.lr == 1e-4 and isinstance(config.training.lr, float)  # PyYAML reads 1e-4 as text
    assert config.training.betas == (0.8, 0.95) and config.training.epochs == 1
    assert config.output == Path("runs/default") and config.model.vision_lora is None


def test_defaults_only_with_overrides():
    config = load_config(Experiment, overrides=["name=x", "training.epochs=3"])
    assert config == Experiment(name="x", training=Training(epochs=3))


def test_dotted_overrides_reach_every_kind_of_field(smoke):
    config = load_config(Experiment, smoke, [
        "model.lora.rank=16",
        "training.lr=2e-5",
        "training.bf16=true",
        "training.loss_weights.l1=0.5",
        "training.frame_sizes=[224, 448]",
        "model.vision_lora.rank=2",  # creates the optional section from its defaults
        "model.base_path=/models/internvl",
        "name=2025",  # a str field keeps the text, not the YAML integer
        "output=out/run1",
        "training.lr=3e-5",  # the later override wins
    ])
    assert config.model.lora.rank == 16 and config.model.lora.targets == ["qkv"]
    assert config.training.lr == 3e-5 and config.training.bf16 is True
    assert config.training.loss_weights == {"l1": 0.5}
    assert config.training.frame_sizes == (224, 448)
    assert config.model.vision_lora == Lora(rank=2)
    assert config.model.base_path == "/models/internvl" and config.name == "2025"
    assert config.output == Path("out/run1")


def test_override_with_null_and_with_a_whole_section(smoke):
    config = load_config(Experiment, smoke, ["model.base_path=null", "model.lora={rank: 32}"])
    assert config.model.base_path is None
    assert config.model.lora == Lora(rank=32)  # the mapping replaces the file's section


def test_int_field_takes_int_and_float_field_widens_int():
    config = load_config(Experiment, overrides=["name=x", "training.lr=1"])
    assert config.training.lr == 1.0 and isinstance(config.training.lr, float)


@pytest.mark.parametrize("override, message", [
    ("training.lrr=1", "override --set training.lrr=1: unknown key 'training.lrr' (did you mean 'training.lr'?)"),
    ("modle.lora.rank=4", "unknown key 'modle' (did you mean 'model'?)"),
    ("training.zzz=1", "unknown key 'training.zzz' (known keys under 'training': betas, bf16, epochs,"),
    ("training.lr=abc", "override --set training.lr=abc: key 'training.lr': expected a number, got 'abc'"),
    ("training.epochs=1.5", "key 'training.epochs': expected an integer, got 1.5"),
    ("training.epochs=true", "key 'training.epochs': expected an integer, got True"),
    ("training.bf16=maybe", "key 'training.bf16': expected true or false, got 'maybe'"),
    ("model.backbone=tiney", "key 'model.backbone': expected one of 'tiny', 'internvl' (did you mean 'tiny'?)"),
    ("training.betas=[1]", "key 'training.betas': expected a list of exactly 2 items"),
    ("training.frame_sizes=[224, big]", "key 'training.frame_sizes[1]': expected an integer, got 'big'"),
    ("model.lora.targets=qkv", "key 'model.lora.targets': expected a list"),
    ("training.loss_weights.l1=high", "key 'training.loss_weights.l1': expected a number, got 'high'"),
    ("model.lora={rnk: 3}", "override --set model.lora={rnk: 3}: unknown key 'model.lora.rnk' (did you mean"),
    ("model.lora.rank.x=1", "'model.lora.rank' holds a value of type int, it has no sub-key 'x'"),
    ("training.lr=[1", "key 'training.lr': value '[1' is not valid YAML"),
    ("training..lr=1", "empty part in key 'training..lr'"),
    ("training.lr", "override --set training.lr: expected KEY=VALUE"),
    ("training.lr=-1", "with --set training.lr=-1: section 'training': lr must be positive, got -1.0"),
])
def test_override_errors_name_the_override_and_key(smoke, override, message):
    assert message in _error(Experiment, smoke, [override])


@pytest.mark.parametrize("text, message", [
    ("name: x\nmodel:\n  lora:\n    rnak: 2\n    alpah: 3\n",
     "unknown keys 'model.lora.rnak' (did you mean 'model.lora.rank'?), 'model.lora.alpah' (did you mean"),
    ("name: x\ntraining:\n  lr: fast\n", "key 'training.lr': expected a number, got 'fast'"),
    ("name: 12\n", "key 'name': expected a string (quote it in YAML), got 12"),
    ("name: x\nmodel: tiny\n", "key 'model': expected a mapping of Model fields, got 'tiny'"),
    ("name: x\ntraining:\n  lr: 0\n", "section 'training': lr must be positive, got 0.0"),
    ("model:\n  backbone: tiny\n", "missing required key 'name'"),
    ("- name\n- x\n", "the top level must be a mapping of keys, got list"),
    ("name: x\nmodel:\n  lora: [1\n  rank: 2\n", "malformed YAML at line 4, column 7"),
    ("name: x\ntraining:\n  lr: 1\n  lr: 2\n", "malformed YAML at line 4, column 3: duplicate key 'lr' (first at line 3)"),
])
def test_file_errors_name_the_file_and_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    error = _error(Experiment, path)
    assert error.startswith(f"config file {path}: ") and message in error


def test_file_errors_for_missing_file_and_folder(tmp_path):
    assert _error(Experiment, tmp_path / "nope.yaml") == f"config file {tmp_path / 'nope.yaml'}: not found"
    assert _error(Experiment, tmp_path) == f"config file {tmp_path}: is a directory"
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    assert "not UTF-8 text" in _error(Experiment, binary)


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(Lora, _write(tmp_path, "")) == Lora()


def test_error_points_at_the_override_when_it_replaced_the_file_value(smoke):
    assert _error(Experiment, smoke, ["training={lr: slow}"]).startswith("override --set training={lr: slow}: ")


def test_save_and_load_round_trip(tmp_path, smoke):
    config = load_config(Experiment, smoke, ["model.vision_lora.rank=2", "training.loss_weights.l1=0.25",
                                             "training.lr=1e-10", "name=007", "output=out/a b"])
    path = tmp_path / "nested" / "saved.yaml"
    save_config(config, path)
    assert load_config(Experiment, path) == config
    data = yaml.safe_load(path.read_text())
    assert data == config_to_dict(config)
    assert data["training"]["betas"] == [0.8, 0.95] and data["output"] == "out/a b" and data["name"] == "007"
    assert list(data) == ["name", "model", "training", "output"]  # field order, not sorted
    assert sorted(p.name for p in path.parent.iterdir()) == ["saved.yaml"]  # no temporary file left behind


def test_config_to_dict_refuses_non_dataclasses():
    with pytest.raises(ConfigError, match="expected a dataclass config instance"):
        config_to_dict({"name": "x"})
    with pytest.raises(ConfigError, match=re.escape("expected a dataclass type")):
        load_config(dict)
