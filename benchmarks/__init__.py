"""hpsearch's benchmarks, outside the product package (run from a source checkout):

    scripts/bench ...       = python -m benchmarks ... = hpsearch bench ...

    engine.py      the training engine against the lab's pipeline; pruned vs unpruned study;
                   the command line for all of them
    cost_check.py  the cost model: predicted against measured trial seconds
    ray_check.py   Ray against worker processes
    search.py      samplers and pruners over study seeds
    gpu_check.py   the short check for a GPU host (scripts/gpu-check)
"""
