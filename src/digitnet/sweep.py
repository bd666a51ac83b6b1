"""Hyperparameter sweeps on Optuna: many ``fit()`` runs sharing one study.

Each trial draws its settings from a space (``sweep_space``), trains one model
on the training set, reports the validation accuracy after every epoch (so
Optuna's pruner can stop unpromising trials) and saves the model under the
sweep's folder. Any number of worker processes run the same sweep: they share
the study through its storage, a journal file in that folder on one machine or
a database (``postgresql://…``) for many machines.

``run(..., n_trials=N)`` keeps going until the study holds N finished trials,
counting every worker's, so rerunning the same sweep continues it. A worker
that dies (SIGKILL, power loss) leaves its trial RUNNING: the next worker to
start a trial marks it failed and queues it again with the same parameters
and seed — found by process id for workers on the same machine, and by a
missed heartbeat (``heartbeat`` seconds) for database storage.
"""

from __future__ import annotations

import os
import shlex
import socket
import time
from dataclasses import fields
from pathlib import Path

from .errors import DigitnetError
from .fsutil import make_dirs
from .interrupts import Interrupts
from .sweep_space import Param
from .train import Callback, TrainConfig

JOURNAL = "sweep.journal"
MAX_RETRY = 2  # a trial whose worker keeps dying is queued again at most this often


def _optuna():
    try:
        import optuna
    except ModuleNotFoundError:
        raise DigitnetError("digitnet sweep needs Optuna: pip install 'digitnet[sweep]'") from None
    import warnings

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # progress and failure lines of our own instead
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats, retries
    return optuna


def _retry(study, trial) -> None:
    """Queue a failed ``trial`` again with its parameters and seed (at most ``MAX_RETRY`` times)."""
    optuna = _optuna()
    optuna.storages.RetryHeartbeatStaleTrialCallback(MAX_RETRY)(study, trial)


# --------------------------------------------------------------------------- storage and study
def storage(url: str | None, out: Path, heartbeat: int = 60):
    """The Optuna storage behind ``url``: a journal file (default ``out/sweep.journal``) or a database URL."""
    optuna = _optuna()
    if url is None or "://" not in url:
        path = Path(url) if url else out / JOURNAL
        make_dirs(path.parent, "sweep folder")  # read-only, a file in the way: one line
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]  # psycopg 3, the driver the extra brings
    from sqlalchemy.exc import IntegrityError, ProgrammingError, SQLAlchemyError

    error: Exception | None = None
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=heartbeat,
                grace_period=2 * heartbeat,
                heartbeat_stale_trial_callback=_retry,
                engine_kwargs={"pool_pre_ping": True},
            )
        except (IntegrityError, ProgrammingError) as exc:
            # workers starting together on an empty database race to create Optuna's tables;
            # the loser finds them made on the next try
            error = exc
            time.sleep(0.2 * (attempt + 1))
        except (ImportError, ValueError, SQLAlchemyError) as exc:  # a bad URL, no server, no driver
            error = exc
            break
    raise DigitnetError(f"--storage {redact(url)}: {str(error).strip().splitlines()[0]}") from None


def redact(url: str) -> str:
    """``url`` without its password."""
    head, sep, tail = url.rpartition("@")
    if not sep or ":" not in head.split("://", 1)[-1]:
        return url
    scheme, _, user = head.partition("://")
    return f"{scheme}://{user.split(':', 1)[0]}:***@{tail}"


def open_study(store, name: str, create: bool = True, pruning: bool = True):
    """The study ``name`` in ``store`` (created, maximizing validation accuracy, when missing).

    With ``pruning``, a trial whose validation accuracy after an epoch is below
    the median of earlier trials' at that epoch stops there (after 5 trials).
    """
    optuna = _optuna()
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1) if pruning else optuna.pruners.NopPruner()
    )
    if not create:
        try:
            return optuna.load_study(study_name=name, storage=store, pruner=pruner)
        except KeyError:
            raise DigitnetError(f"no study named {name!r} in this storage yet") from None
    return optuna.create_study(study_name=name, storage=store, direction="maximize", load_if_exists=True, pruner=pruner)


def worker_id() -> dict:
    """Who runs a trial: host and process id, and on Linux the boot and the process-id namespace.

    The last two keep a process id from being misread: after a reboot it may
    belong to another process, and in another container to none that we can see.
    """
    ids = {"host": socket.gethostname(), "pid": os.getpid()}
    try:
        ids["boot"] = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        ids["pidns"] = os.readlink("/proc/self/ns/pid")
    except OSError:
        pass
    return ids


def fail_dead_workers(study) -> list[int]:
    """Mark failed, and queue again, the RUNNING trials of workers on this machine that no longer exist."""
    optuna = _optuna()
    from optuna.trial import TrialState

    me, failed = worker_id(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = t.user_attrs.get("worker") or {}
        if w.get("host") != me["host"] or w.get("pidns") != me.get("pidns"):
            continue  # not ours to judge: the heartbeat is
        if w.get("boot") == me.get("boot") and _alive(w.get("pid")):
            continue
        try:
            if not study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker got there first
            continue
        _retry(study, study._storage.get_trial(t._trial_id))
        failed.append(t.number)
    return failed


def _alive(pid) -> bool:
    if not isinstance(pid, int):
        return True  # not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def finished(trials) -> list:
    """Trials that count towards ``n_trials``: complete, pruned, or failed on their own (diverged).

    A trial failed because its worker died or was interrupted does not count:
    it is queued again, or another trial takes its place.
    """
    from optuna.trial import TrialState

    return [
        t
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and "error" in t.user_attrs)
    ]


# --------------------------------------------------------------------------- one trial
class _ReportToOptuna(Callback):
    """Reports validation accuracy after each epoch; stops training when Optuna prunes the trial."""

    def __init__(self, trial, interrupts: Interrupts | None = None):
        self.trial, self.pruned_at, self.epochs = trial, None, None
        self.interrupts = interrupts or Interrupts()

    def on_train_begin(self, model, cfg):
        self.epochs = cfg.epochs

    def on_epoch_end(self, model, epoch, logs):
        with self.interrupts.held():
            self.trial.report(logs["val_acc"], epoch)
            # pruning after the last epoch would save no time and lose a finished model
            prune = epoch < self.epochs and self.trial.should_prune()
        if prune:
            self.pruned_at = epoch
        return prune


def trial_settings(trial, space: dict[str, Param]) -> tuple[str, dict]:
    """(architecture, TrainConfig values) of ``trial``; the seed defaults to the trial's number."""
    from .nn.spec import mlp_spec

    values = {name: p.suggest(trial) for name, p in space.items()}
    if "seed" not in values:  # a re-queued trial keeps the seed it was first given
        values["seed"] = trial.user_attrs.get("seed", trial.number)
    arch = values.pop("arch", None) or mlp_spec(values.pop("hidden", None) or (64,))
    return arch, values


def train_command(arch: str, values: dict, output: str, data: str | None) -> str:
    """The ``digitnet train`` command that trains the same weights as a trial with these settings."""
    defaults = TrainConfig()
    args = ["digitnet", "train"] + (["--data", data] if data else []) + ["--arch", arch]
    cfg = TrainConfig(**values)
    for f in fields(TrainConfig):
        if f.name in ("checkpoint", "progress", "threads"):
            continue
        v, flag = getattr(cfg, f.name), "--" + f.name.replace("_", "-")
        # epochs and lr always: their `digitnet train` defaults depend on the other flags
        if v == getattr(defaults, f.name) and f.name not in ("epochs", "lr", "seed", "val_size"):
            continue
        if isinstance(v, bool):
            args += [flag] if v else []
        elif isinstance(v, tuple):
            args += [flag, ",".join(str(x) for x in v)]
        else:
            args += [flag, str(v)]
    return " ".join(shlex.quote(a) for a in args + ["-o", output])


def objective(
    trial, space: dict[str, Param], mnist, out: Path, data: str | None = None, interrupts: Interrupts | None = None
) -> float:
    """One trial: build, ``fit()`` with the validation split, save the model; returns the validation accuracy."""
    optuna = _optuna()
    from . import io
    from .nn.spec import build
    from .train import fit

    arch, values = trial_settings(trial, space)
    # one folder per study: studies sharing a journal (or a -o folder) never overwrite each other's models
    path = (out / trial.study.study_name / f"trial-{trial.number:04d}.safetensors").resolve()
    command = train_command(arch, values, path.name, data)
    for key, value in {"worker": worker_id(), "seed": values["seed"], "command": command}.items():
        trial.set_user_attr(key, value)
    if trial.user_attrs.get("interrupted"):  # inherited from the interrupted run this one repeats
        trial.set_user_attr("interrupted", False)
    model = build(arch, seed=values["seed"])
    model.meta.update(
        {
            "command": command,
            "output": str(path),
            "sweep_trial": trial.number,
            "dataset": mnist.source if data else "bundled MNIST",
            "dataset_sha256": mnist.train.checksum(),
        }
    )
    interrupts = interrupts or Interrupts()
    report = _ReportToOptuna(trial, interrupts)
    try:
        with interrupts.training():
            history = fit(model, mnist.train, None, TrainConfig(**values, progress=False), callbacks=[report])
    except DigitnetError as exc:  # diverged: a result of these settings, not a broken worker
        trial.set_user_attr("error", str(exc))
        raise
    except KeyboardInterrupt:  # Optuna marks it failed; run() queues it again
        trial.set_user_attr("interrupted", True)
        raise
    if report.pruned_at is not None:
        raise optuna.TrialPruned(f"pruned after epoch {report.pruned_at}")
    best = model.meta.get("best_epoch", len(history))  # early stopping keeps the best epoch's weights
    value = history[best - 1]["val_acc"]
    model.meta["val_accuracy"] = value
    io.save(model, path)  # atomic: a complete file or none
    trial.set_user_attr("model", str(path))
    trial.set_user_attr("train_time_s", round(sum(h["time"] for h in history), 3))
    return value


# --------------------------------------------------------------------------- the sweep
def run(
    study,
    space: dict[str, Param],
    mnist,
    out: Path,
    n_trials: int,
    data: str | None = None,
    log=print,
    interrupts: Interrupts | None = None,
) -> int:
    """Run trials until ``study`` holds ``n_trials`` finished ones (all workers together).

    Returns the number of trials this worker ran. On Ctrl-C (with
    ``interrupts`` installed) a training trial is marked failed and queued
    again, a trial being saved is finished first; then KeyboardInterrupt
    propagates.
    """
    optuna = _optuna()
    from optuna.trial import TrialState

    interrupts = interrupts or Interrupts()
    make_dirs(out, "sweep folder")
    ran = 0
    while True:
        interrupts.check()
        for n in fail_dead_workers(study):
            log(f"trial {n}: its worker is gone; marked failed and queued again")
        optuna.storages.fail_stale_trials(study)  # database storage: missed heartbeats
        trials = study.get_trials(deepcopy=False)
        running = [t for t in trials if t.state == TrialState.RUNNING]
        if len(finished(trials)) + len(running) >= n_trials:
            return ran
        t0 = time.monotonic()
        try:
            study.optimize(
                lambda trial: objective(trial, space, mnist, out, data, interrupts), n_trials=1, catch=(DigitnetError,)
            )
        except KeyboardInterrupt:
            for n in _requeue_interrupted(study):
                log(f"trial {n}: interrupted; marked failed and queued again")
            raise
        ran += 1
        log(_progress_line(study, n_trials, time.monotonic() - t0))


def _requeue_interrupted(study) -> list[int]:
    """After Ctrl-C: queue this worker's interrupted trial (Optuna marked it failed) again."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs.get("failed_trial") for t in trials}
    again = [
        t
        for t in trials
        if t.state == TrialState.FAIL
        and t.user_attrs.get("interrupted")
        and t.number not in retried
        and t.user_attrs.get("worker") == worker_id()
    ]
    for t in again:
        _retry(study, t)
    return [t.number for t in again]


def _progress_line(study, n_trials: int, seconds: float) -> str:
    trials = study.get_trials(deepcopy=False)
    mine = max((t for t in trials if t.user_attrs.get("worker") == worker_id()), key=lambda t: t.number)
    what = (
        f"val acc {mine.value * 100:.2f} %"
        if mine.value is not None
        else mine.user_attrs.get("error", mine.state.name.lower())
    )
    done = len(finished(trials))
    best = _best(trials)
    best_text = f"; best {best.value * 100:.2f} % (trial {best.number})" if best else ""
    state = mine.state.name.lower()
    return f"trial {mine.number} {state}: {what} in {seconds:.1f} s; {done}/{n_trials} finished{best_text}"


def _best(trials):
    done = [t for t in trials if t.value is not None and t.state.name == "COMPLETE"]
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


# --------------------------------------------------------------------------- results
def rows(study) -> list[dict]:
    """Every trial of the study, best first: number, state, params, value, model, seconds, seed, command."""
    out = []
    for t in study.get_trials(deepcopy=False):
        seconds = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        out.append(
            {
                "number": t.number,
                "state": t.state.name,
                "params": dict(t.params),
                "value": t.value,
                "model": t.user_attrs.get("model"),
                "seconds": seconds,
                "seed": t.user_attrs.get("seed"),
                "worker": t.user_attrs.get("worker"),
                "command": t.user_attrs.get("command"),
                "retry_of": t.system_attrs.get("failed_trial"),
            }
        )
    out.sort(key=lambda r: (r["value"] is None, -(r["value"] or 0), r["number"]))
    return out


def format_table(rows: list[dict]) -> str:
    """The study as a text table, one trial a line."""
    if not rows:
        return "no trials yet"
    table = [("#", "state", "val acc", "time", "params", "model")]
    for r in rows:
        params = " ".join(f"{k}={_short(v)}" for k, v in r["params"].items())
        table.append(
            (
                str(r["number"]),
                r["state"].lower(),
                f"{r['value'] * 100:.2f} %" if r["value"] is not None else "-",
                f"{r['seconds']:.1f} s" if r["seconds"] is not None else "-",
                params or "-",
                r["model"] or "-",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1] for row in table)


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def top_models(rows: list[dict], k: int) -> list[str]:
    """Model files of the ``k`` best complete trials (an error when fewer have a model)."""
    paths = [r["model"] for r in rows if r["state"] == "COMPLETE" and r["model"]][:k]
    if len(paths) < k:
        raise DigitnetError(f"--ensemble-top {k}: the study has only {len(paths)} complete trials with a model")
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise DigitnetError(
            f"--ensemble-top {k}: model file {missing[0]} is not on this machine "
            "(trained by a worker elsewhere? copy its sweep folder here)"
        )
    return paths
