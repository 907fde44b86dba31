"""Driving an EvoTorch searcher ask/tell, and its checkpoint state as tensors.

An EvoTorch searcher owns its loop: ``searcher.step()`` samples, calls
``problem.evaluate(batch)`` (once, or twice for GA / MAP-Elites's first step) and updates
itself. :class:`SteppedSearcher` runs ``step()`` unchanged in a helper thread whose problem
evaluates through a :class:`Handoff`: each batch the step asks for is handed out to the run
loop (``next_batch``) and the step waits for the outcomes (``answer``). Only one thread runs
at a time, so a run is as deterministic as EvoTorch's own loop.

:func:`searcher_state` / :func:`load_searcher_state` save what a step reads from one step to
the next, between steps: every tensor attribute of the searcher, its ``_steps_count`` and
``_first_iter``, its population (values and evaluations), its distribution's parameters, its
center optimizer (ClipUp's velocity, a torch optimizer's state) and the problem's generator.
"""

from __future__ import annotations

import queue
import threading
import weakref

import torch
from evotorch import SolutionBatch

_STEP = "step"
_STOP = "stop"
SCALARS = ("_steps_count", "_first_iter")


class _Stopped(Exception):
    """Raised inside a step whose searcher is being closed."""


class Handoff:
    """The evaluator of a :class:`SteppedSearcher`'s problem: ``evaluate`` hands the genomes to
    the run loop and returns the outcomes the loop answers with."""

    def __init__(self) -> None:
        self.events: queue.Queue = queue.Queue()
        self.replies: queue.Queue = queue.Queue()

    def evaluate(self, genomes: torch.Tensor, **_):
        self.events.put(("batch", genomes.detach().clone()))
        reply = self.replies.get()
        if reply is _STOP:
            raise _Stopped
        return reply


def _work(searcher, commands: queue.Queue, events: queue.Queue, threads: int) -> None:
    """The helper thread: one ``searcher.step()`` per command (it holds no driver reference,
    so a dropped driver is collected and closes it)."""
    torch.set_num_threads(threads)  # OpenMP's thread count is per thread
    while commands.get() is not _STOP:
        try:
            searcher.step()
        except _Stopped:
            return
        except BaseException as err:  # handed to the run loop, which raises it
            events.put(("error", err))
            return
        events.put(("done", None))


def _stop(commands: queue.Queue, replies: queue.Queue) -> None:
    commands.put(_STOP)
    replies.put(_STOP)


class SteppedSearcher:
    """An EvoTorch searcher stepped in a helper thread, its evaluations handed out.

    Args:
        searcher: the searcher, built on a problem whose evaluator is ``handoff``.
        handoff: the problem's evaluator.
        name: the searcher's name (for errors).
    """

    def __init__(self, searcher, handoff: Handoff, name: str) -> None:
        self.searcher, self.handoff, self.name = searcher, handoff, name
        self._commands: queue.Queue = queue.Queue()
        self.pending: torch.Tensor | None = None  # a batch the step waits for
        self.mid_step = False
        self._thread = threading.Thread(
            target=_work,
            args=(searcher, self._commands, handoff.events, torch.get_num_threads()),
            daemon=True,
            name=f"evotorch-{name}",
        )
        self._thread.start()
        # a dropped driver stops its thread (idle: the command; mid-step: the reply)
        weakref.finalize(self, _stop, self._commands, handoff.replies)

    def next_batch(self) -> torch.Tensor:
        """The genomes the searcher wants evaluated next (starting a step when none waits)."""
        for _ in range(100):
            if self.pending is not None:
                return self.pending
            self._commands.put(_STEP)
            self.mid_step = True
            self._wait()
        raise RuntimeError(f"EvoTorch {self.name}: 100 steps evaluated nothing")

    def answer(self, outcomes) -> None:
        """Give the pending batch its outcomes; returns when the step ended or asked again."""
        if self.pending is None:
            raise RuntimeError("answer() without a pending batch")
        self.pending = None
        self.handoff.replies.put(outcomes)
        self._wait()

    def _wait(self) -> None:
        kind, value = self.handoff.events.get()
        if kind == "error":
            self.mid_step = False
            raise RuntimeError(f"EvoTorch {self.name} failed in step(): {value!r}") from value
        if kind == "batch":
            self.pending = value
        else:
            self.mid_step = False

    def close(self) -> None:
        """Stop the helper thread (also mid-step)."""
        if self._thread.is_alive():
            (self.handoff.replies if self.mid_step else self._commands).put(_STOP)
            self._thread.join(timeout=5)


# -- checkpoint state --------------------------------------------------------------------------
def searcher_state(searcher, prefix: str, tensors: dict) -> dict:
    """Add the searcher's state to ``tensors`` (keys ``prefix...``); returns the JSON meta."""
    meta: dict = {"type": type(searcher).__name__, "attrs": []}
    for name, value in vars(searcher).items():
        if name in SCALARS:
            meta[name] = value
        elif isinstance(value, torch.Tensor):
            tensors[f"{prefix}attr.{name}"] = value.detach().contiguous().clone()
            meta["attrs"].append(name)
    population = getattr(searcher, "_population", None)
    meta["population"] = None if population is None else len(population)
    if population is not None:
        tensors[f"{prefix}pop.values"] = population.values.as_subclass(torch.Tensor).clone()
        tensors[f"{prefix}pop.evdata"] = population._evdata.clone()
    dist = getattr(searcher, "_distribution", None)
    if dist is not None:
        meta["dist"] = sorted(k for k, v in dist.parameters.items() if torch.is_tensor(v))
        for key in meta["dist"]:
            tensors[f"{prefix}dist.{key}"] = dist.parameters[key].clone()
    meta["optimizer"] = _optimizer_state(getattr(searcher, "_optimizer", None), prefix, tensors)
    generator = searcher.problem.generator
    tensors[f"{prefix}generator"] = generator.get_state()
    return meta


def load_searcher_state(searcher, prefix: str, tensors: dict, meta: dict) -> None:
    """Restore :func:`searcher_state` into a searcher built with the same settings."""
    if meta["type"] != type(searcher).__name__:
        raise ValueError(f"checkpoint holds a {meta['type']}, not a {type(searcher).__name__}")
    for name in SCALARS:
        if name in meta:
            setattr(searcher, name, meta[name])
    for name in meta["attrs"]:
        setattr(searcher, name, tensors[f"{prefix}attr.{name}"].clone())
    problem = searcher.problem
    if meta["population"] is not None:
        batch = SolutionBatch(
            problem, popsize=meta["population"], device=problem.device, empty=True
        )
        batch.access_values()[:] = tensors[f"{prefix}pop.values"]
        batch._evdata[:] = tensors[f"{prefix}pop.evdata"]
        searcher._population = batch
    if "dist" in meta:
        params = {k: tensors[f"{prefix}dist.{k}"].clone() for k in meta["dist"]}
        searcher._distribution = searcher._distribution.modified_copy(**params)
    _load_optimizer_state(getattr(searcher, "_optimizer", None), prefix, tensors, meta["optimizer"])
    problem.generator.set_state(tensors[f"{prefix}generator"].cpu())  # a CPU byte tensor


def _optimizer_state(optimizer, prefix: str, tensors: dict) -> dict | None:
    if optimizer is None:
        return None
    meta: dict = {"attrs": [], "torch": []}
    inner = getattr(optimizer, "_optim", None)  # a torch optimizer: its parameter is scratch
    for name, value in vars(optimizer).items():
        if isinstance(value, torch.Tensor) and not (inner is not None and name == "_data"):
            tensors[f"{prefix}opt.{name}"] = value.detach().clone()
            meta["attrs"].append(name)
    if inner is not None:
        for key, value in inner.state_dict()["state"].get(0, {}).items():
            tensors[f"{prefix}opt.torch.{key}"] = torch.as_tensor(value).clone()
            meta["torch"].append(key)
    return meta


def _load_optimizer_state(optimizer, prefix: str, tensors: dict, meta: dict | None) -> None:
    if (optimizer is None) != (meta is None):
        raise ValueError("checkpoint and config disagree on the center optimizer")
    if optimizer is None:
        return
    for name in meta["attrs"]:
        setattr(optimizer, name, tensors[f"{prefix}opt.{name}"].clone())
    inner = getattr(optimizer, "_optim", None)
    if inner is not None and meta["torch"]:
        state = inner.state_dict()
        state["state"] = {0: {k: tensors[f"{prefix}opt.torch.{k}"].clone() for k in meta["torch"]}}
        inner.load_state_dict(state)
