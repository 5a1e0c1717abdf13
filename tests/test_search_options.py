"""`search()` takes one options object, which the CLI builds from its flags."""
from __future__ import annotations

import dataclasses

import pytest

from nas.core.errors import UserError
from nas.search.__main__ import build_parser
from nas.search.options import SearchOptions


def test_every_flag_is_an_option_and_every_option_a_flag():
    dests = {a.dest for a in build_parser()._actions if a.dest != "help"}
    assert dests == {f.name for f in dataclasses.fields(SearchOptions)}
    parsed = SearchOptions(**vars(build_parser().parse_args(["--budget", "b.yaml", "--val-folds", "3", "--jobs", "2"])))
    assert parsed.budget == "b.yaml" and parsed.val_folds == "3" and parsed.jobs == 2


def test_defaults_depend_on_the_data_and_counts_are_checked():
    demo = SearchOptions(budget="b.yaml").resolved(recipe_epochs=30, threads=2)
    assert (demo.trials, demo.epochs, demo.threads) == (24, 8, 2)
    real = SearchOptions(budget="b.yaml", data="/x", threads=1).resolved(recipe_epochs=30, threads=2)
    assert (real.trials, real.epochs, real.threads) == (200, 30, 1)
    with pytest.raises(UserError, match="--epochs: expected a positive integer, got 0"):
        SearchOptions(budget="b.yaml", epochs=0).resolved(recipe_epochs=30, threads=1)
