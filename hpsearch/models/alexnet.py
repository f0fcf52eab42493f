"""AlexNet for 1-channel inputs, and the lab's simplified variant."""

from torch import nn

from hpsearch.models.common import ModelSpec, flat_features


def alexnet(size: int = 224) -> nn.Sequential:
    features = nn.Sequential(
        nn.Conv2d(1, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Flatten(),
    )
    return nn.Sequential(
        *features,
        nn.Linear(flat_features(features, size), 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 10),
    )


def alexnet_small(size: int = 224) -> nn.Sequential:
    features = nn.Sequential(
        nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 128, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(128, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Flatten(),
    )
    return nn.Sequential(
        *features,
        nn.Linear(flat_features(features, size), 1024), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(1024, 10),
    )


SPEC = ModelSpec("alexnet", alexnet, 224, "AlexNet, 5 conv + 3 linear",
                 baseline={"optimizer": "sgd", "lr": 0.01, "epochs": 10, "batch_size": 128,
                           "workers": 4},
                 budget_sizes=(224, 128, 96, 72))
# Not in the lab's tables; the lab trained it the way it trained AlexNet.
SMALL_SPEC = ModelSpec("alexnet_small", alexnet_small, 224, "the lab's simplified AlexNet",
                       baseline={"optimizer": "sgd", "lr": 0.01, "epochs": 10,
                                 "batch_size": 128, "workers": 0},
                       budget_sizes=(224, 128, 96, 64))
