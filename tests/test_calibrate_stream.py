"""`fmnist-edge calibrate-stream`: the camera's --smooth and --min-score chosen on a recorded, labelled
stream (a generated video with its labels file), the trade-off table, and bad labels files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import error_line, run_cli

from edge_runtime.core.contract import CLASS_NAMES
from edge_runtime.tools.calibrate_stream import NONE, MIN_SCORE, SMOOTH, StreamAnswers, choose, score_setting


@pytest.fixture(scope="module")
def labelled_video(tmp_path_factory, test_set):
    from toolkit.synthetic import write_video

    images, labels = test_set
    folder = tmp_path_factory.mktemp("stream")
    video = folder / "stream.mp4"
    which = write_video(video, images[:12, ..., 0], frames_per_item=12, seed=3)
    (folder / "stream.labels.txt").write_text("".join(f"{CLASS_NAMES[labels[i]]}\n" for i in which))
    return video, folder / "stream.labels.txt"


def test_scores_follow_the_smoother_exactly():
    one_hot = np.eye(10, dtype=np.float32)
    # Item 3 for 4 frames (the model says 3, then once 5), then nothing in view for 4 frames.
    probs = np.stack([one_hot[3], one_hot[3], one_hot[5], one_hot[3], *[np.full(10, 0.1, np.float32)] * 4])
    truth = np.array([3, 3, 3, 3, NONE, NONE, NONE, NONE])
    answers = StreamAnswers(probs, truth, fps=8 / 1800)  # 8 frames over half an hour
    raw = score_setting(answers, CLASS_NAMES, smooth=1, min_score=0.5)
    assert raw["wrong_changes"] == 1 and raw["wrong_changes_per_hour"] == 2.0  # 3 -> 5 once
    assert raw["labelled"] == 1.0 and raw["right"] == 0.75 and raw["unsure_where_none"] == 1.0
    assert raw["labelled_right"] == 0.75
    smooth = score_setting(answers, CLASS_NAMES, smooth=5, min_score=0.5)
    assert smooth["wrong_changes"] == 0 and smooth["right"] == 1.0  # the average rides out the one 5


def test_choose_meets_the_target():
    table = [{"smooth": 1, "min_score": 0.5, "wrong_changes_per_hour": 100.0, "labelled_right": 0.9},
             {"smooth": 5, "min_score": 0.6, "wrong_changes_per_hour": 10.0, "labelled_right": 0.8},
             {"smooth": 8, "min_score": 0.6, "wrong_changes_per_hour": 10.0, "labelled_right": 0.8},
             {"smooth": 20, "min_score": 0.9, "wrong_changes_per_hour": 0.0, "labelled_right": 0.1}]
    assert choose(table, 50, None)["smooth"] == 5  # most labelled within the budget; the quicker of a tie
    assert choose(table, None, 0.85)["smooth"] == 1
    assert choose(table, None, 0.95) == {}


def test_calibrate_a_recorded_stream(labelled_video):
    video, labels = labelled_video
    report = json.loads(run_cli("calibrate-stream", str(video), "--labels", str(labels), "--json").stdout)
    assert report["frames"] == 144 and len(report["table"]) == len(SMOOTH) * len(MIN_SCORE)
    chosen = report["chosen"]
    assert chosen and chosen["wrong_changes_per_hour"] <= 60
    within = [r for r in report["table"] if r["wrong_changes_per_hour"] <= 60]
    assert chosen["labelled_right"] == max(r["labelled_right"] for r in within)
    for smooth in SMOOTH:  # a higher floor never labels more frames
        shares = [r["labelled"] for r in report["table"] if r["smooth"] == smooth]
        assert shares == sorted(shares, reverse=True)
    text = run_cli("calibrate-stream", str(video), "--labels", str(labels), "--min-labelled", "0.5").stdout
    assert "chosen for at least 50% of item frames labelled right: --smooth" in text


def test_bad_labels_and_targets(labelled_video, tmp_path):
    video, labels = labelled_video
    short = tmp_path / "short.txt"
    short.write_text("".join(labels.read_text().splitlines(keepends=True)[:100]))
    line = error_line(run_cli("calibrate-stream", str(video), "--labels", str(short), check=False))
    assert "100 lines for" in line and "one line per frame" in line
    bad = tmp_path / "bad.txt"
    bad.write_text("Dress\n²\n")
    line = error_line(run_cli("calibrate-stream", str(video), "--labels", str(bad), check=False))
    assert "line 2 is '²'" in line
    proc = run_cli("calibrate-stream", str(video), "--labels", str(labels), "--min-labelled", "0.5",
                   "--max-wrong-per-hour", "5", check=False)
    assert proc.returncode == 2 and "give one target" in proc.stderr
