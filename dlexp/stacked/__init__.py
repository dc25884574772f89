"""Many small jobs trained as ONE stacked model: weights (N, out, in), batched matrix products, one batched
optimizer update with per-job hyper-parameters, each job's numbers equal to its single run's.

    plan = plan_groups(exps)                 # which jobs can share a stack; why the others cannot
    group = StackedGroup([exps[i] for i in plan.groups[0]])
    endings = fit_stacked(group, states, observers, schedules)     # loop.fit for every job of the group
"""

from dlexp.stacked.group import MAX_GROUP, Plan, StackedGroup, job_problem, plan_groups
from dlexp.stacked.loop import Ending, fit_stacked

__all__ = ["Ending", "MAX_GROUP", "Plan", "StackedGroup", "fit_stacked", "job_problem", "plan_groups"]
