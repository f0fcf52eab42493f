import math

import pytest
import torch

from hpsearch import train as T
from hpsearch.errors import UsageError

CPU = torch.device("cpu")


def cfg(**kw):
    base = dict(model="net28", optimizer="sgd", lr=0.1, epochs=2, batch_size=128, seed=0)
    return T.TrainConfig(**{**base, **kw})


def test_training_lowers_the_loss(small_splits):
    r = T.train(cfg(epochs=3), small_splits, CPU)
    assert r.status == "completed", r.reason
    assert len(r.epochs) == 3
    assert r.epochs[-1].train_loss < r.epochs[0].train_loss < math.log(10)
    assert r.final_val_acc > 0.5
    assert r.params == 3_241_354 and r.device == "cpu"


def test_total_loss_is_the_example_weighted_mean_over_epochs(small_splits):
    r = T.train(cfg(epochs=2), small_splits, CPU)
    # Every epoch sees all 3,000 images, so the lab's total is the mean of the epoch means.
    assert r.total_loss == pytest.approx(sum(e.train_loss for e in r.epochs) / 2, rel=1e-6)
    assert r.total_acc == pytest.approx(sum(e.train_acc for e in r.epochs) / 2, rel=1e-6)
    assert r.best_val_acc == max(e.val_acc for e in r.epochs)


def test_same_seed_same_numbers(small_splits):
    a = T.train(cfg(epochs=1, optimizer="adam", lr=1e-3), small_splits, CPU)
    b = T.train(cfg(epochs=1, optimizer="adam", lr=1e-3), small_splits, CPU)
    c = T.train(cfg(epochs=1, optimizer="adam", lr=1e-3, seed=1), small_splits, CPU)
    assert (a.total_loss, a.final_val_acc) == (b.total_loss, b.final_val_acc)
    assert a.total_loss != c.total_loss


def test_huge_lr_ends_as_diverged_without_raising(small_splits):
    r = T.train(cfg(lr=1e6, epochs=3), small_splits, CPU)
    assert r.status == "diverged"
    assert "epoch 1, step" in r.reason
    assert len(r.epochs) == 1  # the run stopped in its first epoch


def test_callback_sees_every_epoch_and_can_stop(small_splits):
    seen = []
    r = T.train(cfg(epochs=3, model="lenet", lr=0.9), small_splits, CPU, on_epoch=seen.append)
    assert [e.epoch for e in seen] == [1, 2, 3]
    assert [e.val_acc for e in seen] == [e.val_acc for e in r.epochs]

    def stop_at_2(rec):
        return "enough" if rec.epoch == 2 else None

    r = T.train(cfg(epochs=5, model="lenet", lr=0.9), small_splits, CPU, on_epoch=stop_at_2)
    assert (r.status, r.reason, len(r.epochs)) == ("stopped", "enough", 2)


def test_progress_printed_five_times_per_epoch(small_splits):
    lines = []
    T.train(cfg(epochs=1, model="lenet"), small_splits, CPU, log=lines.append)
    assert sum("step" in line for line in lines) == 5
    assert sum("val acc" in line for line in lines) == 1


def test_chance_level_run_is_flagged(small_splits):
    # Adam at lr 1 saturates LeNet's sigmoids: the loss stays finite but nothing is learned.
    r = T.train(cfg(epochs=1, model="lenet", optimizer="adam", lr=1.0), small_splits, CPU)
    assert r.best_val_acc < 0.15
    assert "chance" in r.reason


@pytest.mark.parametrize("opt", ["momentum", "nesterov", "adamw", "rmsprop"])
def test_every_optimizer_trains(small_splits, opt):
    lr = 0.05 if opt in ("momentum", "nesterov") else 1e-3
    r = T.train(cfg(epochs=1, optimizer=opt, lr=lr, weight_decay=1e-4, schedule="cosine"),
                small_splits, CPU)
    assert r.status == "completed" and r.final_val_acc > 0.3


def test_bfloat16_trains_as_well_as_float32(small_splits):
    # "auto" picks bfloat16 on CPUs with native bfloat16; either way both precisions must learn alike.
    f32 = T.train(cfg(epochs=2, precision="float32"), small_splits, CPU)
    bf16 = T.train(cfg(epochs=2, precision="bfloat16"), small_splits, CPU)
    assert f32.status == bf16.status == "completed"
    assert abs(f32.final_val_acc - bf16.final_val_acc) < 0.05
    assert abs(f32.total_loss - bf16.total_loss) < 0.05


def test_auto_precision_is_float32_without_native_bfloat16(monkeypatch):
    assert T.amp_dtype(torch.device("mps"), "auto") is None
    assert T.amp_dtype(torch.device("cuda"), "auto") is torch.bfloat16
    assert T.amp_dtype(CPU, "float32") is None and T.amp_dtype(CPU, "bfloat16") is torch.bfloat16
    for caps, want in (({"avx2": True, "avx512_bf16": False}, None),
                       ({"avx512_bf16": True, "amx_bf16": False}, torch.bfloat16),
                       ({"amx_bf16": True}, torch.bfloat16)):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps)
        assert T.amp_dtype(CPU, "auto") is want, caps


def test_dataloader_path_matches_in_meaning(small_splits):
    r = T.train(cfg(epochs=1, model="lenet", lr=0.9, workers=2), small_splits, CPU)
    assert r.status == "completed" and len(r.epochs) == 1
    assert 0 < r.total_loss < 3


@pytest.mark.parametrize("bad,match", [
    (dict(optimizer="lbfgs"), "choose one of: sgd, momentum"),
    (dict(lr=0.0), "lr must be"),
    (dict(batch_size=0), "batch size must be >= 1"),
    (dict(epochs=0), "epochs must be >= 1"),
    (dict(optimizer="sgd", momentum=0.9), "takes no momentum"),
    (dict(optimizer="momentum", momentum=1.5), r"momentum must be in \[0, 1\)"),
    (dict(model="alexnet", resize=32), "at least 65"),
    (dict(precision="fp8"), "unknown precision 'fp8'; choose one of: auto, float32"),
])
def test_bad_config_is_refused(bad, match):
    with pytest.raises(UsageError, match=match):
        T.check_config(cfg(**bad))


def test_json_has_no_nan():
    r = T.RunResult(cfg(), total_loss=float("nan"))
    assert r.to_json()["total_loss"] is None
