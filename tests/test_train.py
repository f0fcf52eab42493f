import gc
import math
import weakref

import pytest
import torch

from hpsearch.engine import batches as B, data, train as T
from hpsearch.engine.config import TrainConfig
from hpsearch.errors import UsageError

CPU = torch.device("cpu")
CUDA = torch.device("cuda")


def cfg(**kw):
    base = dict(model="net28", optimizer="sgd", lr=0.1, epochs=2, batch_size=128, seed=0)
    return TrainConfig(**{**base, **kw})


@pytest.mark.slow
def test_training_lowers_the_loss(small_splits):
    r = T.train(cfg(epochs=3), small_splits, CPU)
    assert r.status == "completed", r.reason
    assert len(r.epochs) == 3
    assert r.epochs[-1].train_loss < r.epochs[0].train_loss < math.log(10)
    assert r.final_val_acc > 0.5
    assert r.params == 3_241_354 and r.device == "cpu"


@pytest.mark.slow
def test_total_loss_is_the_example_weighted_mean_of_the_batch_losses(small_splits, monkeypatch):
    batches = []  # (mean loss, examples) of each training batch
    cross_entropy = T.F.cross_entropy

    def recording(logits, target, **kw):
        loss = cross_entropy(logits, target, **kw)
        if "reduction" not in kw:  # the training step's mean; evaluation asks for a sum
            batches.append((loss.item(), len(target)))
        return loss

    monkeypatch.setattr(T.F, "cross_entropy", recording)
    # 3,000 images in batches of 256: eleven full batches and one of 184, per epoch.
    r = T.train(cfg(epochs=2, batch_size=256), small_splits, CPU)
    assert sorted({n for _, n in batches}) == [184, 256] and len(batches) == 24
    weighted = sum(loss * n for loss, n in batches) / sum(n for _, n in batches)
    plain = sum(loss for loss, _ in batches) / len(batches)
    assert abs(weighted - plain) > 1e-3  # the short batches make the two means differ
    assert r.total_loss == pytest.approx(weighted, rel=1e-5)
    assert r.best_val_acc == max(e.val_acc for e in r.epochs)


def test_an_epoch_cut_short_counts_by_its_examples(small_splits, monkeypatch):
    cross_entropy = T.F.cross_entropy
    steps = []

    def blowing_up(logits, target, **kw):
        loss = cross_entropy(logits, target, **kw)
        if "reduction" not in kw:  # a training step
            steps.append(1)
            if len(steps) == 14:  # epoch 2, step 2 of 12: a loss over DIVERGED_LOSS, same grads
                return loss + 2 * T.DIVERGED_LOSS
        return loss

    monkeypatch.setattr(T.F, "cross_entropy", blowing_up)
    r = T.train(cfg(epochs=3, batch_size=256), small_splits, CPU)
    assert r.status == "diverged" and "epoch 2, step 2" in r.reason
    first, cut = r.epochs
    assert (first.examples, cut.examples) == (3000, 512)
    assert r.total_loss == pytest.approx(
        (first.train_loss * 3000 + cut.train_loss * 512) / 3512, rel=1e-9)
    assert r.total_loss < (first.train_loss + cut.train_loss) / 2 - 100  # not the epochs' mean


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("opt", ["momentum", "nesterov", "adamw", "rmsprop"])
def test_every_optimizer_trains(small_splits, opt):
    lr = 0.05 if opt in ("momentum", "nesterov") else 1e-3
    r = T.train(cfg(epochs=1, optimizer=opt, lr=lr, weight_decay=1e-4, schedule="cosine"),
                small_splits, CPU)
    assert r.status == "completed" and r.final_val_acc > 0.3


@pytest.mark.slow
def test_bfloat16_trains_as_well_as_float32(small_splits):
    # "auto" picks bfloat16 on CPUs with native bfloat16; either way both precisions must learn
    # alike. A few hundred images: where bfloat16 is emulated, not native, it runs ~30x slower.
    splits = data.Splits(data.Split(small_splits.train.x[:400], small_splits.train.y[:400]),
                         data.Split(small_splits.val.x[:300], small_splits.val.y[:300]))
    f32 = T.train(cfg(epochs=2, precision="float32"), splits, CPU)
    bf16 = T.train(cfg(epochs=2, precision="bfloat16"), splits, CPU)
    assert f32.status == bf16.status == "completed"
    assert abs(f32.final_val_acc - bf16.final_val_acc) < 0.05
    assert abs(f32.total_loss - bf16.total_loss) < 0.05


def fake_gpu(monkeypatch, capability):
    """torch.cuda answering for one GPU of CAPABILITY, whichever device is asked."""
    asked = []

    def get_device_capability(device=None):
        asked.append(device)
        return capability

    monkeypatch.setattr(torch.cuda, "get_device_capability", get_device_capability)
    return asked


def fake_cpu(monkeypatch, **caps):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps)


@pytest.mark.parametrize("capability,want", [((9, 0), "bfloat16"), ((8, 0), "bfloat16"),
                                             ((7, 5), "float16"), ((7, 0), "float16"),
                                             ((6, 1), "float32")])
def test_auto_precision_on_cuda_follows_the_gpu_asked(monkeypatch, capability, want):
    asked = fake_gpu(monkeypatch, capability)
    gpu = torch.device("cuda", 1)
    assert T.resolve_precision(gpu, "auto") == want
    assert asked == [gpu]  # that GPU's capability, not cuda:0's
    assert T.resolve_precision(gpu, "float32") == "float32"
    assert T.resolve_precision(gpu, "float16") == "float16"


def test_bfloat16_below_compute_capability_8_is_refused(monkeypatch):
    fake_gpu(monkeypatch, (7, 5))
    with pytest.raises(UsageError, match=r"'bfloat16' needs CUDA compute capability 8.0 or "
                                         r"newer; cuda:1 has 7.5.*use auto, float16 or float32"):
        T.resolve_precision(torch.device("cuda", 1), "bfloat16")
    fake_gpu(monkeypatch, (8, 0))
    assert T.resolve_precision(torch.device("cuda", 1), "bfloat16") == "bfloat16"


@pytest.mark.parametrize("caps,want", [(dict(avx2=True, avx512_bf16=False), "float32"),
                                       (dict(avx512_bf16=True, amx_bf16=False), "bfloat16"),
                                       (dict(amx_bf16=True), "bfloat16")])
def test_auto_precision_on_the_cpu_is_bfloat16_only_where_native(monkeypatch, caps, want):
    fake_cpu(monkeypatch, **caps)
    assert T.resolve_precision(CPU, "auto") == want
    # Asked for by name, either runs: bfloat16 converted where not native.
    assert T.resolve_precision(CPU, "bfloat16") == "bfloat16"
    assert T.resolve_precision(CPU, "float32") == "float32"


def test_float16_on_the_cpu_is_refused_and_mps_stays_float32(monkeypatch):
    fake_cpu(monkeypatch, amx_bf16=True)
    with pytest.raises(UsageError, match="'float16' is not for the CPU: CPU autocast in float16 "
                                         "is slow or unsupported; use auto, float32 or bfloat16"):
        T.resolve_precision(CPU, "float16")
    assert T.resolve_precision(torch.device("mps"), "auto") == "float32"


@pytest.fixture
def cuda_flags():
    """torch's process-wide CUDA flags at their defaults, restored after the test."""
    flags = ((torch.backends.cudnn, "benchmark"), (torch.backends.cudnn, "allow_tf32"),
             (torch.backends.cuda.matmul, "allow_tf32"))
    saved = [getattr(obj, name) for obj, name in flags]
    torch.backends.cudnn.benchmark = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    for (obj, name), value in zip(flags, saved):
        setattr(obj, name, value)


@pytest.mark.parametrize("capability,tf32", [((8, 6), True), ((7, 5), False)])
def test_cuda_runs_benchmark_convolutions_and_use_tf32_from_8_0(monkeypatch, cuda_flags,
                                                                 capability, tf32):
    fake_gpu(monkeypatch, capability)
    T.tune_cuda(CUDA)
    assert torch.backends.cudnn.benchmark is True
    assert torch.backends.cuda.matmul.allow_tf32 is tf32


@pytest.mark.slow
def test_grad_scaler_only_for_float16(small_splits, monkeypatch):
    scalers = []

    class Recording(torch.amp.GradScaler):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            self.scaled = 0
            scalers.append(self)

        def scale(self, outputs):
            self.scaled += self.is_enabled()
            return super().scale(outputs)

    monkeypatch.setattr(T.torch.amp, "GradScaler", Recording)
    f32 = T.train(cfg(epochs=1, model="lenet", lr=0.9, precision="float32"), small_splits, CPU)
    assert [s.is_enabled() for s in scalers] == [False]
    # float16 autocast runs on the CPU, slowly: let resolve_precision pass it for one run, so
    # that the scaled step is exercised without a GPU.
    resolve = T.resolve_precision
    monkeypatch.setattr(T, "resolve_precision", lambda device, precision:
                        "float16" if precision == "float16" else resolve(device, precision))
    f16 = T.train(cfg(epochs=1, model="lenet", lr=0.9, precision="float16"), small_splits, CPU)
    assert scalers[-1].is_enabled() and scalers[-1].scaled == math.ceil(3000 / 128)
    assert f16.status == "completed" and math.isfinite(f16.total_loss)
    assert f16.total_loss == pytest.approx(f32.total_loss, abs=0.05)


@pytest.mark.slow
def test_dataloader_path_trains_as_the_device_path(small_splits):
    # Same batches in the same order (loader_batches follows device_batches' randperm), the
    # same pixels (ToTensor's x / 255 at the network's own size), float32: the same numbers.
    device = T.train(cfg(epochs=2, batch_size=256, precision="float32"), small_splits, CPU)
    loader = T.train(cfg(epochs=2, batch_size=256, precision="float32", workers=2),
                     small_splits, CPU)
    assert loader.status == device.status == "completed"
    for a, b in zip(loader.epochs, device.epochs, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-5)
        assert a.val_loss == pytest.approx(b.val_loss, rel=1e-5)
        assert (a.train_acc, a.val_acc) == (b.train_acc, b.val_acc)


def test_loader_pins_host_memory_only_for_cuda(small_splits, monkeypatch):
    made = []
    monkeypatch.setattr(torch.utils.data, "DataLoader", lambda *a, **kw: made.append(kw) or [])
    for device in (CUDA, CPU):
        list(B.loader_batches(small_splits.train, 256, 28, 2, torch.Generator(), device))
    assert [kw["pin_memory"] for kw in made] == [True, False]


@pytest.mark.parametrize("opt,kind,momentum,nesterov", [
    ("sgd", torch.optim.SGD, 0.0, False), ("momentum", torch.optim.SGD, 0.9, False),
    ("nesterov", torch.optim.SGD, 0.9, True), ("rmsprop", torch.optim.RMSprop, 0.0, None),
    ("adam", torch.optim.Adam, None, None), ("adamw", torch.optim.AdamW, None, None)])
def test_optimizer_gets_the_configured_values(opt, kind, momentum, nesterov):
    params = [torch.nn.Parameter(torch.zeros(3))]
    optimizer = T.make_optimizer(cfg(optimizer=opt, lr=0.03, weight_decay=1e-4), params, CPU)
    group = optimizer.param_groups[0]
    assert type(optimizer) is kind
    assert (group["lr"], group["weight_decay"]) == (0.03, 1e-4)
    assert (group.get("momentum"), group.get("nesterov")) == (momentum, nesterov)


@pytest.mark.parametrize("opt", ["momentum", "nesterov", "rmsprop"])
def test_a_given_momentum_replaces_the_default(opt):
    params = [torch.nn.Parameter(torch.zeros(3))]
    group = T.make_optimizer(cfg(optimizer=opt, momentum=0.5), params, CPU).param_groups[0]
    assert group["momentum"] == 0.5


def raise_oom_at(monkeypatch, forward: int):
    """Networks built from now on raise CUDA's out-of-memory error in their FORWARD-th
    training forward pass; returns weak references to them."""
    built = []
    build = T.models.build

    def building(name, size=None):
        net = build(name, size)
        passes = []

        def hook(module, args):
            if module.training:
                passes.append(1)
                if len(passes) == forward:
                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20 GiB")

        net.register_forward_pre_hook(hook)
        built.append(weakref.ref(net))
        return net

    monkeypatch.setattr(T.models, "build", building)
    return built


def test_out_of_memory_ends_the_run_and_frees_the_network(small_splits, monkeypatch):
    built = raise_oom_at(monkeypatch, forward=1)
    r = T.train(cfg(epochs=2, batch_size=512), small_splits, CPU)
    assert (r.status, r.reason) == ("out_of_memory", "out of memory (batch 512, size 28)")
    assert r.epochs == [] and r.model is None
    assert math.isnan(r.total_loss) and math.isnan(r.final_val_acc)
    assert math.isnan(r.best_val_acc) and r.examples_per_s == 0.0
    gc.collect()
    assert built[0]() is None  # nothing holds the network any more
    assert r.to_json()["final_val_acc"] is None


def test_out_of_memory_keeps_the_epochs_before_it(small_splits, monkeypatch):
    raise_oom_at(monkeypatch, forward=7)  # batch 512: 6 steps an epoch, so early in epoch 2
    r = T.train(cfg(epochs=3, batch_size=512), small_splits, CPU)
    assert r.status == "out_of_memory" and [e.epoch for e in r.epochs] == [1]
    assert r.final_val_acc == r.epochs[0].val_acc
    assert r.total_loss == pytest.approx(r.epochs[0].train_loss, rel=1e-12)


def count_training_steps(monkeypatch) -> list:
    """One entry per training forward pass of the networks built from now on."""
    steps = []
    build = T.models.build

    def building(name, size=None):
        net = build(name, size)
        net.register_forward_pre_hook(
            lambda module, args: steps.append(1) if module.training else None)
        return net

    monkeypatch.setattr(T.models, "build", building)
    return steps


def test_should_stop_ends_the_run_after_the_step_it_was_asked_in(small_splits, monkeypatch):
    steps = count_training_steps(monkeypatch)
    asked = []
    # A stop requested from elsewhere (a signal, another thread) during step 6 of 24.
    def should_stop():
        asked.append(len(steps))
        return len(steps) >= 6

    r = T.train(cfg(epochs=3), small_splits, CPU, should_stop=should_stop)
    assert (r.status, r.reason) == ("interrupted", "interrupted")
    assert len(steps) == 6  # not one step more: a signal ends a trial within a step
    assert asked == [0, 1, 2, 3, 4, 5, 6]  # before the epoch, then after every step
    assert r.epochs == [] and math.isnan(r.total_loss) and math.isnan(r.final_val_acc)


def test_should_stop_is_asked_before_each_epoch(small_splits, monkeypatch):
    steps = count_training_steps(monkeypatch)
    r = T.train(cfg(epochs=3), small_splits, CPU, should_stop=lambda: True)
    assert (r.status, len(r.epochs), len(steps)) == ("interrupted", 0, 0)
    stop = []
    r = T.train(cfg(epochs=3), small_splits, CPU, should_stop=lambda: bool(stop),
                on_epoch=stop.append)
    assert (r.status, [e.epoch for e in r.epochs]) == ("interrupted", [1])
    assert r.final_val_acc == r.epochs[0].val_acc


@pytest.mark.parametrize("bad,match", [
    (dict(optimizer="lbfgs"), "choose one of: sgd, momentum"),
    (dict(lr=0.0), "lr must be"),
    (dict(batch_size=0), "batch size must be >= 1"),
    (dict(epochs=0), "epochs must be >= 1"),
    (dict(optimizer="sgd", momentum=0.9), "takes no momentum"),
    (dict(optimizer="momentum", momentum=1.5), r"momentum must be in \[0, 1\)"),
    (dict(model="alexnet", resize=32), "at least 65"),
    (dict(precision="fp8"), "unknown precision 'fp8'; choose one of: auto, float32"),
    (dict(optimizer="nesterov", momentum=0.0), r"'nesterov' needs momentum in \(0, 1\), got 0"),
    (dict(weight_decay=-1e-4), "weight decay must be a finite number >= 0"),
    (dict(weight_decay=math.nan), "weight decay must be a finite number >= 0, got nan"),
    (dict(weight_decay=math.inf), "weight decay must be a finite number >= 0, got inf"),
    (dict(optimizer="rmsprop", momentum=math.nan), r"momentum must be in \[0, 1\)"),
])
def test_bad_config_is_refused(bad, match):
    with pytest.raises(UsageError, match=match):
        T.check_config(cfg(**bad))


def test_json_has_no_nan():
    r = T.RunResult(cfg(), total_loss=float("nan"))
    assert r.to_json()["total_loss"] is None


@pytest.mark.parametrize("schedule", ["cosine", "linear", "one-cycle"])
def test_the_decaying_schedules_spend_the_lr_by_the_runs_last_step(schedule):
    total = 200
    f = [T.lr_factor(schedule, t, total, 0) for t in range(total + 1)]
    assert f[-1] == pytest.approx(0.0, abs=1e-12) and max(f) == pytest.approx(1.0, abs=0.02)
    if schedule == "one-cycle":  # up over the first 30%, then down
        peak = f.index(max(f))
        assert f[0] == 0.0 and abs(peak - T.ONE_CYCLE_RISE * total) <= 1
        assert all(a <= b for a, b in zip(f[:peak], f[1:peak + 1]))
    else:
        assert f[0] == 1.0 and all(a >= b for a, b in zip(f, f[1:]))
    assert T.lr_factor("constant", 150, total, 0) == 1.0


def test_warm_up_rises_linearly_to_the_schedule():
    assert [T.lr_factor("constant", t, 100, 4) for t in range(6)] == [0.25, 0.5, 0.75, 1, 1, 1]
    assert T.lr_factor("linear", 1, 100, 4) == pytest.approx(0.5 * 0.99)


def test_a_linear_schedule_with_warm_up_and_label_smoothing_trains(small_splits):
    base = T.train(cfg(epochs=2), small_splits, CPU)
    run = T.train(cfg(epochs=2, schedule="linear", warmup=0.1, label_smoothing=0.1),
                  small_splits, CPU)
    assert run.status == "completed" and len(run.epochs) == 2
    # Smoothed targets: the training loss cannot fall to what plain cross-entropy reaches.
    assert run.epochs[-1].train_loss != base.epochs[-1].train_loss
    learner = T.Learner(cfg(epochs=1, schedule="linear"), CPU, "float32", 10)
    for _ in range(10):
        learner.sched.step()
    assert learner.opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("field, value", [("warmup", 1.0), ("warmup", -0.1),
                                          ("label_smoothing", 1.0),
                                          ("label_smoothing", float("nan"))])
def test_warm_up_and_label_smoothing_outside_0_1_are_refused(field, value):
    with pytest.raises(UsageError, match=f"{field.replace('_', ' ')} must be in \\[0, 1\\)"):
        T.check_config(cfg(**{field: value}))


# --- augmentation, batched on the device ---------------------------------------------------

def test_a_flip_mirrors_the_flagged_images_and_a_centred_crop_changes_nothing():
    x = torch.arange(2 * 28 * 28, dtype=torch.int64).remainder(251).to(torch.uint8)
    x = x.view(2, 1, 28, 28)
    flipped = B.augmented(x, torch.tensor([True, False]), None)
    assert torch.equal(flipped[0], x[0].flip(-1)) and torch.equal(flipped[1], x[1])
    pad = B.CROP_PAD
    same = B.augmented(x, None, torch.tensor([[pad, pad], [pad, pad]]))
    assert same.dtype == torch.uint8 and torch.equal(same, x)


def test_a_crop_shifts_the_image_and_fills_with_background():
    x = torch.full((1, 1, 28, 28), 200, dtype=torch.uint8)
    pad = B.CROP_PAD
    moved = B.augmented(x, None, torch.tensor([[0, 2 * pad]]))  # down by pad, left by pad
    assert moved.shape == (1, 1, 28, 28)
    assert (moved[0, 0, :pad] == 0).all() and (moved[0, 0, :, -pad:] == 0).all()
    assert (moved[0, 0, pad:, :-pad] == 200).all()


def test_augmented_batches_keep_the_order_and_labels_and_repeat_with_the_seed(small_splits):
    split = small_splits.train

    def epoch(augment, seed=3):
        gen = torch.Generator().manual_seed(seed)
        return list(B.device_batches(split, 500, 28, gen, augment))

    plain, flipped, again = epoch("none"), epoch("crop-flip"), epoch("crop-flip")
    assert all(torch.equal(a[1], b[1]) for a, b in zip(plain, flipped))  # same order
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(plain, flipped))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(flipped, again))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(flipped, epoch("crop-flip", 4)))


def test_an_augmented_run_trains_and_repeats_exactly(small_splits):
    first = T.train(cfg(epochs=1, augment="crop-flip"), small_splits, CPU)
    second = T.train(cfg(epochs=1, augment="crop-flip"), small_splits, CPU)
    plain = T.train(cfg(epochs=1), small_splits, CPU)
    assert first.status == "completed"
    assert first.epochs[0].train_loss == second.epochs[0].train_loss
    assert first.epochs[0].train_loss != plain.epochs[0].train_loss


@pytest.mark.parametrize("fields, message", [
    ({"augment": "rotate"}, "unknown augment 'rotate'; choose one of: none, flip, crop, crop-flip"),
    ({"augment": "flip", "workers": 2}, "augment 'flip' works on the device's batches; workers 2"),
])
def test_an_augmentation_no_run_can_use_is_refused(fields, message):
    with pytest.raises(UsageError, match=message):
        T.check_config(cfg(**fields))


def test_the_cost_model_prices_augmentation_per_training_image():
    from hpsearch.engine import cost as C

    measured = C.augment_seconds(256, CPU)
    assert 0 < measured < 1e-3  # seconds per image: a batched gather, not Python per image
    model = C.StepCost("lenet", 28, "float32", "cpu", (64, 256), (0.001, 0.002), 1e-5, 0.1,
                       augment_s_per_image=2e-6)
    plain = C.run_seconds(model, 3, 10_000, 1000, 256)
    assert C.run_seconds(model, 3, 10_000, 1000, 256, "flip") == pytest.approx(
        plain + 3 * 10_000 * 2e-6)
