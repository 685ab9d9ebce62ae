"""`finevq chat` in a terminal session fed through standard input: streamed answers, history carried
over turns, /reset, and a bad video refused before the first question."""

import io

import pytest

from finevq.cli import main
from finevq.inference import FineVQ
from videos import write_random_bytes, write_video



def test_chat_streams_answers_and_carries_the_history(model_folder, tmp_path, monkeypatch, capsys):
    video = write_video(tmp_path / "clip.mp4", num_frames=20, width=64, height=48)
    sent = []
    original = FineVQ.chat

    def spy(self, video, messages, **options):
        sent.append([dict(m) for m in messages])
        return original(self, video, messages, **options)

    monkeypatch.setattr(FineVQ, "chat", spy)
    questions = "Is there any noise distortion in the video?\nWhy?\n/reset\nDescribe the quality of this video.\n\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(questions))
    assert main(["chat", str(video), "--model", str(model_folder), "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert out.count("finevq> ") == 3
    assert [len(messages) for messages in sent] == [1, 3, 1]
    assert sent[1][0]["content"] == "Is there any noise distortion in the video?"
    assert sent[1][1]["role"] == "assistant" and sent[1][1]["content"] and sent[1][1]["content"] in out
    assert sent[2][0]["content"] == "Describe the quality of this video."


def test_chat_refuses_a_bad_video_before_the_first_question(model_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n"))
    assert main(["chat", str(write_random_bytes(tmp_path / "bad.mp4")), "--model", str(model_folder)]) == 2
    captured = capsys.readouterr()
    assert "bad.mp4" in captured.err and "finevq> " not in captured.out
