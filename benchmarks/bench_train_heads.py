"""Time head training: the study's device-resident index batching vs a per-sample DataLoader loop.

Both paths run the same head, loss and optimiser on the same data (random unit vectors shaped like a
FG-OVD training set); only the way batches reach the device differs. Prints epochs/s, samples/s and the
ratio. Example (GPU):  python benchmarks/bench_train_heads.py --device cuda --rows 50000 --dim 512
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, Dataset

from fgclip_utils.extraction.clip_models import synchronize
from fgclip_utils.extraction.embedding_cache import SplitEmbeddings
from fgclip_utils.heads.architectures import HEAD_KINDS, build_head
from fgclip_utils.heads.training import TrainConfig, batch_loss, train_head


def make_data(rows: int, captions: int, negatives: int, dim: int, seed: int = 0) -> SplitEmbeddings:
    g = torch.Generator().manual_seed(seed)
    norm = torch.nn.functional.normalize
    return SplitEmbeddings(
        image=norm(torch.randn(rows, dim, generator=g), dim=-1),
        text=norm(torch.randn(captions, dim, generator=g), dim=-1),
        captions=[str(i) for i in range(captions)], positive=torch.randint(captions, (rows,), generator=g),
        negatives=torch.randint(captions, (rows, negatives), generator=g), annotation_ids=torch.arange(rows))


class PerSample(Dataset):
    """The naive path: one (image, positive index, negative indices) sample at a time."""

    def __init__(self, emb: SplitEmbeddings):
        self.emb = emb

    def __len__(self):
        return len(self.emb)

    def __getitem__(self, i):
        return self.emb.image[i], self.emb.positive[i], self.emb.negatives[i]


def naive_epochs(emb, kind, cfg, device, epochs, workers) -> float:
    head = build_head(kind, emb.image.shape[1], seed=0).to(device).train()
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    text = emb.text.to(device)
    loader = DataLoader(PerSample(emb), batch_size=cfg.batch_size, shuffle=True, num_workers=workers,
                        pin_memory=device.type == "cuda")
    synchronize(device)
    start = time.perf_counter()
    for _ in range(epochs):
        for img, pos, neg in loader:
            loss = batch_loss(head, img.to(device, non_blocking=True), text, pos.to(device), neg.to(device), cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    synchronize(device)
    return time.perf_counter() - start


def ours_epochs(emb, val, kind, cfg, device, epochs) -> float:
    cfg = TrainConfig(**{**cfg.__dict__, "epochs": epochs, "patience": epochs + 1})
    res = train_head(build_head(kind, emb.image.shape[1], seed=0), emb, val, cfg, "/tmp/bench_head.pt",
                     device=device, progress=False)
    return float(res.history["seconds"].iloc[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--kind", default="linear", choices=HEAD_KINDS)
    ap.add_argument("--loss", default="triplet", choices=["triplet", "infonce"])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--captions", type=int, default=8000)
    ap.add_argument("--negatives", type=int, default=10)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers of the naive path")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    emb = make_data(args.rows, args.captions, args.negatives, args.dim)
    val = make_data(256, 256, args.negatives, args.dim, seed=1)
    cfg = TrainConfig(loss=args.loss, batch_size=args.batch_size, lr=1e-4)

    naive_epochs(emb, args.kind, cfg, device, 1, args.workers)  # warm-up (kernels, allocator)
    t_naive = naive_epochs(emb, args.kind, cfg, device, args.epochs, args.workers)
    t_ours = ours_epochs(emb, val, args.kind, cfg, device, args.epochs)  # includes per-epoch validation
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}; head {args.kind}, loss {args.loss}, {args.rows} rows x {args.negatives} negatives, "
          f"d={args.dim}, batch {args.batch_size}, {args.epochs} epochs")
    for label, t in (("per-sample DataLoader", t_naive), ("on-device index batches", t_ours)):
        print(f"  {label:<24} {args.epochs / t:8.2f} epochs/s  {args.rows * args.epochs / t:12.0f} samples/s")
    print(f"  speed-up (ours / DataLoader): {t_naive / t_ours:.2f}x")


if __name__ == "__main__":
    main()
