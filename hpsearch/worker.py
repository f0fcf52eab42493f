"""`python -m hpsearch.worker`: the same as `hpsearch worker` (hpsearch/cli/worker.py)."""

if __name__ == "__main__":
    from hpsearch.cli import entry

    entry("worker")
