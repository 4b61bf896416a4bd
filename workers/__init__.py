"""What runs on a worker: the trial runner, our checkpoint store, preemption and deadline handling, carbon.

Only `workers.tune` imports Ray; everything else runs (and is benchmarked) without it.
"""
