"""`python -m hpsearch.report`: the same as `hpsearch report` (hpsearch/cli/report.py)."""

if __name__ == "__main__":
    from hpsearch.cli import entry

    entry("report")
