"""LSTM training throughput: the pipeline's `LSTMModel.fit` beside a bare PyTorch loop, one run.

    python benchmarks/bench_lstm.py                    # CPU, 40 symbols x 3 years, 4 epochs
    python benchmarks/bench_lstm.py --device cuda      # the same on a GPU
    python benchmarks/bench_lstm.py --symbols 200 --epochs 3 --threads 2

Target (issue 5): pipeline throughput within 1.15x of the bare loop on this machine's CPU, i.e.
bare samples/s / pipeline samples/s <= 1.15.

Both train the same network (`LSTMNet`) with the same optimiser, batch size, epochs and thread
count on the same standardised sequences. The pipeline's time is the WHOLE `fit` call: feature
scaling, sequence gathering per batch, a validation pass after every epoch and best-state
copies; its samples are the training sequences times the epochs run (early stopping is switched
off by patience = epochs). The bare loop gets its sequences pre-built as one (N, window,
features) tensor and does nothing but forward, backward and step.

This machine is shared and busy, so wall-clock rates swing by +-20% from run to run. Runs
therefore alternate (bare, pipeline), each pair is compared (ratio of the two rates measured
back to back), and the verdict is the MEDIAN PAIRED RATIO over `--repeat` pairs. On the CPU the
clock is the process's CPU time (`time.process_time`: with one torch thread it is the time this
training used, not the time other processes held the cores); `--clock wall` uses wall time, as
on a GPU, where the CPU time would not count the device's work.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider  # noqa: E402
from kobe_pipelines.ml.features import compute_features  # noqa: E402
from kobe_pipelines.ml.lstm import LSTMConfig, LSTMModel, LSTMNet, resolve_device, sequence_ends  # noqa: E402

TARGET_RATIO = 1.15


def _data(symbols: int, window: int):
    sim = SimulatedProvider(SimConfig(seed=7, n_symbols=symbols, start="2019-01-02", end="2021-12-31"))
    fs = compute_features(sim.daily_bars("2019-01-02", "2021-12-31"), version_id="bench", content_hash="bench")
    frame = fs.frame
    label = frame[fs.label].to_numpy()
    target = label - frame.groupby("date")[fs.label].transform("mean").to_numpy()
    usable = np.isfinite(target) & sequence_ends(frame, window)
    cut = np.sort(frame["date"].unique())[-63]
    train = usable & (frame["date"] < cut).to_numpy()
    valid = usable & (frame["date"] >= cut).to_numpy()
    return fs, frame, target, train, valid


def _clock(device: torch.device, kind: str):
    return time.perf_counter if kind == "wall" or device.type == "cuda" else time.process_time


def _bare(fs, frame, target, train, config: LSTMConfig, device: torch.device, clock) -> float:
    """Samples per second of a plain loop over pre-built sequences."""
    values = frame.loc[:, list(fs.feature_names)].to_numpy(dtype="float64")
    idx = np.flatnonzero(train)
    mean, std = values[idx].mean(axis=0), values[idx].std(axis=0)
    x = (values - mean) / np.where(std > 0, std, 1.0)
    offsets = np.arange(-(config.window - 1), 1)
    seqs = torch.as_tensor(x[idx[:, None] + offsets], dtype=torch.float32, device=device)
    y = torch.as_tensor(target[idx] / target[idx].std(), dtype=torch.float32, device=device)
    torch.manual_seed(config.seed)
    net = LSTMNet(len(fs.feature_names), config.hidden_size, config.num_layers).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    loss_fn = nn.MSELoss()
    n = len(idx)
    _sync(device)
    started = clock()
    for _ in range(config.max_epochs):
        order = torch.randperm(n).to(device)
        for b in range(0, n, config.batch_size):
            batch = order[b : b + config.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(seqs[batch]), y[batch])
            loss.backward()
            opt.step()
    _sync(device)
    return n * config.max_epochs / (clock() - started)


def _pipeline(fs, frame, target, train, valid, config: LSTMConfig, clock) -> float:
    """Samples per second of the whole `LSTMModel.fit` call (validation passes included)."""
    model = LSTMModel(config, fs.feature_names)
    started = clock()
    report = model.fit(frame, target, train, valid)
    _sync(torch.device(report.device))
    return report.train_samples * report.epochs / (clock() - started)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="cpu: process CPU time (CPU device only)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, the same for both")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=16)
    args = parser.parse_args()

    config = LSTMConfig(max_epochs=args.epochs, patience=args.epochs, device=args.device, cpu_threads=args.threads,
                        batch_size=args.batch_size, hidden_size=args.hidden)
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    fs, frame, target, train, valid = _data(args.symbols, config.window)
    print(f"device {device}{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
          f"torch {torch.__version__}, {args.threads} CPU thread(s); {int(train.sum())} training sequences of "
          f"{config.window} x {len(fs.feature_names)}, batch {config.batch_size}, hidden {config.hidden_size}, {args.epochs} epochs")

    clock = _clock(device, args.clock)
    print(f"clock: {'wall time' if clock is time.perf_counter else 'process CPU time'}")
    warm = LSTMConfig(**{**config.__dict__, "max_epochs": 1, "patience": 1})
    _pipeline(fs, frame, target, train, valid, warm, clock)  # first-call imports and allocator warm-up
    _bare(fs, frame, target, train, warm, device, clock)
    bare, pipe = [], []
    for _ in range(args.repeat):
        bare.append(_bare(fs, frame, target, train, config, device, clock))
        pipe.append(_pipeline(fs, frame, target, train, valid, config, clock))
    ratios = [b / p for b, p in zip(bare, pipe)]
    ratio = statistics.median(ratios)
    print(f"bare PyTorch loop : {statistics.median(bare):12,.0f} samples/s (median)   runs: {', '.join(f'{v:,.0f}' for v in bare)}")
    print(f"pipeline fit      : {statistics.median(pipe):12,.0f} samples/s (median)   runs: {', '.join(f'{v:,.0f}' for v in pipe)}")
    print(f"paired ratios bare/pipeline: {', '.join(f'{r:.3f}' for r in ratios)}")
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(f"median paired ratio bare / pipeline = {ratio:.3f} (target <= {TARGET_RATIO}) {verdict}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
