import pytest
import torch

from hpsearch import models
from hpsearch.errors import UsageError

# The lab's parameter counts at each network's default input size.
COUNTS = {"lenet": 61_706, "alexnet": 46_764_746, "vgg": 43_093_322, "resnet": 11_178_378,
          "alexnet_small": 45_406_986, "net28": 3_241_354}


@pytest.mark.parametrize("name", list(COUNTS))
def test_parameter_count_at_default_size(name):
    with torch.device("meta"):  # counts need no memory
        net = models.build(name)
    assert models.param_count(net) == COUNTS[name]


@pytest.mark.parametrize("name,size", [("lenet", 28), ("lenet", 32), ("net28", 28), ("net28", 36),
                                       ("resnet", 96), ("resnet", 32), ("alexnet_small", 64),
                                       ("alexnet", 67), ("vgg", 32)])
def test_output_shape(name, size):
    torch.manual_seed(0)
    net = models.build(name, size).eval()
    with torch.no_grad():
        out = net(torch.rand(3, 1, size, size))
    assert out.shape == (3, 10)


def test_flatten_size_follows_input_size():
    # lenet: 28 -> 16 x 5 x 5 = 400 features; 32 -> 16 x 6 x 6 = 576.
    assert models.build("lenet", 28)[7].in_features == 400
    assert models.build("lenet", 32)[7].in_features == 576
    with torch.device("meta"):
        assert models.build("vgg")[-7].in_features == 128 * 7 * 7


@pytest.mark.parametrize("name,too_small", [("alexnet", 64), ("vgg", 31), ("lenet", 3),
                                            ("alexnet_small", 20), ("net28", 3)])
def test_too_small_size_is_refused(name, too_small):
    with pytest.raises(UsageError, match=rf"{name} cannot take {too_small}x{too_small}.*at least"):
        models.build(name, too_small)
    models.check_size(name, models.min_size(name))  # the named minimum really is accepted


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(UsageError, match="lenet, alexnet, vgg, resnet, alexnet_small, net28"):
        models.build("googlenet")


def test_xavier_init_changes_weights_only():
    net = models.build("lenet")
    bias = net[0].bias.clone()
    w = net[0].weight.clone()
    models.init_xavier(net)
    assert not torch.equal(w, net[0].weight)
    assert torch.equal(bias, net[0].bias)
    bound = (6 / (25 * 1 + 25 * 6)) ** 0.5  # xavier-uniform bound for conv 1->6 k5
    assert net[0].weight.abs().max() <= bound


def test_layer_shapes_as_the_lab_printed():
    rows = models.layer_shapes(models.build("lenet"), 28)
    assert rows[0] == ("Conv2d", (1, 6, 28, 28))
    assert ("Flatten", (1, 400)) in rows
    assert rows[-1] == ("Linear", (1, 10))


def test_forward_flops_lenet():
    # conv1: 28*28*6*25 MACs, conv2: 10*10*16*150, fc: 400*120 + 120*84 + 84*10; 2 flops/MAC.
    macs = 28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 + 84 * 10
    assert models.forward_flops("lenet", 28) == 2 * macs
