"""Dataset-scale jobs: one function over many cases, here one after the other or as Ray tasks on
the department's cluster (``--ray``), with the same results either way.

``run_cases(work, cases)`` returns ``work(case)`` for every case, in the order of ``cases``, and
reports progress with the project's callback (``progress(done, total)``, as
``cli.progress.progress_bar``'s ``update_to``). ``work`` must be picklable for Ray: a module-level
function, or a ``functools.partial`` of one; so must the cases and the results. Without Ray a
failing case stops the run at once; with Ray every case runs, then the first failure is raised
as its own error (the same clear message as without Ray).

A command adds ``--ray`` and ``--address`` with ``add_ray_arguments`` and passes
``RayOptions.from_args(args)``; ``samsegment priors --image-dir`` does so, and ``evaluate
--dataset`` can do the same.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import SAMSegmentError

Case = TypeVar("Case")
Result = TypeVar("Result")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RayOptions:
    enabled: bool = False
    address: str | None = None  # None: a local Ray cluster on this machine
    cpus_per_case: float = 1.0
    gpus_per_case: float = 0.0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RayOptions:
        return cls(args.ray, args.address, args.cpus_per_case, args.gpus_per_case)


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cases as Ray tasks (needs the 'server' extra)")
    group.add_argument("--ray", action="store_true", help="run the cases as Ray tasks")
    group.add_argument("--address", help="an existing Ray cluster (e.g. ray://head:10001); default: a local one")
    group.add_argument("--cpus-per-case", type=float, default=1.0, help="CPU cores per case (default 1)")
    group.add_argument("--gpus-per-case", type=float, default=0.0, help="GPU share per case (default 0)")


def run_cases(
    work: Callable[[Case], Result],
    cases: Sequence[Case],
    options: RayOptions = RayOptions(),
    progress: Progress | None = None,
) -> list[Result]:
    """``work(case)`` for each case, in order; as Ray tasks if ``options.enabled``."""
    report = progress or (lambda done, total: None)
    if not options.enabled:
        results = []
        for number, case in enumerate(cases, start=1):
            results.append(work(case))
            report(number, len(cases))
        return results
    return _run_on_ray(work, cases, options, report)


def _run_on_ray(
    work: Callable[[Case], Result], cases: Sequence[Case], options: RayOptions, report: Progress
) -> list[Result]:
    try:
        import ray
    except ImportError:
        raise SAMSegmentError("--ray needs Ray: pip install 'samsegment[server]' (or 'ray[serve]').") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=options.address, include_dashboard=False, logging_level=logging.WARNING)
    try:
        # Ray takes functions and classes only: ``work`` (a partial, say) travels as an argument.
        task: Any = ray.remote(num_cpus=options.cpus_per_case, num_gpus=options.gpus_per_case)(_call)
        references = [task.remote(work, case) for case in cases]
        waiting, done = list(references), 0
        report(0, len(cases))
        while waiting:
            finished, waiting = ray.wait(waiting, num_returns=1)
            done += len(finished)
            report(done, len(cases))
        try:
            return ray.get(references)
        except ray.exceptions.RayTaskError as error:
            raise error.as_instanceof_cause() from None  # the case's own error, as without Ray
    finally:
        if started_here:
            ray.shutdown()


def _call(work: Callable[[Case], Result], case: Case) -> Result:
    return work(case)
