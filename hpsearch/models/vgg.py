"""VGG-11 with every channel count divided by a ratio (4 in the lab)."""

from torch import nn

from hpsearch.models.common import ModelSpec, flat_features

VGG11_BLOCKS = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))  # (convs, channels)


def vgg_block(convs: int, in_channels: int, out_channels: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1),
                   nn.ReLU()]
    return layers + [nn.MaxPool2d(kernel_size=2, stride=2)]


def vgg(size: int = 224, ratio: int = 4) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 1
    for convs, width in VGG11_BLOCKS:
        layers += vgg_block(convs, channels, width // ratio)
        channels = width // ratio
    features = nn.Sequential(*layers, nn.Flatten())
    return nn.Sequential(
        *features,
        nn.Linear(flat_features(features, size), 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 10),
    )


SPEC = ModelSpec("vgg", vgg, 224, "VGG-11, channels / 4",
                 baseline={"optimizer": "sgd", "lr": 0.05, "epochs": 10, "batch_size": 128,
                           "workers": 4},
                 budget_sizes=(224, 128, 96, 64))
