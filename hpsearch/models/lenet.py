"""LeNet-5 as the lab built it: sigmoid activations and average pooling."""

from torch import nn

from hpsearch.models.common import ModelSpec, flat_features


def lenet(size: int = 28) -> nn.Sequential:
    features = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
    )
    return nn.Sequential(
        *features,
        nn.Linear(flat_features(features, size), 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10),
    )


SPEC = ModelSpec("lenet", lenet, 28, "LeNet-5, sigmoid + average pooling",
                 baseline={"optimizer": "sgd", "lr": 0.9, "epochs": 10, "batch_size": 256,
                           "workers": 0})
