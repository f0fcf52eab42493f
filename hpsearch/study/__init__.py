"""Optuna studies over one network's search space: `python -m hpsearch.study`.

    options.py  the command line, parsed once into a frozen StudyOptions
    resume.py   the space, the stored setup that a resumed study must keep, the lab's rows
    search.py   samplers and pruners
    run.py      one worker: data, objective, the trial loop, what it prints
    loop.py     the trial loop: counts, the total shared by workers, stale trials, stopping
    workers.py  several worker processes on one storage (--devices, --jobs)
    output.py   trial lines, summary, Optuna's logging

Nothing is imported here, so `--help` stays quick.
"""
