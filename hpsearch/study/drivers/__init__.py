"""How a study's trials get run, from one process to a cluster (hpsearch/study/run.py picks
one); each driver runs the same trial loop (hpsearch/study/loop.py) on the same storage, which coordinates them:

    local.py       this process is the worker (and the dry run)
    workers.py     worker processes on this machine (--devices, --jobs)
    cluster.py     Ray: placement by CPUs and GPUs, refusals, the task a worker runs
    ray_driver.py  Ray: connect, start the tasks, a line per finished trial (--ray)
"""
