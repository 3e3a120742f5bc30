"""Recipes as data: each recipe a TOML file, resolved into a checked TrainConfig; `fmnist-edge recipes`,
`train --recipe NAME|FILE` and `--set KEY=VALUE`; the command's help reads its defaults from the files."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_runtime.core.errors import FmnistEdgeError
from toolkit.cli import cli
from toolkit.photo_augment import PhotoAugmentConfig
from toolkit.train.config import RECIPES_DIR, TrainConfig, recipe_keys, recipe_names, resolve


ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), prog_name="fmnist-edge")


def test_every_shipped_recipe_resolves_and_the_default_holds_every_setting():
    assert {"default", "edge", "fine-tune", "bundled"} <= set(recipe_names())
    default = tomllib.loads((RECIPES_DIR / "default.toml").read_text())
    assert set(recipe_keys()) <= set(default)  # every setting's value is written in one place
    for name in recipe_names():
        cfg = resolve(name, {}, {"init": "x.keras"} if name == "fine-tune" else {})
        assert cfg.recipe == name and cfg.epochs >= 1


def test_a_recipe_changes_only_what_it_names():
    default, edge = TrainConfig.from_recipe("default"), TrainConfig.from_recipe("edge")
    changed = {k for k, v in dataclasses.asdict(edge).items() if dataclasses.asdict(default)[k] != v}
    assert changed == {"arch", "epochs", "patience", "augment_config", "recipe"}
    assert (edge.arch, edge.epochs, edge.patience, edge.augment_config.erase_prob) == ("edge", 80, 20, 0.5)


def test_the_bundled_recipe_is_what_make_bundled_model_trains():
    bundled = TrainConfig.from_recipe("bundled")
    assert (bundled.arch, bundled.val_split, bundled.photo_split, bundled.photo_variants) == ("edge", 0.0, "all", 16)
    assert bundled.teachers == () and bundled.photo_augment_params == {"max_scale": 1.0, "shift": 0.08}
    assert PhotoAugmentConfig(**bundled.photo_augment_params).own_masks  # street crops keep their own masks


@pytest.mark.skipif(not (ROOT / "Makefile").is_file(), reason="reads the Makefile beside the source tree")
def test_make_bundled_model_names_the_recipe_not_its_flags():
    makefile = (ROOT / "Makefile").read_text()
    assert "train --recipe $(BUNDLE_RECIPE)" in makefile and "BUNDLE_RECIPE ?= bundled" in makefile
    assert "--distill-weight" not in makefile and "--photo-variants" not in makefile


def test_recipe_then_settings_then_flags():
    cfg = resolve("edge", {"lr": "0.01", "augment_config.erase_area": "0.1,0.2", "teachers": "a.keras,b.keras"},
                  {"epochs": 3})
    assert (cfg.lr, cfg.augment_config.erase_area, cfg.teachers, cfg.epochs) == (0.01, (0.1, 0.2),
                                                                               ("a.keras", "b.keras"), 3)
    assert resolve(None, {}, {"arch": "edge"}).recipe == "edge"  # the recipe named after the architecture
    assert resolve(None, {}, {"arch": "seed-a"}).recipe == "default"
    tuned = resolve(None, {}, {"init": "bundled"})
    assert tuned.recipe == "fine-tune" and tuned.teachers == ("bundled",)  # "init" is the model given to --init


@pytest.mark.parametrize(("settings", "message"), [
    ({"lrr": "0.1"}, "no setting lrr"),
    ({"augment_config.sharpness": "2"}, "augment_config has no setting sharpness"),
    ({"photo_augment_params.sharpness": "2"}, "photo_augment_params has no setting sharpness"),
    ({"lr": "fast"}, "give a number"),
    ({"augment": "yes"}, "give true or false"),
    ({"epochs": "nan"}, "give a finite number"),
    ({"augment_config": "1"}, "is a table"),
])
def test_bad_settings_are_refused_by_name(settings, message):
    with pytest.raises(FmnistEdgeError, match=message):
        resolve("default", settings, {})


def test_a_users_recipe_file_starts_from_a_shipped_one(tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text('base = "edge"\ndescription = "mine"\nepochs = 5\n[augment_config]\nflip = false\n')
    cfg = resolve(str(mine), {}, {})
    assert (cfg.arch, cfg.epochs, cfg.patience, cfg.augment_config.flip, cfg.augment_config.erase_prob) == (
        "edge", 5, 20, False, 0.5)
    (tmp_path / "loop.toml").write_text(f'base = "{tmp_path / "loop.toml"}"\n')
    with pytest.raises(FmnistEdgeError, match="circle"):
        resolve(str(tmp_path / "loop.toml"), {}, {})
    (tmp_path / "typo.toml").write_text('base = "default"\npatiense = 3\n')
    with pytest.raises(FmnistEdgeError, match="no setting patiense"):
        resolve(str(tmp_path / "typo.toml"), {}, {})


def test_recipes_command_lists_and_resolves(tmp_path):
    listing = invoke("recipes", "--json")
    assert listing.exit_code == 0 and set(json.loads(listing.output)) == set(recipe_names())
    shown = invoke("recipes", "bundled")
    assert shown.exit_code == 0 and 'photo_variants = 16' in shown.output
    saved = tmp_path / "bundled.toml"  # what it prints is a recipe file that trains the same
    saved.write_text(shown.output)
    again, bundled = resolve(str(saved), {}, {}), TrainConfig.from_recipe("bundled")
    assert PhotoAugmentConfig(**again.photo_augment_params) == PhotoAugmentConfig(**bundled.photo_augment_params)
    assert dataclasses.replace(again, recipe="bundled", photo_augment_params={}) == dataclasses.replace(
        bundled, photo_augment_params={})
    missing = invoke("recipes", "nosuch")
    assert missing.exit_code == 2 and "no such recipe" in missing.output


def test_train_help_reads_its_defaults_from_the_recipe_files():
    text = " ".join(invoke("train", "--help").output.split())
    assert "[recipe: 40 (bundled: 80, edge: 80, fine-tune: 2)]" in text
    assert "[recipe: 0.002 (fine-tune: 0.0005)]" in text
    for hidden in ("--erase", "--teacher", "--photo-variants", "--distill-weight"):
        assert hidden not in text  # aliases of --set, outside the contract


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "lr"], "give KEY=VALUE"),
    (["--set", "lrr=1"], "no setting lrr"),
    (["--set", "lr=0.1", "--lr", "0.2"], "lr is set twice (--set and --lr)"),
    (["--erase", "0.5", "--set", "augment_config.erase_prob=0.1"], "augment_config.erase_prob is set twice"),
    (["--recipe", "nosuch"], "no such recipe"),
    (["--photo-augment", "sharpness=2"], "no setting sharpness"),
])
def test_train_refuses_bad_or_twice_given_settings_as_usage_errors(args, message):
    result = invoke("train", *args)
    assert result.exit_code == 2 and message in result.output, result.output
