"""Run by torchrun in tests/assemble/train/test_distributed.py: train the runs a JSON plan lists.

``python -m torch.distributed.run --standalone --nproc_per_node 2 distributed_worker.py PLAN.json``;
each entry is ``{"spec": {...}, "out_dir": ..., "stop_at_step": N}`` or ``{"resume": RUN_DIR, "overrides": [...]}``.
"""

from __future__ import annotations

import json
import sys

from stackform.assemble import train


def main(plan_path: str) -> None:
    for job in json.loads(open(plan_path).read()):
        if "resume" in job:
            train(resume=job["resume"], overrides=job.get("overrides", ()), quiet=True)
        else:
            train(job["spec"], out_dir=job["out_dir"], stop_at_step=job.get("stop_at_step"), quiet=True)


if __name__ == "__main__":
    main(sys.argv[1])
