"""The CLI contract: help for every command, usage errors exit 2, domain errors one line and exit 1."""

from __future__ import annotations

import pytest
from conftest import error_line, run_cli, run_cli_json

from toolkit.cli import cli

COMMANDS = sorted(cli.commands)


def test_contract_commands_present():
    assert {"data", "train"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command):
    proc = run_cli(command, "--help")
    assert proc.stdout.startswith("Usage: ") and "--help" in proc.stdout


def test_top_level_help_lists_commands():
    proc = run_cli("--help")
    for command in COMMANDS:
        assert f"  {command} " in proc.stdout


def test_usage_error_exits_2():
    proc = run_cli("train", "--epochs", "zero", check=False)
    assert proc.returncode == 2 and "--epochs" in proc.stderr


def test_unknown_architecture_is_a_usage_error():
    proc = run_cli("train", "--arch", "resnet-9000", check=False)
    assert proc.returncode == 2 and "seed-b" in proc.stderr


def test_domain_error_is_one_line_exit_1(tmp_path):
    proc = run_cli("train", "--data-dir", str(tmp_path / "empty"), "--limit", "10", check=False,
                   env={"FMNIST_EDGE_MIRROR": "http://127.0.0.1:9/"})
    assert error_line(proc).startswith("Error: could not download train-images-idx3-ubyte.gz")


@pytest.mark.parametrize(("pair", "message"), [
    ("separable=maybe", "the value must be a number, true or false"),
    ("dropout", "give NAME=VALUE"),
    ("wdith=3", "edge has no parameter wdith"),
])
def test_bad_arch_param_is_a_usage_error(pair, message):
    proc = run_cli("train", "--arch", "edge", "--arch-param", pair, check=False)
    assert proc.returncode == 2 and message in proc.stderr


def test_arch_params_reach_the_model(tmp_path, fmnist_dir):
    from toolkit import models

    metrics = run_cli_json("train", "--arch", "edge", "--arch-param", "separable=true", "--arch-param", "fc=0",
                           "--arch-param", "dropout=0.2", "--limit", "256", "--epochs", "1",
                           "--data-dir", str(fmnist_dir), "--out", str(tmp_path / "run"))
    assert metrics["config"]["arch_params"] == {"separable": True, "fc": 0, "dropout": 0.2}
    recipe = models.RECIPES["edge"]  # the edge recipe fills what the command line leaves out
    assert metrics["config"]["patience"] == recipe["patience"] and metrics["config"]["epochs"] == 1
    assert metrics["config"]["augment_config"]["erase_prob"] == recipe["erase"]
    expected = models.build_model("edge", separable=True, fc=0, dropout=0.2)
    assert metrics["params"] == expected.count_params() != models.build_model("edge").count_params()
