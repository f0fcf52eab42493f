"""`python -m hpsearch`: the same as the `hpsearch` command."""

from hpsearch.cli import console

console()
