"""The lab's settings: each network's baseline and the one-factor-at-a-time variations the lab
ran around it (DESIGN.md, "The lab's experiments"). Plain SGD or Adam, constant learning rate."""

from __future__ import annotations

# optimizer, lr, epochs, batch size, DataLoader workers (0: hpsearch's device-resident path)
BASELINES: dict[str, dict] = {
    "lenet": {"optimizer": "sgd", "lr": 0.9, "epochs": 10, "batch_size": 256, "workers": 0},
    "alexnet": {"optimizer": "sgd", "lr": 0.01, "epochs": 10, "batch_size": 128, "workers": 4},
    "vgg": {"optimizer": "sgd", "lr": 0.05, "epochs": 10, "batch_size": 128, "workers": 4},
    "resnet": {"optimizer": "sgd", "lr": 0.05, "epochs": 10, "batch_size": 256, "workers": 0},
    # Not in the lab's tables; the lab trained these two the way it trained AlexNet and LeNet.
    "alexnet_small": {"optimizer": "sgd", "lr": 0.01, "epochs": 10, "batch_size": 128, "workers": 0},
    "net28": {"optimizer": "sgd", "lr": 0.1, "epochs": 10, "batch_size": 256, "workers": 0},
}


def baseline(model: str) -> dict:
    return dict(BASELINES[model])
