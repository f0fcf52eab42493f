"""`python -m hpsearch.dashboard`: the same as `hpsearch dashboard` (hpsearch/cli/dashboard.py)."""

if __name__ == "__main__":
    from hpsearch.cli import entry

    entry("dashboard")
