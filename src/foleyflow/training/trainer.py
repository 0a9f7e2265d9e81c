"""The shared trainer: runs any ``Recipe`` on one CPU or many GPUs through Hugging Face Accelerate.

The same code runs as ``foleyflow train NAME --config C`` or under
``accelerate launch [--num_processes K] -m foleyflow train NAME --config C``.

One training step = ``grad_accum_steps`` micro-batches of ``batch_size`` items per process.
For each optimizer group, in the recipe's declared order, the trainer clears every gradient,
accumulates that group's loss over the micro-batches (gradients synchronised across processes
only on the last one), clips, and steps that group's optimizer and LR schedule. The EMA is
updated once per step. Validation runs with its own fixed seed so it neither consumes nor
depends on the training RNG, which keeps a resumed run identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, send_to_device, set_seed
from diffusers.optimization import get_scheduler

from foleyflow.errors import FoleyflowError, InputError
from foleyflow.models.checkpoint import check_keys
from foleyflow.training import state as ckpt
from foleyflow.training.config import TrainConfig, save_train_config
from foleyflow.training.data import make_loader
from foleyflow.training.ema import EMA
from foleyflow.training.metrics import METRICS_NAME
from foleyflow.training.recipe import Recipe, unwrap

log = logging.getLogger(__name__)

# diffusers' schedule names for ours (all with linear warm-up).
_SCHEDULES = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}
# Keys that may change between a run and its resumption without breaking it.
RESUMABLE_CHANGES = {"max_steps", "val_every", "val_batches", "checkpoint_every", "keep_checkpoints", "log_every", "num_workers", "output_dir"}


class TrainingStopped(FoleyflowError):
    """SIGTERM (a scheduler's pre-emption notice) stopped the run after a checkpoint."""

    exit_code = 143  # 128 + SIGTERM, as a shell reports a process ended by it


@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    model_dir: Path | None
    step: int
    resumed_from: int | None
    val_history: list[dict[str, float]]
    wall_seconds: float


@dataclasses.dataclass
class _Position:
    """Where the run is: optimizer steps done and the place in the training data."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0


class Trainer:
    def __init__(self, config: TrainConfig, recipe: Recipe, run_dir: str | Path | None = None):
        self.config = config
        self.recipe = recipe
        self.run_dir = Path(run_dir) if run_dir is not None else config.run_dir()
        self.accelerator = Accelerator(
            mixed_precision=config.mixed_precision,
            cpu=not torch.cuda.is_available(),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=config.ddp_find_unused_parameters)],
        )
        self.position = _Position()
        self._started = time.perf_counter()
        self._earlier_seconds = 0.0  # wall time of earlier sessions of a resumed run (from its checkpoint)
        self.val_history: list[dict[str, float]] = []
        self._writer = None

    # --- set-up ------------------------------------------------------------------------------

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def _build(self) -> None:
        # Same seed on every process while building, so frozen modules with a random
        # initialisation agree everywhere; then a per-process seed, so that noise and dropout
        # differ between processes as they would within one larger batch.
        set_seed(self.config.seed)
        modules = dict(self.recipe.build())
        set_seed(self.config.seed, device_specific=True)
        self.groups = {group: list(names) for group, names in self.recipe.optimizer_groups().items()}
        trained = [name for names in self.groups.values() for name in names]
        unknown = sorted(set(trained) - set(modules))
        if unknown:
            raise InputError(f"recipe {self.recipe.name}: optimizer groups name unknown modules {', '.join(unknown)}")
        self.trained_names = list(dict.fromkeys(trained))
        device = self.accelerator.device
        self.modules: dict[str, torch.nn.Module] = {}
        for name, module in modules.items():
            if name in self.trained_names:
                # prepare() moves to the device and wraps for distributed training; DDP broadcasts
                # process 0's initial weights, so every process starts from the same model.
                self.modules[name] = self.accelerator.prepare(module.train())
            else:
                module.requires_grad_(False)
                self.modules[name] = module.eval().to(device)
        self.plain = {name: unwrap(module) for name, module in self.modules.items()}
        self._build_optimizers()
        trained_plain = {name: self.plain[name] for name in self.trained_names}
        self.ema = EMA(trained_plain, self.config.ema_decay) if self.config.ema_decay else None

    def _build_optimizers(self) -> None:
        self.optimizers, self.schedulers, self.group_params = {}, {}, {}
        for group, names in self.groups.items():
            settings = self.config.optimizer_for(group)
            params = [p for name in names for p in self.plain[name].parameters() if p.requires_grad]
            if not params:
                raise InputError(f"recipe {self.recipe.name}: optimizer group {group!r} has no trainable parameters")
            optimizer = torch.optim.AdamW(params, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay, eps=settings.eps)
            self.group_params[group] = params
            self.optimizers[group] = self.accelerator.prepare(optimizer)
            # Not prepared: Accelerate would step it once per process; ours counts optimizer steps.
            self.schedulers[group] = get_scheduler(
                _SCHEDULES[settings.lr_schedule], optimizer, num_warmup_steps=settings.warmup_steps, num_training_steps=self.config.max_steps
            )

    def _build_data(self) -> None:
        acc = self.accelerator
        train_set = self.recipe.dataset("train")
        self.train_loader, self.train_sampler = make_loader(
            train_set, self.recipe.collate, self.config.batch_size, acc.process_index, acc.num_processes, self.config.seed, True, self.config.num_workers
        )
        self.val_loader = None
        if self.config.val_batches:
            val_set = self.recipe.dataset("val")
            if len(val_set):  # type: ignore[arg-type]
                self.val_loader, _ = make_loader(
                    val_set, self.recipe.collate, self.config.batch_size, acc.process_index, acc.num_processes, self.config.seed, False, self.config.num_workers
                )

    # --- the loop ----------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        started = self._started = time.perf_counter()
        self._build()
        self._build_data()
        resumed_from = self._prepare_run_dir()
        batches = self._batches()
        progress = self._progress_bar()
        try:
            with _stop_on_sigterm() as stop_requested:
                while self.position.step < self.config.max_steps:
                    micro_batches = [next(batches) for _ in range(self.config.grad_accum_steps)]
                    figures = self.train_step(micro_batches)
                    self.position.step += 1
                    self._after_step(figures, progress)
                    if self._agreed(stop_requested()):
                        self._stop_with_checkpoint()
        finally:
            progress.close()
        model_dir = self._export(self.run_dir / "model")
        self.accelerator.wait_for_everyone()
        if self._writer is not None:
            self._writer.close()
        return TrainResult(self.run_dir, model_dir, self.position.step, resumed_from, self.val_history, time.perf_counter() - started)

    def export_checkpoint(self, step: int | None, folder: str | Path) -> Path | None:
        """Export the model of the run's checkpoint ``step`` (None: the latest) to ``folder``, as
        training would at that step (EMA weights when the run keeps them), without training.
        Why: a run stopped early, or an earlier step measured better, without a resume hack."""
        kept = ckpt.complete_checkpoints(self.run_dir)
        wanted = [f for f in kept if step is None or f.name == ckpt.checkpoint_name(step)]
        if not wanted:
            names = ", ".join(f.name for f in kept) or "none"
            raise InputError(f"{self.run_dir}: no complete checkpoint {'' if step is None else f'for step {step} '}(kept: {names})")
        source = wanted[-1]
        self._started = time.perf_counter()
        self._build()
        self.load_checkpoint(source)
        return self._export(Path(folder), note=f"exported from checkpoint {source.name}")

    def train_step(self, micro_batches: list[Any]) -> dict[str, float]:
        figures: dict[str, float] = {}
        for group in self.groups:
            self._zero_all_grads()
            group_figures = self._accumulate(group, micro_batches)
            settings = self.config.optimizer_for(group)
            if settings.max_grad_norm is not None:
                norm = self.accelerator.clip_grad_norm_(self.group_params[group], settings.max_grad_norm)
                group_figures["grad_norm"] = float(norm)
            self.optimizers[group].step()
            self.schedulers[group].step()
            group_figures["lr"] = self.schedulers[group].get_last_lr()[0]
            prefix = "" if len(self.groups) == 1 else f"{group}/"
            figures.update({prefix + key: value for key, value in group_figures.items()})
        self._zero_all_grads()
        if self.ema is not None:
            self.ema.update({name: self.plain[name] for name in self.trained_names})
        return figures

    def _accumulate(self, group: str, micro_batches: list[Any]) -> dict[str, float]:
        sums: dict[str, float] = {}
        count = len(micro_batches)
        for index, batch in enumerate(micro_batches):
            with self._sync_gradients(index == count - 1):
                with self.accelerator.autocast():
                    loss, logs = self.recipe.losses(self.modules, batch, group, self.position.step)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{self.recipe.name}: non-finite {group} loss at step {self.position.step}")
                self.accelerator.backward(loss / count)
            for key, value in {"loss": float(loss.detach()), **logs}.items():
                sums[key] = sums.get(key, 0.0) + float(value) / count
        return sums

    @contextlib.contextmanager
    def _sync_gradients(self, sync: bool) -> Iterator[None]:
        """Skip the gradient all-reduce on all but the last micro-batch of a step."""
        with contextlib.ExitStack() as stack:
            if not sync:
                for name in self.trained_names:
                    stack.enter_context(self.accelerator.no_sync(self.modules[name]))
            yield

    def _zero_all_grads(self) -> None:
        # All groups, not just the next one: an adversarial loss also fills the other network's grads.
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)

    def _batches(self) -> Iterator[Any]:
        """Training batches forever, epoch after epoch, keeping the data position up to date."""
        device = self.accelerator.device
        while True:
            self.train_sampler.set_position(self.position.epoch, self.position.batches_in_epoch)
            for batch in self.train_loader:
                self.position.batches_in_epoch += 1
                yield send_to_device(batch, device)
            self.position.epoch += 1
            self.position.batches_in_epoch = 0

    def _after_step(self, figures: dict[str, float], progress: Any) -> None:
        step, config = self.position.step, self.config
        progress.update(1)
        progress.set_postfix({key: f"{value:.4g}" for key, value in figures.items() if key.endswith("loss")}, refresh=False)
        if step % config.log_every == 0 or step == config.max_steps:
            self._log("train", figures)
        if step % config.val_every == 0 or step == config.max_steps:
            self.validate()
        if step % config.checkpoint_every == 0 or step == config.max_steps:
            self.save_checkpoint()

    def _agreed(self, flag: bool) -> bool:
        """True on every process as soon as one process has the flag (so all stop at one step)."""
        if self.accelerator.num_processes == 1:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.accelerator.device)
        return bool(self.accelerator.reduce(value, reduction="sum").item() > 0)

    def _stop_with_checkpoint(self) -> None:
        step = self.position.step
        if step % self.config.checkpoint_every and step != self.config.max_steps:
            self.save_checkpoint()
        raise TrainingStopped(f"stopped by SIGTERM after step {step}; checkpoint saved in {self.run_dir}, run the same command to resume")

    # --- validation --------------------------------------------------------------------------

    @torch.no_grad()
    def validate(self) -> dict[str, float] | None:
        if self.val_loader is None:
            return None
        use_ema = self.ema is not None and self.config.ema_on_validation
        trained = {name: self.plain[name] for name in self.trained_names}
        swap = self.ema.swapped_in(trained) if use_ema else contextlib.nullcontext()
        with _isolated_rng(self.config.seed), swap, _eval_mode(trained.values()):
            sums: dict[str, float] = {}
            batches = 0
            for batch in self.val_loader:
                if batches == self.config.val_batches:
                    break
                with self.accelerator.autocast():
                    figures = self.recipe.validate(self.plain, send_to_device(batch, self.accelerator.device))
                for key, value in figures.items():
                    sums[key] = sums.get(key, 0.0) + float(value)
                batches += 1
        keys = sorted(sums)
        local = torch.tensor([sums[key] / max(batches, 1) for key in keys], dtype=torch.float64, device=self.accelerator.device)
        averaged = self.accelerator.reduce(local, reduction="mean") if self.accelerator.num_processes > 1 else local
        result = {key: float(value) for key, value in zip(keys, averaged.tolist())}
        self._export_if_best(result)
        self.val_history.append({"step": self.position.step, **result})
        self._log("val", result)
        return result

    def _export_if_best(self, result: Mapping[str, float]) -> None:
        """With ``export_best``, export to ``model-best/`` whenever val_loss reaches a new low
        (Tango reports the checkpoint with the best validation loss)."""
        if not self.config.export_best or "val_loss" not in result:
            return
        previous = [entry["val_loss"] for entry in self.val_history if "val_loss" in entry]
        if previous and result["val_loss"] >= min(previous):
            return
        self.accelerator.wait_for_everyone()
        self._export(self.run_dir / "model-best", note=f"best validation loss {result['val_loss']:.6g} at step {self.position.step}")

    # --- logging -----------------------------------------------------------------------------

    def _progress_bar(self) -> Any:
        from tqdm.auto import tqdm

        return tqdm(
            total=self.config.max_steps,
            initial=self.position.step,
            desc=f"train {self.recipe.name}",
            unit="step",
            disable=not self.is_main,
            dynamic_ncols=True,
        )

    def _log(self, split: str, figures: Mapping[str, float]) -> None:
        if not self.is_main:
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        for key, value in figures.items():
            self._writer.add_scalar(f"{split}/{key}", value, self.position.step)
        self._writer.flush()
        with open(self.run_dir / METRICS_NAME, "a") as handle:
            handle.write(json.dumps({"step": self.position.step, "split": split, **figures}) + "\n")

    # --- run folder, checkpoints, export -----------------------------------------------------

    def _prepare_run_dir(self) -> int | None:
        """Save the config (or check it against the run being resumed); resume if a checkpoint exists."""
        config_path = self.run_dir / "config.json"
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if config_path.is_file():
                _check_resumable(json.loads(config_path.read_text()), self.config.to_dict(), config_path)
            save_train_config(self.config, config_path)
        self.accelerator.wait_for_everyone()
        latest = ckpt.latest_checkpoint(self.run_dir)
        if latest is None:
            if self.is_main:
                (self.run_dir / METRICS_NAME).unlink(missing_ok=True)
            return None
        self.load_checkpoint(latest)
        if self.is_main:
            _truncate_metrics(self.run_dir / METRICS_NAME, self.position.step)
        log.info("resumed %s from %s", self.recipe.name, latest)
        return self.position.step

    def save_checkpoint(self) -> None:
        acc, step = self.accelerator, self.position.step
        if self.is_main:
            ckpt.begin_checkpoint(self.run_dir, step)
        acc.wait_for_everyone()
        folder = ckpt.partial_dir(self.run_dir, step)
        ckpt.save_rng(folder, acc.process_index)
        if self.is_main:
            self._write_training_state(folder)
        acc.wait_for_everyone()
        if self.is_main:
            ckpt.commit_checkpoint(self.run_dir, step, self.config.keep_checkpoints)
        acc.wait_for_everyone()

    def _write_training_state(self, folder: Path) -> None:
        weights = {f"{name}.{key}": value for name in self.trained_names for key, value in self.plain[name].state_dict().items()}
        ckpt.write_tensors(folder / "modules.safetensors", weights)
        if self.ema is not None:
            ckpt.write_tensors(folder / "ema.safetensors", self.ema.state_tensors())
        for group, optimizer in self.optimizers.items():
            ckpt.save_optimizer(folder, group, optimizer.state_dict())
        scaler = self.accelerator.scaler
        ckpt.write_json(
            folder / ckpt.STATE_NAME,
            {
                "position": dataclasses.asdict(self.position),
                "schedulers": {group: scheduler.state_dict() for group, scheduler in self.schedulers.items()},
                "grad_scaler": scaler.state_dict() if scaler is not None else None,
                "ema_updates": self.ema.updates if self.ema is not None else None,
                "val_history": self.val_history,
                "num_processes": self.accelerator.num_processes,
                "train_seconds": self._train_seconds(),
            },
        )

    def load_checkpoint(self, folder: Path) -> None:
        saved = ckpt.read_json(folder / ckpt.STATE_NAME)
        if saved["num_processes"] != self.accelerator.num_processes:
            raise InputError(f"{folder}: written by {saved['num_processes']} processes, resuming with {self.accelerator.num_processes}; use the same number")
        weights = ckpt.read_tensors(folder / "modules.safetensors")
        for name in self.trained_names:
            module = self.plain[name]
            own = {key[len(name) + 1 :]: value for key, value in weights.items() if key.startswith(f"{name}.")}
            check_keys(set(module.state_dict()), set(own), f"{folder} ({name})")
            module.load_state_dict(own)
        if self.ema is not None:
            self.ema.load_state_tensors(ckpt.read_tensors(folder / "ema.safetensors"), saved["ema_updates"])
        for group, optimizer in self.optimizers.items():
            optimizer.load_state_dict(_with_tuple_betas(ckpt.load_optimizer(folder, group)))
            self.schedulers[group].load_state_dict(saved["schedulers"][group])
        if self.accelerator.scaler is not None and saved["grad_scaler"]:
            self.accelerator.scaler.load_state_dict(saved["grad_scaler"])
        self.position = _Position(**saved["position"])
        self.val_history = list(saved["val_history"])
        self._earlier_seconds = float(saved.get("train_seconds", 0.0))
        ckpt.load_rng(folder, self.accelerator.process_index)

    def _export(self, folder: Path, note: str = "") -> Path | None:
        if not self.is_main:
            return None
        trained = {name: self.plain[name] for name in self.trained_names}
        use_ema = self.ema is not None and self.config.export_ema
        with self.ema.swapped_in(trained) if use_ema else contextlib.nullcontext():
            return self.recipe.export(self.plain, folder, self._model_card(time.perf_counter() - self._started, use_ema, note))

    def _train_seconds(self) -> float:
        """Wall time of the whole run: earlier sessions (from the checkpoint) plus this one."""
        return self._earlier_seconds + time.perf_counter() - self._started

    def _model_card(self, wall_seconds: float, used_ema: bool, note: str = "") -> str:
        last_val = self.val_history[-1] if self.val_history else {}
        lines = [
            f"# {self.recipe.name} (trained with foleyflow)",
            "",
            *([f"- {note}"] if note else []),
            f"- optimizer steps: {self.position.step} (batch {self.config.batch_size} x {self.config.grad_accum_steps} accumulation x {self.accelerator.num_processes} processes)",
            f"- weights: {'EMA (decay ' + str(self.config.ema_decay) + ')' if used_ema else 'last step'}",
            f"- wall time: {self._train_seconds():.1f} s on {self.accelerator.device} over all sessions of the run (this session: {wall_seconds:.1f} s)",
            f"- last validation: {json.dumps(last_val)}",
            "",
            "## Training config",
            "",
            "```json",
            json.dumps(self.config.to_dict(), indent=2, sort_keys=True),
            "```",
            "",
        ]
        return "\n".join(lines)


def _check_resumable(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    current = json.loads(json.dumps(current))  # compare as JSON (tuples read back as lists)
    changed = sorted(key for key in set(saved) | set(current) if key not in RESUMABLE_CHANGES and saved.get(key) != current.get(key))
    if changed:
        raise InputError(f"{path}: this run folder holds a run with a different config ({', '.join(changed)}); choose another output folder")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines logged after the checkpoint we resume from (they will be logged again)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


def _with_tuple_betas(state_dict: dict[str, Any]) -> dict[str, Any]:
    for group in state_dict["param_groups"]:
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
    return state_dict


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[Any]:
    """Record SIGTERM instead of dying, so the loop can checkpoint first; yields a poll function."""
    received = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield received.is_set
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.set())
    try:
        yield received.is_set
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _isolated_rng(seed: int) -> Iterator[None]:
    """Run a block with all RNGs seeded to ``seed``, then put the previous states back."""
    plain, tensors = ckpt.capture_rng()
    set_seed(seed)
    try:
        yield
    finally:
        ckpt.restore_rng(plain, tensors)


@contextlib.contextmanager
def _eval_mode(modules: Any) -> Iterator[None]:
    modules = list(modules)
    modes = [module.training for module in modules]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for module, mode in zip(modules, modes):
            module.train(mode)
