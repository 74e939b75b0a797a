"""What every training shares: AdamW, a warmed-up one-cycle schedule, mixed precision, progress."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def warmup_fraction(total_steps: int) -> float:
    """10% warm-up, but at least two steps: OneCycleLR divides by zero when the warm-up ends on
    its first step (exactly 10 steps in all at 10%: a small set split in two folds hit it)."""
    return max(0.1, 2.0 / total_steps) if total_steps >= 4 else 0.1


def mixed_precision(device: torch.device) -> torch.dtype | None:
    """bfloat16 where the GPU has it (no loss scaling needed), float16 on older GPUs, none on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@dataclass
class Optimisation:
    """An optimiser, its one-cycle schedule (warm-up, then cosine down) over `total_steps`, and
    mixed precision on a GPU: what a training step does after its loss, in one place."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.OneCycleLR
    device: torch.device
    # Mixed precision on a GPU (None on a CPU), and the loss scaler float16 needs.
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler

    @classmethod
    def of(cls, optimizer: torch.optim.Optimizer, total_steps: int, device: torch.device) -> Optimisation:
        """Each parameter group peaks at the learning rate it was given."""
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[group["lr"] for group in optimizer.param_groups],
            total_steps=total_steps,
            pct_start=warmup_fraction(total_steps),
            anneal_strategy="cos",
        )
        amp_dtype = mixed_precision(device)
        # float16 needs loss scaling against underflowing gradients; bfloat16 and float32 do not.
        scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        return cls(optimizer, scheduler, device, amp_dtype, scaler)

    @classmethod
    def adamw(
        cls,
        groups: list[dict[str, Any]],
        *,
        weight_decay: float,
        total_steps: int,
        device: torch.device,
    ) -> Optimisation:
        return cls.of(torch.optim.AdamW(groups, weight_decay=weight_decay), total_steps, device)

    @contextmanager
    def autocast(self) -> Iterator[None]:
        """The forward pass in mixed precision where the device has it."""
        dtype = self.amp_dtype or torch.float32
        with torch.autocast(self.device.type, dtype=dtype, enabled=self.amp_dtype is not None):
            yield

    def step(self, loss: torch.Tensor) -> float:
        """Back-propagate `loss`, update the weights, advance the schedule; returns the loss."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return float(loss.detach())

    def state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def restore(self, state: dict[str, Any], total_steps: int) -> None:
        """Back to a checkpoint's state; the schedule stretches to `total_steps` (--epochs may
        have grown since)."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scheduler.total_steps = total_steps


def training_progress(console: Console, heading: str, scores: str = "") -> Progress:
    """The live bar of a training: `heading` and `scores` may name task fields ({task.fields[x]})."""
    return Progress(
        TextColumn(f"[bold]{heading}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}" + scores),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
