"""`python -m hpsearch.train`: the same as `hpsearch train` (hpsearch/cli/train.py)."""

if __name__ == "__main__":
    from hpsearch.cli import entry

    entry("train")
