"""hpsearch: Optuna hyperparameter studies for convolutional networks on Fashion-MNIST."""

__version__ = "0.1.0"
