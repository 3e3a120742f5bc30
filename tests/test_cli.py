"""The CLI contract: help for every command, usage errors exit 2, domain errors one line and exit 1.

Help and usage errors run in-process with click's CliRunner; what needs a real process (exit codes
of domain errors, training) runs the CLI as users do.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import error_line, run_cli, run_cli_json

from toolkit.cli import cli

COMMANDS = sorted(cli.commands)
CONTRACT = {"data", "train", "export", "evaluate", "predict", "bench", "camera", "info", "tune"}
"""The commands ../shared/DESIGN.md's CLI contract names (and that exist so far)."""


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), prog_name="fmnist-edge")


def test_contract_commands_present():
    assert CONTRACT <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0 and result.output.startswith("Usage: ") and "--help" in result.output


def test_top_level_help_lists_commands():
    result = invoke("--help")
    for command in COMMANDS:
        assert f"  {command} " in result.output


def test_usage_error_exits_2():
    result = invoke("train", "--epochs", "zero")
    assert result.exit_code == 2 and "--epochs" in result.output


@pytest.mark.train
def test_unknown_architecture_is_a_usage_error():
    result = invoke("train", "--arch", "resnet-9000")
    assert result.exit_code == 2 and "seed-b" in result.output


def test_choices_come_from_the_library_tables():
    from converters.export import FORMAT_CHOICES
    from edge_runtime.data.photos import SPLITS
    from toolkit.tune import SPACES, TUNERS

    for args, choices in ((["tune", "--tuner", "x"], TUNERS), (["tune", "--space", "x"], SPACES),
                          (["export", "m.keras", "--format", "x"], FORMAT_CHOICES),
                          (["evaluate", "--photo-split", "x"], SPLITS)):
        result = invoke(*args)
        assert result.exit_code == 2 and all(f"'{c}'" in result.output for c in choices), result.output


@pytest.mark.train
def test_domain_error_is_one_line_exit_1(tmp_path):
    proc = run_cli("train", "--data-dir", str(tmp_path / "empty"), "--limit", "10", check=False,
                   env={"FMNIST_EDGE_MIRROR": "http://127.0.0.1:9/"})
    assert error_line(proc).startswith("Error: could not download train-images-idx3-ubyte.gz")


@pytest.mark.train
@pytest.mark.parametrize(("pair", "message"), [
    ("separable=maybe", "the value must be a number, true or false"),
    ("dropout", "give NAME=VALUE"),
    ("wdith=3", "edge has no parameter wdith"),
])
def test_bad_arch_param_is_a_usage_error(pair, message):
    result = invoke("train", "--arch", "edge", "--arch-param", pair)
    assert result.exit_code == 2 and message in result.output


@pytest.mark.train
def test_arch_params_reach_the_model(tmp_path, fmnist_dir):
    from toolkit import models
    from toolkit.train import TrainConfig

    metrics = run_cli_json("train", "--arch", "edge", "--arch-param", "separable=true", "--arch-param", "fc=0",
                           "--arch-param", "dropout=0.2", "--limit", "256", "--epochs", "1",
                           "--data-dir", str(fmnist_dir), "--out", str(tmp_path / "run"))
    assert metrics["config"]["arch_params"] == {"separable": True, "fc": 0, "dropout": 0.2}
    recipe = TrainConfig.from_recipe("edge")  # the edge recipe fills what the command line leaves out
    assert metrics["config"]["patience"] == recipe.patience and metrics["config"]["epochs"] == 1
    assert metrics["config"]["augment_config"]["erase_prob"] == recipe.augment_config.erase_prob
    expected = models.build_model("edge", separable=True, fc=0, dropout=0.2)
    assert metrics["params"] == expected.count_params() != models.build_model("edge").count_params()
