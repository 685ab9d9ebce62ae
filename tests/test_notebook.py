"""notebooks/explore_predictions.ipynb executed headless (nbclient) with its parameters cell overridden, on
a FineVD-Synth set it generates itself and on a plain MOS table (the benchmark loaders' path), with a tiny
random model: its metrics table must be what `finevq eval` prints on the same data and its figures drawn;
the committed file carries no outputs."""

import csv
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from finevq.cli import main
from finevq.exploration.predictions import ROWS_FILE, data_spec

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore_predictions.ipynb"
SCORE_FIGURES = ("score_scatter", "level_score_scatter", "level_confusion", "score_agreement", "worst_predicted",
                 "quality_over_time")
DISTORTION_FIGURES = ("yes_no", "subtype_confusion")
SCENE = {"min_side": 64, "max_side": 80, "min_fps": 12, "max_fps": 16, "min_duration": 1.5, "max_duration": 2.5}


def with_parameters(notebook: nbformat.NotebookNode, values: dict) -> nbformat.NotebookNode:
    """The notebook with a cell assigning `values` inserted after its `parameters` cell (papermill's way)."""
    index = next(i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", []))
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    return notebook


def run_notebook(folder: Path, values: dict) -> nbformat.NotebookNode:
    """The notebook executed in `folder` with `values` for its parameters (figures saved to folder/figures)."""
    values = {"cache_dir": str(folder / "predictions"), "figures_dir": str(folder / "figures"), **values}
    notebook = with_parameters(nbformat.read(NOTEBOOK, as_version=4), values)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    client.execute()
    return notebook


def printed(notebook: nbformat.NotebookNode, code: str) -> str:
    """What the code cell containing `code` printed."""
    cell = next(cell for cell in notebook.cells if cell.cell_type == "code" and code in cell.source)
    return "".join(out.get("text", "") for out in cell.outputs if out.output_type == "stream" and out.name == "stdout")


def assert_table_is_finevq_eval(notebook, data: list[str], split: str, model: Path, max_videos: int | None, capsys):
    table = printed(notebook, "format_report(report)")
    assert table.startswith("Videos: ") and "Score head (predicted MOS)" in table
    command = ["eval", "--data", *data, "--split", split, "--model", str(model), "--quiet"]
    assert main(command + (["--max-videos", str(max_videos)] if max_videos else [])) == 0
    assert table == capsys.readouterr().out
    assert f"finevq eval --data {data[0]} {data[1]} " in printed(notebook, "shlex.join(command)")
    return table


def assert_figures(notebook, folder: Path, names: tuple[str, ...]) -> None:
    images = [out for cell in notebook.cells for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
    assert len(images) == len(names)
    assert sorted(path.stem for path in (folder / "figures").glob("*.png")) == sorted(names)
    assert all((folder / "figures" / f"{name}.png").stat().st_size > 10_000 for name in names)



def test_committed_notebook_has_no_outputs_and_one_parameters_cell():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert sum("parameters" in cell.metadata.get("tags", []) for cell in code) == 1


@pytest.mark.slow
def test_on_generated_finevd_synth_the_table_is_finevq_eval_and_every_figure_is_drawn(model_folder, tmp_path, capsys):
    source, options = tmp_path / "finevd-synth", {"cache_dir": str(tmp_path / "datasets")}
    notebook = run_notebook(tmp_path, {
        "model": str(model_folder), "loader": "finevd", "source": str(source), "loader_options": options,
        "split": "train", "max_videos": 12, "synth": {"num_videos": 16, "seed": 5, "scene": SCENE},
        "timeline_window": 0.5, "worst_count": 3,
    })
    assert len(list((source / "videos").glob("*.mp4"))) == 16
    data = data_spec("finevd", source, options)
    table = assert_table_is_finevq_eval(notebook, data, "train", model_folder, 12, capsys)
    assert "Which-subtype accuracy" in table and "Yes/no accuracy per coarse type" in table
    assert_figures(notebook, tmp_path, SCORE_FIGURES + DISTORTION_FIGURES)
    (predicted,) = (tmp_path / "predictions").iterdir()
    videos = int(table.splitlines()[0].removeprefix("Videos: "))
    assert len((predicted / ROWS_FILE).read_text().splitlines()) == videos >= 5


@pytest.mark.slow
def test_on_a_mos_table_only_the_overall_sections_are_drawn(model_folder, tmp_path, capsys):
    synth = tmp_path / "synth"
    assert main(["synth", "--out", str(synth), "--num-videos", "8", "--seed", "6", "--resolution", "64", "80",
                 "--duration", "1.5", "2", "--fps", "12", "16"]) == 0
    capsys.readouterr()  # what synth printed is not part of the report compared below
    with open(synth / "scores.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    table_file = tmp_path / "mos.csv"
    table_file.write_text("file,score\n" + "".join(f"{row['video']},{row['overall']}\n" for row in rows))
    options = {"video_root": str(synth / "videos"), "video_column": "file", "mos_column": "score",
               "cache_dir": str(tmp_path / "datasets")}
    notebook = run_notebook(tmp_path, {
        "model": str(model_folder), "loader": "csv", "source": str(table_file), "loader_options": options,
        "split": "train", "max_videos": None, "synth": None, "timeline_window": 0.5, "worst_count": 2,
    })
    data = data_spec("csv", table_file, options)
    table = assert_table_is_finevq_eval(notebook, data, "train", model_folder, None, capsys)
    assert "\noverall " in table and "\ncolor " not in table and "Yes/no" not in table
    assert printed(notebook, "answers.empty") == "No distortion questions: this dataset has score labels only.\n"
    assert_figures(notebook, tmp_path, SCORE_FIGURES)
