"""The lab's small network for 28x28 inputs."""

from torch import nn

from hpsearch.models.common import ModelSpec, flat_features


def net28(size: int = 28) -> nn.Sequential:
    features = nn.Sequential(
        nn.Conv2d(1, 32, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Conv2d(32, 64, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
    )
    return nn.Sequential(
        *features,
        nn.Linear(flat_features(features, size), 1024), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(1024, 10),
    )


# Not in the lab's tables; the lab trained it the way it trained LeNet.
SPEC = ModelSpec("net28", net28, 28, "the lab's 2-conv network for 28x28",
                 baseline={"optimizer": "sgd", "lr": 0.1, "epochs": 10, "batch_size": 256,
                           "workers": 0})
