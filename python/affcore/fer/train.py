"""Training the expression recogniser on FER2013 (torch, CPU or CUDA).

Deterministic given the seed (on CPU; per-epoch shuffles and augmentations come from
generators seeded by ``(seed, epoch)``, so a resumed run continues exactly). Checkpoints
``last.pt`` every epoch and ``best.pt`` whenever the public_test accuracy improves;
``history.json`` holds the per-epoch numbers. Schedule: one-cycle (linear warm-up, cosine
decay to zero) over the planned steps or, with ``budget_minutes``, over the wall-clock budget
(whichever runs out first), so a run on a busy machine still finishes its annealing.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from .._jobs import atomic_file
from . import CLASSES
from .data import augment, check_pairs, load_extra, load_fer2013, normalize


@dataclasses.dataclass
class TrainConfig:
    arch: str = "resnet_s"
    epochs: int = 30
    steps: int | None = None       # total optimizer steps instead of epochs (equal-compute comparisons,
                                   # e.g. with and without extra training data)
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup: float = 0.08           # fraction of the schedule spent warming up
    label_smoothing: float = 0.1
    seed: int = 0
    patience: int = 8              # early stopping: epochs without public_test improvement
    budget_minutes: float | None = None  # anneal over this much training time instead of the epochs
    threads: int | None = 2        # torch CPU threads (None: torch's default)
    channels_last: bool = True
    bf16: bool = True              # bfloat16 autocast for the forward pass on CPU (about 2.5x faster
                                   # where the CPU has AVX512-BF16/AMX; weights stay float32)
    limit: int | None = None       # use only the first N training images (smoke tests)
    data: str | None = None        # fer2013.npz path or folder; None: AFFCORE_DATA_DIR
    extra: str | None = None       # .npz with extra (images, labels) appended to train
    extra_share: float | None = None  # fraction of each batch drawn from the extra data, in (0, 1); None:
                                   # the extra data join the real ones and batches mix them by their
                                   # numbers. An epoch is then one pass over the real images.
    init: str | None = None        # start from this checkpoint's weights (fine-tuning; fresh optimizer
                                   # and schedule); ignored when resuming


def lr_at(progress: float, cfg: TrainConfig) -> float:
    p = min(max(progress, 0.0), 1.0)
    if p < cfg.warmup:
        return cfg.lr * (0.04 + 0.96 * p / cfg.warmup)
    q = (p - cfg.warmup) / max(1e-9, 1 - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * q))


def predict_logits(model, images: np.ndarray, batch_size: int = 512, flip_tta: bool = True, device="cpu",
                   memory_format=None):
    """Logits (N, 7) numpy of uint8 images (N, 48, 48); with ``flip_tta`` the average of the
    image's and its mirror's logits."""
    import torch

    memory_format = memory_format or torch.contiguous_format
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = normalize(torch.from_numpy(images[i:i + batch_size])).to(device, memory_format=memory_format)
            y = model(x)
            if flip_tta:
                y = 0.5 * (y + model(torch.flip(x, dims=[3])))
            out.append(y.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(CLASSES)), np.float32)


def _save(obj, path: Path):
    import torch

    with atomic_file(path, "wb", fsync=False) as f:
        torch.save(obj, f)


def _extra_per_batch(cfg: TrainConfig, n_real: int, n_extra: int) -> int | None:
    """How many images of each batch come from the extra data (None: batches mix real and extra
    images by their numbers)."""
    if cfg.extra_share is None:
        return None
    if not 0.0 < cfg.extra_share < 1.0:
        raise ValueError(f"extra_share must lie in (0, 1), got {cfg.extra_share}")
    if n_extra == 0:
        raise ValueError("extra_share needs extra training data (extra= or extra_train=)")
    k = round(cfg.extra_share * cfg.batch_size)
    if not 1 <= k <= cfg.batch_size - 1:
        raise ValueError(f"extra_share {cfg.extra_share} of a batch of {cfg.batch_size} leaves no "
                         f"{'extra' if k < 1 else 'real'} image in it; use a larger batch")
    if n_real < cfg.batch_size - k:
        raise ValueError(f"{n_real} real training images do not fill the {cfg.batch_size - k} real "
                         f"places of one batch")
    return k


def shared_batches(n_real: int, n_extra: int, batch_size: int, batch_extra: int, steps: int, generator):
    """Index order for one epoch whose batches of ``batch_size`` each hold ``batch_extra`` extra
    images: consecutive slices of ``batch_size`` of the returned 1-D tensor index the
    concatenation (real images first, then extra ones). The real images are a permutation
    (each seen at most once); the extra ones run through permutations of their own, one after
    another, so that each is seen as evenly as the steps allow."""
    import torch

    n_batch_real = batch_size - batch_extra
    real = torch.randperm(n_real, generator=generator)[:steps * n_batch_real]
    need = steps * batch_extra
    extra = torch.cat([torch.randperm(n_extra, generator=generator) for _ in range(-(-need // n_extra))])[:need]
    batches = torch.cat([real.view(steps, n_batch_real), (n_real + extra).view(steps, batch_extra)], dim=1)
    return batches.reshape(-1)


def train(cfg: TrainConfig, out: str | os.PathLike, resume: bool = False, extra_train=None,
          progress: bool = True, log=print) -> dict:
    """Train ``cfg.arch`` on FER2013 train (+ ``extra_train`` = (images, labels) and/or
    ``cfg.extra``), early-stopping on public_test. Writes checkpoints into ``out``; returns
    the summary (best epoch, best public_test accuracy, checkpoint paths)."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from .nets import build_model, count_params

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.use_deterministic_algorithms(device == "cpu", warn_only=True)

    xtr, ytr = load_fer2013(cfg.data, "train")
    if cfg.limit:  # a random subset: the file is sorted by label within each split
        keep = np.sort(np.random.default_rng(cfg.seed).permutation(len(xtr))[:cfg.limit])
        xtr, ytr = xtr[keep], ytr[keep]
    extras = []
    if cfg.extra:
        extras.append(load_extra(cfg.extra))
    if extra_train is not None:
        extras.append(check_pairs(*extra_train))
    n_real = len(xtr)
    for xe, ye in extras:
        xtr, ytr = np.concatenate([xtr, xe]), np.concatenate([ytr, ye])
    batch_extra = _extra_per_batch(cfg, n_real, len(xtr) - n_real)
    xva, yva = load_fer2013(cfg.data, "public_test")
    if cfg.limit:
        step = max(1, len(xva) // max(256, cfg.limit // 4))
        xva, yva = xva[::step], yva[::step]

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch).to(device)
    mf = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=mf)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    # drop the incomplete last batch (it also crashed oneDNN once with channels-last depthwise convs)
    steps_per_epoch = max(1, (len(xtr) if batch_extra is None else n_real) // (cfg.batch_size - (batch_extra or 0)))
    total_steps = cfg.steps if cfg.steps else steps_per_epoch * cfg.epochs
    max_epochs = math.ceil(total_steps / steps_per_epoch)
    state = {"epoch": 0, "step": 0, "elapsed": 0.0, "best_acc": -1.0, "best_epoch": 0, "history": [],
             "done": False}
    last = out / "last.pt"
    if resume:
        if not last.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint {last}")
        ck = torch.load(last, map_location=device, weights_only=False)
        if ck["config"]["arch"] != cfg.arch:
            raise ValueError(f"--resume: {last} holds arch {ck['config']['arch']!r}, not {cfg.arch!r}")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        state = ck["state"]
        log(f"resumed from {last} after epoch {state['epoch']} (best public_test {state['best_acc']:.4f})")
    elif cfg.init:
        ck = torch.load(cfg.init, map_location=device, weights_only=False)
        if not isinstance(ck, dict) or ck.get("arch") != cfg.arch:
            raise ValueError(f"--init: {cfg.init} is not an affcore.fer checkpoint of arch {cfg.arch!r}")
        model.load_state_dict(ck["model"])
        log(f"initialised from {cfg.init}")
    share = "" if batch_extra is None else f", {batch_extra} of each batch of {cfg.batch_size}"
    log(f"{cfg.arch}: {count_params(model):,} parameters; train {n_real} (+extra {len(xtr) - n_real}{share}), "
        f"val {len(xva)}; device {device}, threads {torch.get_num_threads()}, bf16 {cfg.bf16}")
    budget = cfg.budget_minutes * 60 if cfg.budget_minutes else None

    def progress_frac():
        p = state["step"] / total_steps
        return max(p, state["elapsed"] / budget) if budget else p

    ytr_t = torch.from_numpy(ytr)
    xtr_t = torch.from_numpy(xtr)
    while not state["done"] and state["epoch"] < max_epochs and progress_frac() < 1.0:
        epoch = state["epoch"] + 1
        g = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
        torch.manual_seed(cfg.seed * 7919 + epoch)  # dropout
        perm = (torch.randperm(len(xtr), generator=g) if batch_extra is None else
                shared_batches(n_real, len(xtr) - n_real, cfg.batch_size, batch_extra, steps_per_epoch, g))
        model.train()
        t0 = time.perf_counter()
        el0 = state["elapsed"]
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(range(min(steps_per_epoch, total_steps - state["step"])), desc=f"epoch {epoch}",
                   disable=not progress, mininterval=5, dynamic_ncols=True)
        for b in bar:
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x = augment(normalize(xtr_t[idx]), g).to(device, memory_format=mf)
            y = ytr_t[idx].to(device)
            for group in opt.param_groups:
                group["lr"] = lr_at(progress_frac(), cfg)
            with torch.autocast(device, dtype=torch.bfloat16, enabled=cfg.bf16):
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            state["step"] += 1
            state["elapsed"] = el0 + time.perf_counter() - t0
            seen += len(y)
            correct += int((logits.argmax(1) == y).sum())
            loss_sum += float(loss.detach()) * len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                            lr=f"{opt.param_groups[0]['lr']:.2e}", refresh=False)
            if budget and progress_frac() >= 1.0:
                break
        bar.close()
        pred = predict_logits(model, xva, device=device, memory_format=mf).argmax(1)
        val_acc = float((pred == yva).mean())
        val_mca = float(np.mean([(pred[yva == c] == c).mean() for c in range(len(CLASSES)) if (yva == c).any()]))
        state["epoch"] = epoch
        rec = {"epoch": epoch, "train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
               "val_acc": val_acc, "val_mean_class_acc": val_mca, "lr": opt.param_groups[0]["lr"],
               "steps": state["step"], "minutes": state["elapsed"] / 60}
        state["history"].append(rec)
        improved = val_acc > state["best_acc"]
        if improved:
            state["best_acc"], state["best_epoch"] = val_acc, epoch
        if epoch - state["best_epoch"] >= cfg.patience:
            state["done"] = True
            log(f"early stop: no public_test improvement for {cfg.patience} epochs")
        ck = {"arch": cfg.arch, "config": dataclasses.asdict(cfg), "model": model.state_dict(),
              "optimizer": opt.state_dict(), "state": state, "classes": CLASSES}
        _save(ck, last)
        if improved:
            _save({k: v for k, v in ck.items() if k != "optimizer"}, out / "best.pt")
        (out / "history.json").write_text(json.dumps(state["history"], indent=1))
        log(f"epoch {epoch}: train loss {rec['train_loss']:.4f} acc {rec['train_acc']:.4f} | public_test acc "
            f"{val_acc:.4f} mean-class {val_mca:.4f}{' *' if improved else ''} | {rec['minutes']:.1f} min")
    summary = {"best_epoch": state["best_epoch"], "best_public_test_acc": state["best_acc"],
               "epochs_run": state["epoch"], "minutes": state["elapsed"] / 60,
               "best": str(out / "best.pt"), "last": str(last)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def load_checkpoint(path, device="cpu"):
    """The model (eval mode) stored in a checkpoint written by :func:`train`."""
    import torch

    from .nets import build_model

    ck = torch.load(path, map_location=device, weights_only=False)
    if not isinstance(ck, dict) or "arch" not in ck or "model" not in ck:
        raise ValueError(f"{path}: not an affcore.fer checkpoint")
    model = build_model(ck["arch"])
    model.load_state_dict(ck["model"])
    return model.eval()
