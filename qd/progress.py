"""Progress of a run: a tqdm bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    """Show a run's progress from its metrics lines.

    On a terminal: a tqdm bar. Otherwise (output piped to a file): a log line after the first
    generation, then every ``log_every`` evaluations, every 5% of the budget or every 30 s,
    whichever comes first.

    Args:
        total: evaluations of the whole run.
        start: evaluations already done (resume).
        log_every: most evaluations between two log lines.
        progress: ``True`` bar, ``False`` log lines, ``None`` bar only on a terminal.
        label: prefix of the log lines (e.g. ``"3 seeds"``).
    """

    def __init__(
        self,
        total: int,
        start: int,
        log_every: int,
        progress: bool | None,
        *,
        label: str = "",
        seconds: float = 30.0,
    ) -> None:
        self.tty = sys.stderr.isatty() if progress is None else progress
        self.step = max(1, min(int(log_every), -(-int(total) // 20)))
        self.next_log = (start // self.step + 1) * self.step
        self.seconds = seconds
        self.last_time = time.monotonic()
        self.label = f"{label}: " if label else ""
        self.bar = None
        self.first = True
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="eval", dynamic_ncols=True)

    def update(self, line: dict) -> None:
        """Report the latest metrics line (``evaluations``, ``coverage``, ``max_reward``...)."""
        best = max(line["max_reward"], default=None)  # envs without reward areas: best return
        what = "best reward"
        if best is None:
            best, what = line.get("max_return"), "best return"
            best = 0.0 if best is None else best
        if self.bar is not None:
            self.bar.update(line["evaluations"] - self.bar.n)
            self.bar.set_postfix(
                cov=f"{line['coverage']:.3f}",
                best=f"{best:.3f}",
                rate=f"{line['evals_per_s']:.0f}/s",
            )
            return
        now = time.monotonic()
        due = line["evaluations"] >= self.next_log or now - self.last_time >= self.seconds
        if due or self.first:
            self.first = False
            print(
                f"{self.label}evaluations {line['evaluations']}: coverage {line['coverage']:.3f} "
                f"(archive {line['coverage_archive']:.3f}), {what} {best:.3f}, "
                f"archive {line['archive_size']}, {line['evals_per_s']:.0f} evals/s",
                flush=True,
            )
            self.last_time = now
            while self.next_log <= line["evaluations"]:
                self.next_log += self.step

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()
