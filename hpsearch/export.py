"""`python -m hpsearch.export`: the same as `hpsearch export` (hpsearch/cli/export.py)."""

if __name__ == "__main__":
    from hpsearch.cli import entry

    entry("export")
