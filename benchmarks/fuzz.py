"""Generated bad input for every command and for search-space files (Hypothesis), and the
properties they must keep:

- a command line ends with exit 0 or 2, never a traceback; a refusal (2) is one line and
  leaves the working folder and the storage byte for byte as they were; a command whose
  checks all pass reaches its work (timed steps, the data, training, a retrain, a report, a
  server), which is replaced here by a sentinel, so no case trains or serves anything;
- a space file loads or is refused in one line; one that loads can be planned, put at a
  fidelity, hashed, given the lab's baseline, and every configuration it proposes is one the
  training loop takes.

The test suite runs a bounded, deterministic number of each (tests/test_fuzz.py); `scripts/bench
--fuzz` runs many more and counts them.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import os
import string
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from hypothesis import strategies as st

from benchmarks.inprocess import in_process

# Commands fuzzed, and the modules whose parser each uses (worker takes study's flags).
COMMANDS = ("study", "worker", "train", "confirm", "export", "report", "models", "dashboard")
PARSER_OF = {"worker": "study"}
NAMES = ("lenet", "net28", "resnet", "alexnet", "vgg", "alexnet_small", "lab-lenet", "lab-vgg",
         "made", "", " ", "x", "../x", "LeNet", "lenet ", "ℓenet", "-1", "--")
NUMBERS = ("0", "1", "2", "3", "-1", "-0", "1.5", "1e309", "inf", "-inf", "nan", "0x10",
           "9" * 40, "2147483648", "4294967296", "10000", "59990", "60000", "1_000", " 5", "")
DURATIONS = ("30s", "0s", "1h30m", "2h", "5m", "0.5s", "-5m", "1d", "m", "99999h", "1e309s")
URLS = ("sqlite://", "sqlite:///:memory:", "sqlite:///x.db", "sqlite:///made.db",
        "sqlite:///readonly.db", "sqlite:///folder", "sqlite:///missing/x.db",
        "sqlite:///notadb.db", "garbage", "postgresql://u@127.0.0.1:1/x",
        "postgresql+psycopg2://u:pw@127.0.0.1:1/x", "mysql+pymysql://root@127.0.0.1/x",
        "nosuch://x", "sqlite:///file:made.db?mode=ro&uri=true", "")
PATHS = ("made.db", "folder", "missing/x", "missing", "notadb.db", "readonly.db", "space.toml",
         "bad-space.toml", "latin1.toml", "out.json", "folder/out.json", "readonly.db/x", "",
         "ünïcödé", "/", "/proc/self", "a" * 300)
DEVICES = ("auto", "cpu", "cuda", "cuda:0", "cuda:9", "mps", "meta", "xla", "cpu,cpu", "", ",",
           "cuda:-1", "gpu")
JUNK = ("--", "-x", "--nope", "--tri", "--help-me", "-", "--trials=", "--seed=-1")
# A command line each command takes, which a case may start from (so that generated flags are
# also tried past the first refusal, on a study that exists).
TINY = ["--train-subset", "500", "--val-size", "500", "--max-epochs", "1"]
VALID = {"study": ["lenet", *TINY], "worker": ["lenet", *TINY], "train": ["lenet", *TINY[:4]],
         "confirm": ["made", "--storage", "sqlite:///made.db"],
         "export": ["made", "--storage", "sqlite:///made.db"],
         "report": ["made", "--storage", "sqlite:///made.db"], "models": ["lenet"],
         "dashboard": ["--storage", "sqlite:///made.db"]}


@dataclass
class Tally:
    """What a fuzz run saw."""

    cases: int = 0
    exits: dict = field(default_factory=dict)  # exit status (or "work") -> count
    failures: list = field(default_factory=list)  # (case, what went wrong), first few kept

    def add(self, outcome, case, problem: str | None) -> None:
        self.cases += 1
        self.exits[outcome] = self.exits.get(outcome, 0) + 1
        if problem is not None and len(self.failures) < 20:
            self.failures.append((case, problem))


def parser_flags(command: str) -> list[tuple[str, object]]:
    """(flag, action) of each optional flag COMMAND's parser takes."""
    import importlib

    module = importlib.import_module(f"hpsearch.cli.{PARSER_OF.get(command, command)}")
    p = module.build_parser(f"hpsearch {command}")
    return [(a.option_strings[-1], a) for a in p._actions
            if a.option_strings and a.option_strings[-1] not in ("--help",)]


def value_for(flag: str, action) -> st.SearchStrategy[str]:
    """Values for FLAG: its own choices and typical values, extremes, wrong types, unicode."""
    pools = [st.sampled_from(NUMBERS), st.text(string.printable, max_size=6),
             st.text(max_size=4)]
    if action.choices:
        pools.append(st.sampled_from(list(action.choices)))
    if "storage" in flag:
        pools.append(st.sampled_from(URLS))
    if "device" in flag:
        pools.append(st.sampled_from(DEVICES))
    if flag in ("--budget", "--timeout"):
        pools.append(st.sampled_from(DURATIONS))
    if flag in ("--space", "--out", "--json", "--data-dir", "--artifacts"):
        pools.append(st.sampled_from(PATHS))
    if flag in ("--study-name", "--ray", "--host", "--warm-start"):
        pools.append(st.sampled_from(NAMES + ("local", "127.0.0.1:1", "ray://127.0.0.1:1")))
    return st.one_of(*pools)


@st.composite
def argv_for(draw, command: str) -> list[str]:
    """A command line for COMMAND: maybe a positional, a few of its flags with drawn values
    (or none, for one that takes a value), maybe junk."""
    flags = parser_flags(command)
    argv = []
    if draw(st.booleans()):
        argv = list(VALID[command])
    elif command != "dashboard" and draw(st.integers(0, 9)):
        argv.append(draw(st.sampled_from(NAMES)))
    for _ in range(draw(st.integers(0, 5))):
        flag, action = draw(st.sampled_from(flags))
        argv.append(flag)
        if action.nargs != 0 and draw(st.integers(0, 12)):
            argv.append(draw(value_for(flag, action)))
    if not draw(st.integers(0, 9)):
        argv.insert(draw(st.integers(0, len(argv))), draw(st.sampled_from(JUNK)))
    return argv


class ReachedWork(Exception):
    """A command got through its checks to its first expensive step (replaced by this)."""


# Each first expensive step, by module and name: what a case reaching it would start.
WORK = (("hpsearch.study.budget", "prepare"), ("hpsearch.engine.data", "load"),
        ("hpsearch.engine.train", "train"), ("hpsearch.results.confirm", "confirm"),
        ("hpsearch.results.export", "retrain_and_test"), ("hpsearch.results.report", "write"),
        ("hpsearch.results.dashboard", "make"), ("hpsearch.study.drivers.workers", "run_workers"),
        ("hpsearch.study.drivers.cluster", "import_ray"))


@functools.cache
def import_everything() -> None:
    """Import every hpsearch module (its __main__ modules aside, which run a command), so that
    none is first imported inside no_work, where a `from ... import train` of its would keep
    the sentinel for good."""
    import importlib
    import pkgutil

    import hpsearch

    for info in pkgutil.walk_packages(hpsearch.__path__, "hpsearch."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)


@contextlib.contextmanager
def no_work():
    """Every step of WORK raises ReachedWork while the block runs."""
    import importlib

    import_everything()

    def reached(*args, **kwargs):
        raise ReachedWork

    saved = []
    for module_name, name in WORK:
        module = importlib.import_module(module_name)
        saved.append((module, name, getattr(module, name)))
        setattr(module, name, reached)
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def make_folder(root: Path) -> Path:
    """A working folder holding every kind of path the generated flags name: a real study
    (made.db, study 'made'), a read-only copy where the file system allows one, a folder, a
    file that is no database, space files good and bad."""
    root.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{root / 'made.db'}")
    study = optuna.create_study(study_name="made", storage=storage, direction="maximize")
    study.set_user_attr("setup", {"network": "lenet", "space": "lenet.toml", "seed": 0,
                                  "train_subset": 500, "val_size": 500, "max_epochs": 1,
                                  "resize": None, "precision": "float32",
                                  "objectives": "accuracy"})
    config = {"model": "lenet", "optimizer": "sgd", "lr": 0.9, "epochs": 1, "batch_size": 256}
    for value in (0.5, 0.7):
        study.add_trial(optuna.trial.create_trial(
            params={"lr": 0.9}, distributions={"lr": optuna.distributions.FloatDistribution(
                0.01, 3.0)}, value=value, user_attrs={"config": config}))
    storage.engine.dispose()
    (root / "folder").mkdir(exist_ok=True)
    (root / "notadb.db").write_text("not a database\n")
    (root / "space.toml").write_text('network = "lenet"\n[params.lr]\ntype = "float"\n'
                                     'low = 0.01\nhigh = 1.0\nlog = true\n')
    (root / "bad-space.toml").write_text('network = "lenet"\n[params.lr]\ntype = "float"\n')
    (root / "latin1.toml").write_bytes('network = "lenet" # ré\n'.encode("latin-1"))
    (root / "readonly.db").write_bytes((root / "made.db").read_bytes())
    os.system(f"chattr +i {root / 'readonly.db'} 2>/dev/null")  # root ignores chmod
    return root


def release_folder(root: Path) -> None:
    os.system(f"chattr -i {root / 'readonly.db'} 2>/dev/null")


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ROOT (and the temp folder's hpsearch files) -> its content's hash."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            out[str(path.relative_to(root)) + "/"] = "folder"
    return out


CLEAN_ENV = {"HPSEARCH_STORAGE": "", "HPSEARCH_DATA": "", "HPSEARCH_ARTIFACTS": "",
             "RAY_ADDRESS": ""}


def run_case(command: str, argv: list[str], root: Path) -> tuple[object, str | None]:
    """(outcome, problem): COMMAND on ARGV in ROOT; problem None when the properties hold."""
    before = snapshot(root)
    env = dict(CLEAN_ENV)
    if command == "worker" and not any(a.startswith("--storage") for a in argv):
        env["HPSEARCH_STORAGE"] = "sqlite:///made.db"
    try:
        with no_work():
            ran = in_process(command, argv, root, env, collect=False)
    except ReachedWork:
        return "work", None
    except BaseException as err:  # a traceback the user would see
        return "traceback", f"{type(err).__name__}: {err}"
    if ran.returncode not in (0, 2):
        return ran.returncode, f"exit {ran.returncode}: {ran.stderr.strip()[-300:]}"
    if ran.returncode == 2:
        lines = ran.stderr.strip().splitlines()
        if len(lines) != 1 or "error" not in lines[0]:
            return 2, f"refusal not one line: {ran.stderr.strip()[:300]!r}"
        after = snapshot(root)
        if after != before:
            changed = sorted(set(after.items()) ^ set(before.items()))
            return 2, f"a refused run wrote: {changed[:4]}"
    return ran.returncode, None


# --- space files --------------------------------------------------------------------------

SHIPPED = Path(__file__).resolve().parent.parent / "hpsearch" / "studies"
VALUES = st.one_of(
    st.integers(-3, 3), st.sampled_from([0, 1, 10, 2**31, 2**63 - 1, -2**63]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.text(max_size=6), st.sampled_from(["sgd", "adam", "tpe", "median", "float", "int",
                                          "categorical", "lenet", "epochs", "lr", "bfloat16"]),
    st.lists(st.one_of(st.integers(-2, 600), st.sampled_from(["sgd", "adam", "momentum",
                                                               "nesterov", "rmsprop"]),
                       st.floats(-1, 4)), max_size=4),
    st.just({}), st.just({"x": 1}))


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == float("inf") else
                                     "-inf" if v == float("-inf") else repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}"
                             for c in v) + '"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"


def to_toml(doc: dict) -> str:
    """DOC (tables at most two deep, as space files are) as TOML text."""
    top = [f"{k} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for k, v in doc.items():
        if not isinstance(v, dict):
            continue
        plain = {a: b for a, b in v.items() if not isinstance(b, dict)}
        top.append(f"[{k}]")
        top += [f"{a} = {toml_value(b)}" for a, b in plain.items()]
        for a, b in v.items():
            if isinstance(b, dict):
                top.append(f"[{k}.{a}]")
                top += [f"{c} = {toml_value(d)}" for c, d in b.items()]
    return "\n".join(top) + "\n"


@functools.cache
def shipped_docs() -> tuple[dict, ...]:
    import tomllib

    return tuple(tomllib.loads(p.read_text()) for p in sorted(SHIPPED.glob("*.toml")))


@st.composite
def space_doc(draw) -> dict:
    """A shipped space file's content with a few edits: a key removed, a value replaced (any
    type, extremes), a key or table added."""
    # Copies throughout: a drawn table edited in place would change what later draws see.
    doc = copy.deepcopy(draw(st.sampled_from(shipped_docs())))
    for _ in range(draw(st.integers(1, 4))):
        paths = [(k,) for k in doc] + [(k, a) for k, v in doc.items() if isinstance(v, dict)
                                       for a in v]
        paths += [(k, a, b) for k, v in doc.items() if isinstance(v, dict)
                  for a, t in v.items() if isinstance(t, dict) for b in t]
        what = draw(st.sampled_from(["drop", "set", "add", "tweak", "tweak"]))
        path = draw(st.sampled_from(paths)) if paths else ("network",)
        holder = doc
        for key in path[:-1]:
            holder = holder[key]
        if what == "drop":
            holder.pop(path[-1], None)
        elif what == "tweak":  # near what was there: mostly still a space, at its edges
            holder[path[-1]] = copy.deepcopy(draw(tweaked(holder.get(path[-1]))))
        elif what == "set":
            holder[path[-1]] = copy.deepcopy(draw(VALUES))
        else:
            name = draw(st.sampled_from(["extra", "params", "fixed", "search", "vary",
                                         "baseline", "field", "optimizers", "step", "low"]))
            holder[name] = copy.deepcopy(draw(st.one_of(VALUES, st.just(
                {"type": "int", "low": 1, "high": 3}))))
    return doc


def tweaked(value) -> st.SearchStrategy:
    """VALUE moved a little: a number scaled, shifted or negated, a list shortened, repeated
    or extended with a value of its own kind."""
    if value is None:
        return st.just(1)
    if isinstance(value, (bool, str, dict)):
        return st.just(value)
    if isinstance(value, int):
        return st.sampled_from([value - 1, value + 1, 0, -value, value * 2, value * 1000, 1])
    if isinstance(value, float):
        return st.sampled_from([value / 10, value * 10, 0.0, -value, value + 1e-9, 1.0])
    if isinstance(value, list) and value:
        return st.sampled_from([value[:-1], value + value[-1:], value[::-1], value + [0]])
    return st.just(value)


@st.composite
def space_bytes(draw) -> bytes:
    """A space file as bytes: an edited shipped one, sometimes with broken TOML or bytes that
    are not UTF-8 put in."""
    text = to_toml(draw(space_doc())).encode()
    how = draw(st.integers(0, 9))
    if how == 0:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.binary(min_size=1, max_size=4)) + text[at:]
    elif how == 1:
        text = text[:draw(st.integers(0, len(text)))]
    return text


@contextlib.contextmanager
def few_samples(plans, n: int = 20):
    """The plan reads N configs of a space instead of its 300 (a fuzz run loads thousands),
    and forgets them after."""
    saved = plans.SAMPLES
    plans.SAMPLES = n
    try:
        yield
    finally:
        plans.SAMPLES = saved
        plans._SAMPLED.clear()


def check_space(content: bytes) -> tuple[str, str | None]:
    """(outcome: loaded, refused or failed; what went wrong) for a space file holding CONTENT,
    by the space properties of the module doc."""
    from hpsearch.engine.config import TrainConfig
    from hpsearch.engine.train import check_config
    from hpsearch.errors import UsageError
    from hpsearch.study import plan as plans, space as spaces
    from hpsearch.study.options import Fidelity
    from hpsearch.study.resume import at_fidelity, baseline_params, space_digest

    with tempfile.TemporaryDirectory() as tmp, few_samples(plans):
        path = Path(tmp) / "space.toml"
        path.write_bytes(content)
        try:
            space = spaces.load(path)
        except UsageError as err:
            return (("refused", None) if "\n" not in str(err) else
                    ("failed", f"refusal not one line: {err}"))
        except Exception as err:
            return "failed", f"load: {type(err).__name__}: {err}"
        try:
            capped = at_fidelity(space, Fidelity(max_epochs=2))
            plans.workload(capped, Fidelity())
            space_digest(capped)
            baseline_params(space)
            for cfg in plans.sample_configs(capped):
                check_config(TrainConfig(model=space.network, **cfg))
        except UsageError as err:
            return "failed", f"loaded, then refused later: {err}"
        except Exception as err:
            return "failed", f"loaded, then {type(err).__name__}: {err}"
    return "loaded", None


# --- the long run (scripts/bench --fuzz) --------------------------------------------------

def run(argv_cases: int, space_cases: int, say) -> dict:
    """ARGV_CASES command lines (shared out over COMMANDS) and SPACE_CASES space files,
    counted: outcomes by exit status, and the first failures with their input."""
    from hypothesis import HealthCheck, given, settings

    def cases(n: int):
        return settings(max_examples=n, database=None, deadline=None,
                        suppress_health_check=list(HealthCheck))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    doc = {"argv": {}, "spaces": None}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_folder(Path(tmp) / "work")
        try:
            for command in COMMANDS:
                tally = Tally()

                @cases(argv_cases // len(COMMANDS))
                @given(argv=argv_for(command))
                def one(argv):
                    record(tally, command, argv, root)

                one()
                doc["argv"][command] = tally_doc(tally)
                say(f"fuzz: {command}: {tally.cases} command lines, {tally.exits}, "
                    f"{len(tally.failures)} failures")
        finally:
            release_folder(root)
    spaces_tally = Tally()

    @cases(space_cases)
    @given(content=space_bytes())
    def one_space(content):
        outcome, problem = check_space(content)
        spaces_tally.add(outcome, content, problem)

    one_space()
    doc["spaces"] = tally_doc(spaces_tally)
    say(f"fuzz: {spaces_tally.cases} space files, {len(spaces_tally.failures)} failures")
    return doc


def record(tally: Tally, command: str, argv: list[str], root: Path) -> None:
    outcome, problem = run_case(command, argv, root)
    tally.add(outcome, argv, problem)


def tally_doc(tally: Tally) -> dict:
    return {"cases": tally.cases, "exits": {str(k): v for k, v in tally.exits.items()},
            "failures": [[repr(case), problem] for case, problem in tally.failures]}


def table(doc: dict) -> str:
    lines = ["| input | cases | outcomes | failures |", "|---|---|---|---|"]
    for command, t in doc["argv"].items():
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(t["exits"].items()))
        lines.append(f"| hpsearch {command} command lines | {t['cases']} | {outcomes} | "
                     f"{len(t['failures'])} |")
    s = doc["spaces"]
    outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(s["exits"].items()))
    lines.append(f"| space files | {s['cases']} | {outcomes} | {len(s['failures'])} |")
    total = sum(t["cases"] for t in doc["argv"].values())
    failed = sum(len(t["failures"]) for t in doc["argv"].values()) + len(s["failures"])
    lines += ["", f"{total} command lines, {s['cases']} space files: {failed} failures "
                  "(tracebacks, refusals over one line, refused runs that wrote)"]
    for t in [*doc["argv"].values(), s]:
        lines += [f"- {case}: {problem}" for case, problem in t["failures"][:5]]
    return "\n".join(lines)
