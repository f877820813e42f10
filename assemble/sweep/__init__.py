"""``stackform sweep``: variants of a base spec x seeds on one budget, run as normal run folders, and
a report with paired tests over seeds (docs/sweeps.md). The sweep file itself is ``stackform.specs.sweep``.

    plan = make_plan("my-sweep.yaml")      # every run validated; SpecError at the sweep file's place
    execute(plan)                          # train what is not done (resumes half-finished runs)
    results = collect(plan)                # final losses, speeds, paired t-tests against the baseline
"""

from .execute import execute, run_status
from .plan import Plan, SweepRun, make_plan
from .results import SweepResults, collect

__all__ = ["Plan", "SweepResults", "SweepRun", "collect", "execute", "make_plan", "run_status"]
