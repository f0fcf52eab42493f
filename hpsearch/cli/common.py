"""What every command shares: one-line errors with exit status 2 (`run_main`), parsers that
take flags only as written in full, argparse types that name the flag and what is allowed, and
the options several commands take (storage, device, data folder and split, precision, seed).

No torch here: `--help` and read-only commands must not pay for importing it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Callable

from hpsearch.study import defaults
from hpsearch.engine.config import DEFAULT_VAL_SIZE, MIN_SPLIT, PRECISIONS, SEED_LIMIT, TRAIN_IMAGES
from hpsearch.errors import UsageError
from hpsearch.files import try_write
from hpsearch.signals import ignore_signals, interrupt_on_signals, received
from hpsearch.units import parse_duration


def run_main(main: Callable[[], int]) -> int:
    """Run MAIN; a UsageError prints 'error: ...' to stderr and returns 2, without a traceback.
    Ctrl-C or SIGTERM, from the first instruction on, returns 130 with one line."""
    try:
        interrupt_on_signals()
        code = main()
    except KeyboardInterrupt:
        code = _interrupted()
    except Exception as err:
        # A KeyboardInterrupt raised inside an import can come out as another error (Python
        # wraps it into the RuntimeError of a class being made, and that into a refusal): after
        # a signal, any error is the interruption's.
        if received() is not None:
            code = _interrupted()
        elif isinstance(err, UsageError):
            print(f"error: {one_line(str(err))}", file=sys.stderr)
            code = 2
        else:
            raise
    ignore_signals()
    return code


def _interrupted() -> int:
    print("interrupted", file=sys.stderr)
    return 130


MOST = 1_000_000  # the largest count a flag takes unless it says otherwise: more is a typo


def positive(kind: type, name: str, high: int = MOST) -> Callable[[str], object]:
    """argparse type: a number > 0 (a whole one up to HIGH; a finite real one), with a message
    that names the flag and what is allowed."""
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a {kind.__name__}, got {text!r}")
        if not value > 0 or (kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{name} must be a finite number > 0, got {text}"
                                             if kind is float else
                                             f"{name} must be > 0, got {text}")
        if kind is int and value > high:
            raise argparse.ArgumentTypeError(f"{name} must be at most {high:,}, got {text}")
        return value

    return convert


def duration(name: str) -> Callable[[str], float]:
    """argparse type: seconds of a duration (units.parse_duration)."""

    def convert(text: str) -> float:
        try:
            return parse_duration(text, name)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return convert


def one_line(text: str) -> str:
    """TEXT with its control characters (a value's newline or carriage return) written as
    escapes, so that a message quoting what the user typed stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class Parser(argparse.ArgumentParser):
    """Bad input ends in one line (not argparse's usage block above it), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def parser(prog: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """A parser that takes flags only as written in full."""
    return Parser(prog=prog, description=description, epilog=epilog, allow_abbrev=False)


def whole(name: str, high: int | None = None, note: str = ""):
    """argparse type: a whole number >= 0 (and < HIGH where given); NOTE says what 0 means."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, got {text!r}")
        if high is not None and not 0 <= value < high:
            raise argparse.ArgumentTypeError(
                f"{name} must be between 0 and {high - 1}, got {value}")
        if value < 0:
            raise argparse.ArgumentTypeError(f"{name} must be >= 0{note}, got {value}")
        return value

    return convert


def seed(name: str):
    """argparse type: a whole number 0 <= n < 2**32, as numpy's and torch's generators take."""
    return whole(name, SEED_LIMIT)


def add_storage(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", metavar="URL",
                   help=f"SQLAlchemy URL (default: ${defaults.ENV} or {defaults.DEFAULT_URL})")


def storage_url(given: str | None) -> tuple[str, str]:
    """(URL, what named it) from --storage GIVEN, else $HPSEARCH_STORAGE, else the default;
    what named it goes into every message about the storage."""
    if given is not None:
        if not given.strip():
            raise UsageError(f"--storage needs a URL, e.g. {defaults.DEFAULT_URL}")
        return given, "--storage"
    if os.environ.get(defaults.ENV):
        return os.environ[defaults.ENV], f"${defaults.ENV}"
    return defaults.DEFAULT_URL, "the default storage"


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda:0, ...")


def add_data(p: argparse.ArgumentParser) -> None:
    """The data folder and the split: which images train and which validate."""
    p.add_argument("--data-dir", type=Path, metavar="DIR",
                   help="folder with the four Fashion-MNIST IDX files (default: $HPSEARCH_DATA, "
                        "the prepared cache, /usr/share/datasets/fashion-mnist)")
    p.add_argument("--train-subset", type=positive(int, "--train-subset"), metavar="N",
                   help=f"train on a stratified subset of N images of the training split "
                        f"(at least {MIN_SPLIT}: one per class)")
    p.add_argument("--val-size", type=positive(int, "--val-size"), default=DEFAULT_VAL_SIZE,
                   metavar="N", help=f"validation images held out of the {TRAIN_IMAGES:,} "
                                     f"(default {DEFAULT_VAL_SIZE})")


def add_precision(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument("--precision", choices=PRECISIONS, default=default,
                   help="arithmetic of convolutions and matmuls; auto: bfloat16 where the "
                        "device multiplies it natively (CUDA compute capability 8.0+, CPUs "
                        "with AMX or AVX512-BF16), float16 with loss scaling on older CUDA "
                        "GPUs, float32 elsewhere")


def add_seed(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--seed", type=seed("--seed"), default=0, help=help)


def check_training_inputs(device: str, data_dir: Path | None) -> None:
    """A command that trains: its device is there and its named data folder holds the files
    (checked before anything is written or trained)."""
    from hpsearch.engine import data
    from hpsearch.engine.device import check_device

    check_device(device)
    data.check_data_dir(data_dir)


def check_folder_writable(folder: Path, flag: str) -> None:
    """Refuse an output folder that cannot be made or written: not a file, and its nearest
    existing ancestor takes a new file (tried, by creating and removing one). Nothing is
    created here: a refused run leaves no empty folder behind."""
    try:
        _check_folder_writable(folder, flag)
    except OSError as err:  # a name too long, a loop of links: the system says what
        raise UsageError(f"{flag} {folder}: {err.strerror}") from None


def _check_folder_writable(folder: Path, flag: str) -> None:
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{flag} {folder}: is a file; give a folder")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{flag} {folder}: {existing} is a file, not a folder")
    _try_write(existing, flag, folder)


def _try_write(folder: Path, flag: str, path: Path) -> None:
    try:
        try_write(folder)
    except OSError as err:
        raise UsageError(f"{flag} {path}: cannot write in {folder} ({err.strerror})") from None


def check_writable(path: Path, flag: str) -> None:
    """Refuse an output file that cannot be written, before any work is spent on what goes
    into it: its folder must exist and take a new file (tried, by creating and removing one),
    and the file, where it exists, must be a writable file."""
    try:
        _check_writable(path, flag)
    except OSError as err:  # a name too long, a loop of links: the system says what
        raise UsageError(f"{flag} {path}: {err.strerror}") from None


def _check_writable(path: Path, flag: str) -> None:
    folder = path.parent
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; give a file name")
    if not folder.is_dir():
        raise UsageError(f"{flag} {path}: no such folder {folder}; create it first")
    _try_write(folder, flag, path)
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{flag} {path}: the file exists and is not writable")
