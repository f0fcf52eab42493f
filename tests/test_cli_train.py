import json

import pytest

from conftest import run_cli, write_idx_set


@pytest.mark.slow
def test_train_command_prints_progress_and_writes_json(tmp_path):
    out = tmp_path / "run.json"
    p = run_cli("hpsearch.train", "lenet", "--epochs", "2", "--train-subset", "2000",
                "--device", "cpu", "--json", str(out))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert sum(" step " in line for line in lines) == 10  # five per epoch
    assert sum("val acc" in line for line in lines if line.startswith("epoch")) == 2
    assert lines[-1].startswith("lenet: total loss ") and "examples/s" in lines[-1]
    result = json.loads(out.read_text())
    assert result["config"]["lr"] == 0.9 and result["config"]["batch_size"] == 256  # lab baseline
    assert len(result["epochs"]) == 2 and result["status"] == "completed"
    assert {"total_loss", "total_acc", "final_val_acc", "train_seconds", "examples_per_s",
            "params", "device", "reason"} <= result.keys()


@pytest.mark.slow
def test_diverged_run_exits_zero_and_says_so(tmp_path):
    p = run_cli("hpsearch.train", "net28", "--epochs", "1", "--train-subset", "1000",
                "--lr", "1e6", "--json", str(tmp_path / "r.json"))
    assert p.returncode == 0, p.stderr
    assert "diverged" in p.stdout.splitlines()[-1]
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "diverged"


@pytest.mark.parametrize("args,message", [
    (["resnet50"], "unknown model 'resnet50'; choose one of: lenet, alexnet"),
    (["lenet", "--optimizer", "lbfgs"], "choose from 'sgd', 'momentum'"),
    (["lenet", "--lr", "0"], "--lr must be a finite number > 0, got 0"),
    (["lenet", "--lr", "abc"], "--lr must be a float"),
    (["lenet", "--batch-size", "0"], "--batch-size must be > 0"),
    (["lenet", "--momentum", "0.9"], "takes no momentum"),
    (["alexnet", "--resize", "28"], "alexnet cannot take 28x28 inputs"),
    (["lenet", "--device", "tpu"], "device 'tpu' is not usable here"),
    (["lenet", "--seed", "-1"], "--seed must be between 0 and 4294967295, got -1"),
    (["lenet", "--optimizer", "nesterov", "--momentum", "0"],
     "optimizer 'nesterov' needs momentum in (0, 1), got 0"),
    (["lenet", "--train-subset", "3"], "--train-subset must be between 10 (one image per "
                                       "class) and 50000"),
    (["lenet", "--val-size", "3"], "--val-size must be between 10 (one image per class)"),
    (["lenet", "--val-size", "60000"], "--val-size must be between 10 (one image per class) "
                                       "and 59990, got 60000"),
    (["lenet", "--workers", "-1"], "--workers must be >= 0"),
    (["lenet", "--epoch", "2"], "unrecognized arguments: --epoch 2"),  # no abbreviations
])
def test_bad_flags_exit_2_with_one_line_saying_what_is_allowed(args, message):
    p = run_cli("hpsearch.train", *args)
    assert p.returncode == 2, (args, p.stderr)
    assert "Traceback" not in p.stderr
    # argparse's own errors follow its usage lines; every error is one line.
    errors = [line for line in p.stderr.splitlines() if "error: " in line]
    assert len(errors) == 1 and message in errors[0], (args, p.stderr)
    assert p.stderr.rstrip("\n").endswith(errors[0])


@pytest.mark.slow
def test_bad_data_dir_exit_2_names_the_file(tmp_path):
    write_idx_set(tmp_path)  # random contents: the real checksums cannot match
    p = run_cli("hpsearch.train", "lenet", "--data-dir", str(tmp_path))
    assert p.returncode == 2
    assert "train-images-idx3-ubyte" in p.stderr and "apt-get install" in p.stderr
    assert "Traceback" not in p.stderr


def test_models_command():
    p = run_cli("hpsearch.models")
    assert p.returncode == 0
    assert "46,764,746" in p.stdout and "MFLOPs" in p.stdout
    p = run_cli("hpsearch.models", "resnet", "--resize", "64")
    assert p.returncode == 0 and "(1, 10)" in p.stdout


def test_the_reproducing_command_carries_schedule_warm_up_and_label_smoothing():
    """What export prints as the command for a trial parses back to that trial's config."""
    import shlex
    from dataclasses import asdict

    from hpsearch.cli import train
    from hpsearch.engine.config import TrainConfig, train_command

    cfg = TrainConfig(model="lenet", optimizer="adam", lr=0.003, epochs=4, batch_size=128,
                      schedule="one-cycle", warmup=0.05, label_smoothing=0.1, augment="crop-flip",
                      seed=7)
    argv = shlex.split(train_command(cfg, 1000, 1000))
    assert asdict(train.config_from_args(train.parse_args(argv[3:]))) == asdict(cfg)
