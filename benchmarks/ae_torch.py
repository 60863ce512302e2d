#!/usr/bin/env python3
"""PyTorch reference for crates/repr/examples/ae_throughput.rs (run by benchmarks/ae_throughput.sh).

The same two autoencoders for 32x32 single-channel stamps (see crates/repr/src/model.rs):
  dense: Linear(1024->256)+BN+silu, Linear(256->64)+BN+silu, Linear(64->8);
         Linear(8->64)+BN+silu, Linear(64->256)+BN+silu, Linear(256->1024)
  conv:  3x3 stride-2 pad-1 convs 1->8->16->32, each +BN2d+silu, flatten, Linear(512->8);
         Linear(8->512)+silu, reshape (32,4,4), per stage nearest x2 upsample + 3x3 conv
         (32->16, 16->8, 8->8) +BN2d+silu, final 3x3 conv 8->1
and the same training loop as deepsky_nn::train: 1024 seeded random examples, batch 32
(32 steps per epoch), reshuffled every epoch, MSE, AdamW (lr 2e-3, betas 0.9/0.999, eps 1e-8,
weight decay 1e-4) with a one-epoch linear warm-up then cosine to 1e-5, gradient clipping at
global norm 5, the loss read back every step. The first epoch (32 steps) is warm-up and not
timed. Threads: RAYON_NUM_THREADS (as for the Rust side). Prints one JSON line per model, with
the cores this process kept busy (own_cores) and those used by everything else on the machine
(others_cores) over the timed steps, read from /proc as the Rust side does.

Usage: RAYON_NUM_THREADS=2 python benchmarks/ae_torch.py [--steps N] [--models dense,conv]
"""
import argparse
import json
import math
import os
import time

import torch
from torch import nn

BATCH = 32
STEPS_PER_EPOCH = 32


def dense_ae():
    def block(i, o):
        return [nn.Linear(i, o), nn.BatchNorm1d(o), nn.SiLU()]

    enc = nn.Sequential(nn.Flatten(), *block(1024, 256), *block(256, 64), nn.Linear(64, 8))
    dec = nn.Sequential(*block(8, 64), *block(64, 256), nn.Linear(256, 1024), nn.Unflatten(1, (1, 32, 32)))
    return nn.Sequential(enc, dec)


def conv_ae(widths=(8, 16, 32), latent=8, size=32):
    enc, cin = [], 1
    for c in widths:
        enc += [nn.Conv2d(cin, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.SiLU()]
        cin = c
    s = size >> len(widths)
    flat = cin * s * s
    enc += [nn.Flatten(), nn.Linear(flat, latent)]
    dec = [nn.Linear(latent, flat), nn.SiLU(), nn.Unflatten(1, (cin, s, s))]
    chans = list(reversed(widths))
    for i, c in enumerate(chans):
        cout = chans[i + 1] if i + 1 < len(chans) else c
        dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.SiLU()]
    dec += [nn.Conv2d(chans[-1], 1, 3, padding=1)]
    return nn.Sequential(nn.Sequential(*enc), nn.Sequential(*dec))


def cpu_sample():
    """(machine busy, machine total, this process, cores) in clock ticks, from /proc."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
        v = [int(x) for x in lines[0].split()[1:]]
        v += [0] * (8 - len(v))
        busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
        total = busy + v[3] + v[4]
        cores = sum(1 for l in lines if l.startswith("cpu") and l[3:4].isdigit())
        with open("/proc/self/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return busy, total, int(rest[11]) + int(rest[12]), max(cores, 1)
    except (OSError, ValueError, IndexError):
        return 0, 0, 0, 1


def cores_used(a, b):
    wall = (b[1] - a[1]) / a[3]
    if wall <= 0:
        return float("nan"), float("nan")
    own = b[2] - a[2]
    return own / wall, max(b[0] - a[0] - own, 0) / wall


def lr_at(step, base, spe, total, warmup_epochs=1.0, min_lr=1e-5):
    """deepsky_nn::schedule::Schedule::default() (warm-up, then cosine)."""
    warmup = warmup_epochs * spe
    if step < warmup:
        return base * (step + 1) / max(warmup, 1.0)
    p = min(max((step - warmup) / max(total - warmup, 1.0), 0.0), 1.0)
    return min_lr + 0.5 * (base - min_lr) * (1.0 + math.cos(math.pi * p))


def run(name, steps, threads):
    torch.manual_seed(1)
    model = {"dense": dense_ae, "conv": conv_ae}[name]()
    model.train()
    params = sum(p.numel() for p in model.parameters())
    n = BATCH * STEPS_PER_EPOCH
    data = torch.randn(n, 1, 32, 32)
    base_lr = 2e-3
    opt = torch.optim.AdamW(model.parameters(), lr=base_lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4)
    warmup = STEPS_PER_EPOCH
    epochs = 1 + steps // STEPS_PER_EPOCH
    total = epochs * STEPS_PER_EPOCH
    gen = torch.Generator().manual_seed(1)
    step, start, loss_value = 0, None, float("nan")
    for _epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        for b in range(STEPS_PER_EPOCH):
            lr = lr_at(step, base_lr, STEPS_PER_EPOCH, total)
            for g in opt.param_groups:
                g["lr"] = lr
            x = data[order[b * BATCH:(b + 1) * BATCH]]
            loss = nn.functional.mse_loss(model(x), x)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise SystemExit(f"{name}: diverged at step {step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            step += 1
            if step == warmup:
                start, cpu0 = time.perf_counter(), cpu_sample()
    secs = time.perf_counter() - start
    own, others = cores_used(cpu0, cpu_sample())
    timed = step - warmup
    return {
        "impl": "torch",
        "version": torch.__version__,
        "model": name,
        "threads": threads,
        "batch": BATCH,
        "warmup_steps": warmup,
        "steps": timed,
        "params": params,
        "seconds": round(secs, 4),
        "samples_per_s": round(timed * BATCH / secs, 1),
        "ms_per_step": round(secs / timed * 1e3, 2),
        "own_cores": round(own, 2),
        "others_cores": round(others, 2),
        "final_loss": round(loss_value, 5),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=320, help="timed steps after the warm-up epoch (rounded up to whole epochs of 32)")
    ap.add_argument("--models", default="dense,conv")
    a = ap.parse_args()
    threads = int(os.environ.get("RAYON_NUM_THREADS") or os.cpu_count() or 1)
    torch.set_num_threads(threads)
    steps = max(1, math.ceil(a.steps / STEPS_PER_EPOCH)) * STEPS_PER_EPOCH
    for name in a.models.split(","):
        print(json.dumps(run(name, steps, threads)), flush=True)


if __name__ == "__main__":
    main()
