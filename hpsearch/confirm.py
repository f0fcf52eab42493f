"""`python -m hpsearch.confirm`: the same as `hpsearch confirm` (hpsearch/cli/confirm.py)."""

if __name__ == "__main__":
    from hpsearch.cli import entry

    entry("confirm")
