"""The Optuna layer: a study over one network's search space, from its file to its trials.
The only layer besides results/ that imports Optuna; the engine and the networks never see it.

    space.py      search-space and lab files (TOML), checked before any trial runs
    defaults.py   names and defaults without Optuna (samplers, pruners, storage), for --help
    options.py    a study run's options: frozen Store, Extent, Search, Fidelity, Placement
    storage.py    which storage, opened how; the claim that serialises trial starts
    resume.py     the stored setup a resumed study must keep; the baseline and lab rows
    search.py     samplers and pruners; pruners.py the epoch-aware median pruner
    plan.py       the plan before the first trial; the fidelity a budget picks
    budget.py     the study's stored cost model, what its budget has left
    objective.py  one trial: suggest, train, store, report, prune; hooks.py what else
                  a study does around a trial (bars, budget stop, curve artifact)
    loop.py       the trial loop: counts, the shared total, stale trials, stopping
    output.py     the lines a study says (trial lines, summary); Optuna's logging
    console.py    where those lines go (the command line hands one in)
    artifacts.py  learning-curve artifacts; notes.py the dashboard note
    run.py        a study run: the driver its options name
    drivers/      one process, worker processes, Ray

Nothing is imported here, so `hpsearch study --help` stays quick.
"""
