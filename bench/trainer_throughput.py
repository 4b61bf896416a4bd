"""Training throughput of trainer/'s loop against a minimal hand-written PyTorch loop, and the epoch time with
and without the decoded-image cache (decoding JPEGs every epoch, as a plain ImageFolder + DataLoader does).

    python bench/trainer_throughput.py                      # CPU defaults: resnet18 at 64 px
    python bench/trainer_throughput.py --model resnet50 --size 224 --images 2000 --batch 64   # on a GPU

Prints one block of figures; the ratios are measured in this one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from trainer.data import DataConfig, load_images, make_splits
from trainer.loop import TrainConfig, Trainer, resolve_device
from trainer.strategies import StrategyConfig, create_model
from trainer.synthetic import write_synthetic


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def ours(splits, args, device):
    """A step function that advances trainer/'s loop by one training step."""
    torch.manual_seed(0)
    model = create_model(args.model, 7, strategy=StrategyConfig("finetune"))
    cfg = TrainConfig(lr=1e-3, batch_size=args.batch, epochs=args.epochs, device=str(device))
    trainer = Trainer(model, splits, cfg, "imagenet")
    trainer.progress.history.append({"epoch": 0})  # skip the epoch-0 evaluation: we time training only
    events = trainer.run()
    if trainer.steps_per_epoch <= args.steps * (args.rounds + 1):
        raise SystemExit(f"--images too small: {trainer.steps_per_epoch} steps per epoch")

    def step():
        while type(next(events)).__name__ != "StepDone":
            pass

    return step


def bare(splits, args, device):
    """What a careful user writes by hand: tensors on the device, slice, forward, backward, step."""
    torch.manual_seed(0)
    model = create_model(args.model, 7, strategy=StrategyConfig("finetune")).to(device).train()
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x_all = splits.data.images[splits.train].to(device)
    y_all = splits.data.labels[splits.train].to(device)
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)
    n = len(y_all)

    def step():
        idx = torch.randint(0, n, (args.batch,), device=device)
        x = (x_all[idx].float() / 255 - mean) / std
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = F.cross_entropy(model(x), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def images_per_s(step, args, device) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    _sync(device)
    return args.steps * args.batch / (time.perf_counter() - start)


def compare(splits, args, device) -> tuple[float, float]:
    """Both loops warmed up, then timed in alternating rounds: the median of each (CPU timings are noisy)."""
    loops = {"ours": ours(splits, args, device), "bare": bare(splits, args, device)}
    for step in loops.values():
        for _ in range(3):
            step()
    rates: dict[str, list[float]] = {k: [] for k in loops}
    for _ in range(args.rounds):
        for name, step in loops.items():
            rates[name].append(images_per_s(step, args, device))
    return statistics.median(rates["ours"]), statistics.median(rates["bare"])


def decode_per_epoch(root: str, args, device) -> float:
    """One epoch the usual way: every JPEG decoded and resized again, in DataLoader workers."""
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.Resize((args.size, args.size)), transforms.PILToTensor()])
    ds = datasets.ImageFolder(root, transform=tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=min(4, os.cpu_count()))
    model = create_model(args.model, 2, strategy=StrategyConfig("finetune")).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for x, y in loader:
        x = x.to(device).float() / 127.5 - 1
        loss = F.cross_entropy(model(x), y.to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
    _sync(device)
    return time.perf_counter() - start


def cached_epoch(root: str, args, device) -> float:
    cfg = DataConfig("imagefolder", root, image_size=args.size)
    splits = make_splits(load_images(cfg, args.size), cfg)
    splits.train = torch.arange(len(splits.data)).numpy()  # the whole set, as the other epoch
    model = create_model(args.model, 2, strategy=StrategyConfig("finetune"))
    trainer = Trainer(model, splits, TrainConfig(batch_size=args.batch, epochs=1, device=str(device)), "imagenet")
    trainer.progress.history.append({"epoch": 0})
    start = time.perf_counter()
    for event in trainer.run():
        if type(event).__name__ == "EpochDone":
            break
    _sync(device)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10, help="steps per timed round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--images", type=int, default=4000)  # 60% train: the timed steps stay inside one epoch
    args = p.parse_args()
    device = resolve_device("auto")
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"{platform.processor() or 'cpu'}"
    print(f"device: {device.type} ({name}), {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"model {args.model} at {args.size} px, batch {args.batch}")

    with tempfile.TemporaryDirectory() as tmp:
        ham = write_synthetic(os.path.join(tmp, "ham"), "ham10000", n_images=args.images, size=max(64, args.size))
        splits = make_splits(load_images(DataConfig("ham10000", ham), args.size), DataConfig())
        a, b = compare(splits, args, device)
        print(f"trainer loop:        {a:9.1f} images/s")
        print(f"hand-written loop:   {b:9.1f} images/s")
        print(f"ratio (target >= 0.95): {a / b:.3f}")

        folder = write_synthetic(os.path.join(tmp, "folder"), "imagefolder", n_images=args.images, size=256)
        t0 = time.perf_counter()
        load_images(DataConfig("imagefolder", folder, image_size=args.size), args.size)  # fills the cache once
        decode_s = time.perf_counter() - t0
        slow, fast = decode_per_epoch(folder, args, device), cached_epoch(folder, args, device)
        print(f"epoch of {args.images} 256-px JPEGs, decoded every epoch: {slow:7.2f} s")
        print(f"same epoch from the decoded-image cache:        {fast:7.2f} s  (x{slow / fast:.2f} faster)")
        print(f"one-off decode that fills the cache:            {decode_s:7.2f} s")


if __name__ == "__main__":
    main()
