"""The training engine, with no Optuna in it: Fashion-MNIST on the device (data.py), where
batches come from (batches.py), device and precision policy (device.py), one training run
(train.py), the plain config it takes (config.py, no torch) and the cost model (cost.py).

Nothing is imported here, so the torch-free config stays quick to import.
"""
