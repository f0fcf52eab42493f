"""ResNet-18 for 1-channel inputs."""

import torch
from torch import nn
from torch.nn import functional as F

from hpsearch.models.common import ModelSpec


class Residual(nn.Module):
    """conv3-BN-ReLU-conv3-BN, plus the input (through a strided 1x1 conv when the shape
    changes), then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, stride=stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = (
            nn.Conv2d(in_channels, out_channels, 1, stride=stride)
            if stride != 1 or in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


def stage(in_channels: int, out_channels: int, blocks: int, first: bool) -> nn.Sequential:
    """BLOCKS residual blocks; all but the first stage halve the size in their first block."""
    stride = 1 if first else 2
    return nn.Sequential(
        Residual(in_channels, out_channels, stride),
        *(Residual(out_channels, out_channels) for _ in range(blocks - 1)),
    )


def resnet(size: int = 96) -> nn.Sequential:
    # Global average pooling makes the head independent of SIZE; the stem and three strided
    # stages divide the side by 32, and any side of at least 1 pixel survives that.
    return nn.Sequential(
        nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        stage(64, 64, 2, first=True),
        stage(64, 128, 2, first=False),
        stage(128, 256, 2, first=False),
        stage(256, 512, 2, first=False),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
        nn.Linear(512, 10),
    )


SPEC = ModelSpec("resnet", resnet, 96, "ResNet-18",
                 baseline={"optimizer": "sgd", "lr": 0.05, "epochs": 10, "batch_size": 256,
                           "workers": 0},
                 budget_sizes=(96, 64, 48, 32))
