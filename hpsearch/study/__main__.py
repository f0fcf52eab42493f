"""`python -m hpsearch.study`: the same as `hpsearch study` (hpsearch/cli/study.py)."""

from hpsearch.cli import entry

entry("study")
