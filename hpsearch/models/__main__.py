"""`python -m hpsearch.models`: the same as `hpsearch models` (hpsearch/cli/models.py)."""

from hpsearch.cli import entry

entry("models")
