"""Samplers and metrics inside the trainers people use: PyTorch Lightning and accelerate, 2 CPU processes (gloo).

Each framework runs once, in 2 processes started the way torchrun starts them
(RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT), all its
settings one after another; every DataLoader (and so every sampler) is built
before the framework starts the process group. Each rank writes what it drew
to a file; the tests below check, in this process, that the ranks' draws of an
epoch are one epoch of the sampler (disjoint positions, no rank duplicating
another), that epochs differ, and that the class shares are the sampler's.
The plain DDP loop under torchrun is tested in test_cli.py (examples/ddp_train.py).

    python tests/data/test_trainers.py lightning|accelerate OUT_DIR   # one rank (env as torchrun)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import traceback

import pytest
import torch
from scipy import stats
from torch.utils.data import DataLoader, Dataset

import balancedtorch as bt

pytestmark = pytest.mark.distributed  # Lightning and accelerate runs on two gloo ranks

N, NUM_CLASSES, BATCH, EPOCHS, SEED = 240, 4, 10, 2, 3
WORKER_TIMEOUT_S = 120  # a hung collective fails the test instead of blocking CI
P_THRESHOLD = 1e-4

# Samplers under test, by name; the repeat-factor sampler joins when it exists.
# Each maker takes the labels and keyword arguments (num_replicas/rank for the reference).
SAMPLER_KINDS = ["ClassBalancedSampler", "WeightedRandomSampler", "StratifiedBatchSampler"]
if hasattr(bt.data, "RepeatFactorSampler"):
    SAMPLER_KINDS.append("RepeatFactorSampler")


def make_labels() -> torch.Tensor:
    g = torch.Generator().manual_seed(SEED)
    probs = torch.tensor([0.4, 0.3, 0.2, 0.1])
    return torch.multinomial(probs, N, replacement=True, generator=g)


def make_sampler(kind: str, labels: torch.Tensor, **kwargs):
    """(sampler, is_batch_sampler). Epochs derive from SEED and the epoch (identical on every rank)."""
    if kind == "ClassBalancedSampler":
        # without replacement: each index at most once per epoch, exact per-class quotas
        return bt.data.ClassBalancedSampler(labels, replacement=False, seed=SEED, **kwargs), False
    if kind == "WeightedRandomSampler":
        weights = 1.0 / torch.bincount(labels).double()[labels]
        return bt.data.WeightedRandomSampler(weights, num_samples=N, seed=SEED, **kwargs), False
    if kind == "StratifiedBatchSampler":
        return bt.data.StratifiedBatchSampler(labels, BATCH, class_ratios="balanced", seed=SEED, **kwargs), True
    if kind == "RepeatFactorSampler":
        classes = [{int(c)} for c in labels]
        return bt.data.RepeatFactorSampler(classes, threshold=0.2, seed=SEED, **kwargs), False
    raise AssertionError(kind)


class Indexed(Dataset):
    """(features, label, index): each rank reports which samples it drew."""

    def __init__(self, labels):
        self.labels = labels
        self.x = torch.randn(len(labels), 6, generator=torch.Generator().manual_seed(SEED + 1))

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.x[i], self.labels[i], i


def make_loader(kind, labels, loader_cls=DataLoader, **kwargs):
    sampler, is_batch = make_sampler(kind, labels, **kwargs)
    data = Indexed(labels)
    if is_batch:
        return loader_cls(data, batch_sampler=sampler), sampler
    return loader_cls(data, batch_size=BATCH, sampler=sampler), sampler


# --- the rank processes ------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _destroy_group():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _lightning_rank(out_dir: str) -> None:
    import pytorch_lightning as pl

    rank = int(os.environ["RANK"])
    ports = [int(p) for p in os.environ["BT_TEST_PORTS"].split(",")]
    labels = make_labels()

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(6, NUM_CLASSES)
            self.loss = bt.nn.FocalLoss(gamma=2.0)
            self.metrics = bt.metrics.ClassificationMetrics(NUM_CLASSES)
            self.seen = {}
            self.logged = []

        def training_step(self, batch, batch_idx):
            x, y, idx = batch
            self.seen.setdefault(self.current_epoch, []).append(idx.tolist())
            logits = self.net(x)
            self.metrics.update(logits.detach(), y)
            return self.loss(logits, y)

        def on_train_epoch_end(self):
            result = self.metrics.compute()  # the one collective: every rank gets the reduced numbers
            # the README's recipe: aggregates as they are, per-class tensors one entry per class
            scalars = {k: v for k, v in result.items() if isinstance(v, (int, float)) or (torch.is_tensor(v) and v.dim() == 0)}
            per_class = {f"f1/{c}": v for c, v in enumerate(result["f1"])}
            self.log_dict({f"train_{k}": v for k, v in (scalars | per_class).items()})
            self.logged.append({k: float(v) for k, v in scalars.items()} | {"support": result["support"].tolist()})
            self.metrics.reset()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def trainer(**kwargs):
        kwargs.setdefault("max_epochs", EPOCHS)
        return pl.Trainer(
            accelerator="cpu",
            devices=2,
            strategy="ddp",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            **kwargs,
        )

    results = {}
    port = iter(ports)
    for kind in SAMPLER_KINDS:
        for use_ds in (False, True):
            key = f"{kind}/use_distributed_sampler={use_ds}"
            os.environ["MASTER_PORT"] = str(next(port))
            torch.manual_seed(SEED)
            loader, sampler = make_loader(kind, labels)  # before the process group exists
            model = Module()
            try:
                fitted = trainer(use_distributed_sampler=use_ds)
                fitted.fit(model, loader)
                results[key] = {
                    "seen": model.seen,
                    "logged": model.logged,
                    "len": len(sampler),
                    "callback_metrics": {k: float(v) for k, v in fitted.callback_metrics.items()},
                }
            except Exception as error:  # noqa: BLE001 - the parent asserts on the message
                results[key] = {"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()}
            _destroy_group()

    # resume mid-epoch through Lightning's checkpoint of the loop (StatefulDataLoader state inside it)
    from torchdata.stateful_dataloader import StatefulDataLoader

    class SaveAt(pl.Callback):
        def __init__(self, step, path):
            self.step, self.path = step, path

        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == self.step:
                trainer.save_checkpoint(self.path)

    for kind in SAMPLER_KINDS:
        key = f"{kind}/resume"
        path = os.path.join(out_dir, f"{kind}.ckpt")
        steps = {}
        try:
            for phase in ("whole", "head", "tail"):
                os.environ["MASTER_PORT"] = str(next(port))
                torch.manual_seed(SEED)
                loader, _ = make_loader(kind, labels, loader_cls=StatefulDataLoader)
                model = Module()
                if phase == "whole":
                    trainer(callbacks=[SaveAt(3, path)], use_distributed_sampler=False).fit(model, loader)
                elif phase == "head":  # the interrupted run: stops after its checkpoint
                    trainer(max_steps=3, use_distributed_sampler=False).fit(model, loader)
                else:
                    trainer(use_distributed_sampler=False).fit(model, loader, ckpt_path=path)
                steps[phase] = model.seen
                _destroy_group()
            results[key] = steps
        except Exception as error:  # noqa: BLE001
            results[key] = {"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()}
            _destroy_group()
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))


def _accelerate_rank(out_dir: str) -> None:
    from accelerate import Accelerator

    rank = int(os.environ["RANK"])
    labels = make_labels()
    # built before Accelerator() starts the process group
    loaders = {kind: make_loader(kind, labels) for kind in SAMPLER_KINDS}
    explicit = make_loader("ClassBalancedSampler", labels, num_replicas=2, rank=rank)
    accelerator = Accelerator(cpu=True)
    results = {"world": accelerator.num_processes}
    for kind, (loader, sampler) in loaders.items():
        prepared = accelerator.prepare(loader)
        epochs = {}
        for epoch in range(EPOCHS):
            prepared.set_epoch(epoch)
            batches, state = [], None
            for _x, _y, idx in prepared:
                if state is None:  # the epoch's seed (accelerate may have set the generator)
                    state = sampler.state_dict()
                batches.append(idx.tolist())
            epochs[epoch] = {"batches": batches, "state": state}
        results[kind] = {"epochs": epochs, "len": len(prepared)}
    try:
        for _ in accelerator.prepare(explicit[0]):
            pass
        results["explicit"] = None
    except ValueError as error:
        results["explicit"] = str(error)
    accelerator.wait_for_everyone()
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    _destroy_group()


# --- the parent: start 2 ranks, collect their files ----------------------------------------------------------------


def _run_two_ranks(framework: str, out_dir, ports: int):
    """Start 2 ranks as torchrun would, wait (with a deadline), return what each wrote."""
    import time

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # the checkout under test first (as pytest's rootdir), not whatever balancedtorch is installed
    path = os.pathsep.join([root] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    common = dict(
        os.environ,
        WORLD_SIZE="2",
        LOCAL_WORLD_SIZE="2",
        GROUP_RANK="0",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(_free_port()),
        BT_TEST_PORTS=",".join(str(_free_port()) for _ in range(ports)),
        OMP_NUM_THREADS="1",
        PYTHONWARNINGS="ignore",
        PYTHONPATH=path,
    )
    running, logs = [], []
    for rank in range(2):
        logs.append(open(os.path.join(out_dir, f"rank{rank}.log"), "w+"))  # files, not pipes: no full-pipe stall
        running.append(
            subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), framework, str(out_dir)],
                env=dict(common, RANK=str(rank), LOCAL_RANK=str(rank)),
                stdout=logs[-1],
                stderr=subprocess.STDOUT,
                cwd=root,
            )
        )
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    try:
        for proc in running:
            proc.wait(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        for proc in running:
            proc.kill()
            proc.wait()
        pytest.fail(f"{framework} ranks did not finish in {WORKER_TIMEOUT_S} s (a hang)")
    outputs = []
    for log in logs:
        log.seek(0)
        outputs.append(log.read())
        log.close()
    failed = [
        f"rank {r} (exit {p.returncode}):\n{out[-3000:]}" for r, (p, out) in enumerate(zip(running, outputs)) if p.returncode
    ]
    assert not failed, f"{framework} ranks failed:\n" + "\n".join(failed)
    return [torch.load(os.path.join(out_dir, f"rank{r}.pt"), weights_only=False) for r in range(2)]


@pytest.fixture(scope="module")
def lightning_runs(tmp_path_factory):
    pytest.importorskip("pytorch_lightning")
    pytest.importorskip("torchdata")
    return _run_two_ranks("lightning", tmp_path_factory.mktemp("lightning"), ports=5 * len(SAMPLER_KINDS))


@pytest.fixture(scope="module")
def accelerate_runs(tmp_path_factory):
    pytest.importorskip("accelerate")
    return _run_two_ranks("accelerate", tmp_path_factory.mktemp("accelerate"), ports=0)


# --- checks ------------------------------------------------------------------------------------------------------


def reference_epoch(kind: str, epoch: int, state=None) -> torch.Tensor:
    """The sampler's whole epoch (all ranks): flat indices, or (batches, size).

    From the two explicitly sharded samplers (num_replicas=2, rank=0/1) put back together, or with
    ``state`` (an epoch seed drawn from a generator) from a single-replica sampler.
    """
    if state is not None:
        sampler, _ = make_sampler(kind, make_labels(), num_replicas=1, rank=0)
        sampler.load_state_dict({**state, "position": 0, "num_replicas": 1, "rank": 0})
        return sampler.indices()
    shards = [make_sampler(kind, make_labels(), num_replicas=2, rank=r)[0] for r in range(2)]
    for shard in shards:
        shard.set_epoch(epoch)
    whole = torch.stack([shard.indices() for shard in shards], 1).flatten(0, 1)
    total = getattr(shards[0], "num_samples", None) or shards[0].num_batches
    return whole[:total]


def interleave(rank_items):
    """Rank r holds positions r, r + R, r + 2R, ... of one list: put them back in order."""
    out = []
    for i in range(max(len(items) for items in rank_items)):
        out += [items[i] for items in rank_items if i < len(items)]
    return out


def check_epoch_union(kind, per_rank_batches, epoch, state=None, batch_level=False):
    """The ranks' draws of one epoch are disjoint positions of the sampler's epoch, and hold its class shares."""
    full = reference_epoch(kind, epoch, state)
    labels = make_labels()
    if full.dim() == 2 or batch_level:
        # whole batches dealt out to the ranks in turn; accelerate's even_batches completes the last
        # round with the epoch's first samples (as DistributedSampler pads)
        union = [i for batch in interleave(per_rank_batches) for i in batch]
    else:
        union = interleave([[i for batch in batches for i in batch] for batches in per_rank_batches])
    expected = full.flatten().tolist()
    assert union == (expected * 2)[: len(union)], "the ranks' draws are not disjoint positions of one epoch"
    assert len(expected) <= len(union) < len(expected) + 2 * BATCH, "dropped or padded too much"
    drawn = torch.tensor(union[: len(expected)])
    assert drawn.numel() == full.numel()
    counts = torch.bincount(labels[drawn], minlength=NUM_CLASSES)
    if kind == "ClassBalancedSampler":  # without replacement: exact balanced quotas, each index at most once
        assert drawn.unique().numel() == drawn.numel()
        assert int(counts.max() - counts.min()) <= 1, counts
    elif kind == "StratifiedBatchSampler":  # every batch holds the balanced quota
        quotas = make_sampler(kind, labels)[0].quotas
        assert quotas.tolist() == [3, 3, 2, 2]
        for batch in drawn.view(-1, BATCH):
            assert torch.equal(torch.bincount(labels[batch], minlength=NUM_CLASSES), quotas)
    elif kind == "WeightedRandomSampler":  # weights 1 / class count: classes equally likely
        assert stats.chisquare(counts.numpy()).pvalue > P_THRESHOLD, counts
    return drawn


@pytest.mark.slow
@pytest.mark.parametrize("use_distributed_sampler", [False, True])
@pytest.mark.parametrize("kind", SAMPLER_KINDS)
def test_lightning_ranks_draw_one_epoch(lightning_runs, kind, use_distributed_sampler):
    key = f"{kind}/use_distributed_sampler={use_distributed_sampler}"
    runs = [r[key] for r in lightning_runs]
    if kind == "StratifiedBatchSampler" and use_distributed_sampler:
        # Lightning re-creates custom batch samplers with a DistributedSampler: refused, saying what to do
        for run in runs:
            assert "error" in run, "expected a clear error, got a run"
            assert "use_distributed_sampler=False" in run["error"] and "shards its batches" in run["error"], run["error"]
        return
    assert all("error" not in run for run in runs), [run.get("trace") for run in runs]
    if kind == "RepeatFactorSampler":
        # the epoch length varies (stochastic rounding); after fit, len() is that of the last or the next epoch
        lengths = {len(reference_epoch(kind, e)) // 2 for e in range(EPOCHS + 1)}
        assert runs[0]["len"] == runs[1]["len"] and runs[0]["len"] in lengths, "the sampler did not shard"
    else:
        assert [run["len"] for run in runs] == [len(reference_epoch(kind, 0)) // 2] * 2, "the sampler did not shard"
    epochs = []
    for epoch in range(EPOCHS):
        epochs.append(check_epoch_union(kind, [run["seen"][epoch] for run in runs], epoch))
    assert not torch.equal(epochs[0], epochs[1]), "epochs must differ"


@pytest.mark.parametrize("kind", SAMPLER_KINDS)
def test_lightning_resume_mid_epoch_from_checkpoint(lightning_runs, kind):
    runs = [r[f"{kind}/resume"] for r in lightning_runs]
    assert all("error" not in run for run in runs), [run.get("trace", run.get("error")) for run in runs]
    for run in runs:
        whole = [b for e in range(EPOCHS) for b in run["whole"][e]]
        head = [b for e in sorted(run["head"]) for b in run["head"][e]]
        tail = [b for e in sorted(run["tail"]) for b in run["tail"][e]]
        assert len(head) == 3
        assert head + tail == whole, "the resumed run must continue exactly where the checkpoint was taken"


def test_lightning_logs_classification_metrics(lightning_runs):
    runs = [r["ClassBalancedSampler/use_distributed_sampler=False"] for r in lightning_runs]
    for run in runs:
        assert len(run["logged"]) == EPOCHS
        logged = run["callback_metrics"]  # what Lightning took from self.log_dict
        assert {"train_accuracy", "train_balanced_accuracy", "train_macro_f1", "train_f1/3"} <= set(logged)
        assert logged["train_macro_f1"] == pytest.approx(run["logged"][-1]["macro_f1"])
    # compute() reduces across ranks: both ranks log the same numbers, counted over the whole epoch
    assert runs[0]["logged"] == runs[1]["logged"]
    total = len(reference_epoch("ClassBalancedSampler", 0))
    assert sum(runs[0]["logged"][0]["support"]) == total


@pytest.mark.slow
@pytest.mark.parametrize("kind", SAMPLER_KINDS)
def test_accelerate_ranks_draw_one_epoch(accelerate_runs, kind):
    assert all(r["world"] == 2 for r in accelerate_runs)
    runs = [r[kind] for r in accelerate_runs]
    epochs = []
    for epoch in range(EPOCHS):
        states = [run["epochs"][epoch]["state"] for run in runs]
        assert states[0]["epoch_seed"] == states[1]["epoch_seed"], "the ranks must draw the same epoch"
        assert all(s["sharded_by"] == "BatchSamplerShard" for s in states)
        batches = [run["epochs"][epoch]["batches"] for run in runs]
        epochs.append(check_epoch_union(kind, batches, epoch, state=states[0], batch_level=True))
    assert not torch.equal(epochs[0], epochs[1]), "epochs must differ"


def test_accelerate_refuses_double_sharding(accelerate_runs):
    for r in accelerate_runs:
        assert r["explicit"] is not None, "an explicitly sharded sampler inside accelerate must raise"
        assert "num_replicas=2" in r["explicit"] and "BatchSamplerShard" in r["explicit"]


if __name__ == "__main__":
    _framework, _out = sys.argv[1], sys.argv[2]
    {"lightning": _lightning_rank, "accelerate": _accelerate_rank}[_framework](_out)
