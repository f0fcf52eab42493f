"""`python -m hpsearch.bench`: the same as `hpsearch bench` (hpsearch/cli/bench.py)."""

if __name__ == "__main__":
    from hpsearch.cli import entry

    entry("bench")
