import re
import warnings

import optuna
import pytest

from hpsearch.study import space as spaces
from hpsearch.engine.config import TrainConfig
from hpsearch.study.space import SpaceError


def space_file(tmp_path, params: str, fixed: str = "") -> str:
    path = tmp_path / "x.toml"
    path.write_text(f'network = "lenet"\n{fixed}\n{params}')
    return path


LR = '[params.lr]\ntype = "float"\nlow = 0.01\nhigh = 1.0\nlog = true\n'


def int_param(step) -> str:
    return f'[params.batch_size]\ntype = "int"\nlow = 64\nhigh = 512\nstep = {step}\n'


def float_param(step, high="1.0") -> str:
    return f'[params.weight_decay]\ntype = "float"\nlow = 0.0\nhigh = {high}\nstep = {step}\n'


@pytest.mark.parametrize("step,shown", [("0", "0"), ("-64", "-64"), ("64.0", "64.0"),
                                        ("true", "True"), ('"64"', "'64'")])
def test_int_step_must_be_a_whole_number_from_1(tmp_path, step, shown):
    path = space_file(tmp_path, int_param(step))
    with pytest.raises(SpaceError, match=re.escape(
            f"{path}: params.batch_size.step: step must be a whole number >= 1, got {shown}")):
        spaces.load(path)


@pytest.mark.parametrize("step,shown", [("0.0", "0.0"), ("-0.1", "-0.1"), ("nan", "nan"),
                                        ("inf", "inf"), ("false", "False"), ('"0.1"', "'0.1'")])
def test_float_step_must_be_a_finite_number_above_0(tmp_path, step, shown):
    path = space_file(tmp_path, float_param(step))
    with pytest.raises(SpaceError, match=re.escape(
            f"{path}: params.weight_decay.step: step must be a number > 0, got {shown}")):
        spaces.load(path)


def test_step_that_does_not_divide_the_range_names_the_highs_that_would(tmp_path):
    path = space_file(tmp_path, int_param(100))  # 512 - 64 = 448 = 4 x 100 + 48
    with pytest.raises(SpaceError, match=re.escape(
            f"{path}: params.batch_size.step: step 100 does not divide high - low (512 - 64), "
            f"so Optuna would lower high to 464; make high 464 or 564")):
        spaces.load(path)
    path = space_file(tmp_path, float_param(0.3, high="0.95"))
    with pytest.raises(SpaceError, match=re.escape(
            "step 0.3 does not divide high - low (0.95 - 0.0), so Optuna would lower high to "
            "0.9; make high 0.9 or 1.2")):
        spaces.load(path)


def test_dividing_steps_reach_optuna_unchanged(tmp_path):
    path = space_file(tmp_path, int_param(64) + float_param(0.1, high="0.9"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna warns when it moves high
        params = {p.name: p.distribution for p in spaces.load(path).params}
    assert (params["batch_size"].high, params["batch_size"].step) == (512, 64)
    assert (params["weight_decay"].high, params["weight_decay"].step) == (0.9, 0.1)


def epochs_of(space: spaces.Space, **params) -> int:
    return spaces.suggest(optuna.trial.FixedTrial({"lr": 0.1, **params}), space)["epochs"]


def test_cap_holds_without_an_epochs_parameter(tmp_path):
    """A space with no epochs parameter trains TrainConfig's default, fixed when it is loaded
    (the plan and the budget count every trial's epochs), and --max-epochs caps it."""
    space = spaces.load(space_file(tmp_path, LR))
    default = TrainConfig(model="lenet").epochs
    assert space.fixed["epochs"] == default
    assert epochs_of(spaces.cap_epochs(space, 3)) == 3
    assert epochs_of(spaces.cap_epochs(space, default + 5)) == default


def test_cap_holds_for_optimizers_an_epochs_parameter_does_not_cover(tmp_path):
    params = LR + ('[params.optimizer]\ntype = "categorical"\nchoices = ["sgd", "adam"]\n'
                   '[params.epochs]\ntype = "int"\nlow = 2\nhigh = 20\noptimizers = ["adam"]\n')
    capped = spaces.cap_epochs(spaces.load(space_file(tmp_path, params)), 4)
    assert epochs_of(capped, optimizer="sgd") == 4
    assert capped.params[-1].distribution.high == 4  # and adam's range is clipped
    assert epochs_of(capped, optimizer="adam", epochs=4) == 4


def test_cap_clips_fixed_epochs_and_ranges_onto_their_step(tmp_path):
    fixed = spaces.cap_epochs(spaces.load(space_file(tmp_path, LR, "[fixed]\nepochs = 20\n")), 5)
    assert fixed.fixed["epochs"] == 5
    params = LR + '[params.epochs]\ntype = "int"\nlow = 2\nhigh = 10\nstep = 2\n'
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        capped = spaces.cap_epochs(spaces.load(space_file(tmp_path, params)), 5)
    d = capped.params[-1].distribution
    assert (d.low, d.high, d.step) == (2, 4, 2) and "epochs" not in capped.fixed


def test_a_search_table_sets_how_the_space_is_searched(tmp_path):
    path = space_file(tmp_path, LR, '[search]\npruner = "epoch-median"\nwarmup_epochs = 2\n')
    space = spaces.load(path)
    assert space.search == spaces.SearchDefaults("tpe", "epoch-median", 2)
    assert spaces.load(space_file(tmp_path, LR)).search == spaces.SearchDefaults()
    assert spaces.cap_epochs(space, 3).search == space.search


@pytest.mark.parametrize("table,message", [
    ('sampler = "bayes"', "search.sampler: 'bayes' is unknown; allowed: tpe, random"),
    ('pruner = "asha"', "search.pruner: 'asha' is unknown; allowed: median, epoch-median"),
    ("warmup_epochs = -1", "search.warmup_epochs: must be a whole number >= 0, got -1"),
    ("warmup_epochs = 1.5", "search.warmup_epochs: must be a whole number >= 0, got 1.5"),
    ("warmup_epochs = true", "search.warmup_epochs: must be a whole number >= 0, got True"),
    ("patience = 2", "search: unknown key 'patience'; allowed: sampler, pruner, warmup_epochs"),
])
def test_a_bad_search_table_is_refused_naming_the_field(tmp_path, table, message):
    path = space_file(tmp_path, LR, f"[search]\n{table}\n")
    with pytest.raises(SpaceError, match=re.escape(f"{path}: {message}")):
        spaces.load(path)


def test_a_lab_file_takes_no_search_table(tmp_path):
    path = tmp_path / "lab.toml"
    path.write_text('network = "lenet"\n[baseline]\noptimizer = "sgd"\nlr = 0.9\nepochs = 1\n'
                    'batch_size = 256\nworkers = 0\n[search]\npruner = "median"\n')
    with pytest.raises(SpaceError, match=re.escape(
            f"{path}: a lab file has [baseline] and [vary], not [params] or [search]")):
        spaces.load(path)


def test_a_step_too_small_for_its_range_is_refused_not_a_decimal_error(tmp_path):
    """Found by the fuzz: (high - low) % step raised decimal's DivisionImpossible where the
    range holds more steps than Decimal's 28 digits count."""
    path = space_file(tmp_path, LR + float_param("1e-30", high="1e30"))
    with pytest.raises(spaces.SpaceError, match="step 1e-30 is too small for the range"):
        spaces.load(path)


def test_augmentation_is_searched_by_name(tmp_path):
    ok = '[params.augment]\ntype = "categorical"\nchoices = ["none", "crop-flip"]\n'
    space = spaces.load(space_file(tmp_path, LR + ok))
    assert {p.field for p in space.params} == {"lr", "augment"}
    bad = '[params.augment]\ntype = "categorical"\nchoices = ["none", "mixup"]\n'
    with pytest.raises(spaces.SpaceError, match="augment 'mixup' is unknown; allowed: none, flip"):
        spaces.load(space_file(tmp_path, LR + bad))


def test_label_smoothing_and_warm_up_can_be_searched_within_0_1(tmp_path):
    ok = ('[params.label_smoothing]\ntype = "float"\nlow = 0.0\nhigh = 0.2\n'
          '[params.warmup]\ntype = "categorical"\nchoices = [0.0, 0.05]\n')
    space = spaces.load(space_file(tmp_path, LR + ok))
    assert {p.field for p in space.params} == {"lr", "label_smoothing", "warmup"}
    bad = '[params.label_smoothing]\ntype = "float"\nlow = 0.0\nhigh = 1.5\n'
    with pytest.raises(spaces.SpaceError, match=r"label_smoothing must be a number in \[0, 1\)"):
        spaces.load(space_file(tmp_path, LR + bad))
