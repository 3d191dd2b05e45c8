"""How far a member of a stacked group, retrained alone, lands from the member trained in the group.

A checkpoint that is corrupt is trained again (``cluster.run_population``); when it was a member
of a stacked group (``group_size`` > 1) and its group-mates are finished, it trains alone: the
same initialisation, data order and augmentation, but plain convolutions where the group had
grouped ones, so every sum runs in another order. This script measures what that does: it trains
the profile's first two base networks stacked, truncates the second one's checkpoint, lets
``run_population`` retrain it, and prints the largest weight difference (with that tensor's
largest magnitude) and both validation accuracies. Then it retrains the whole group and checks
that this reproduces the original bit for bit.

    PYTHONPATH=. .venv/bin/python benchmarks/stacked_retrain.py [--profile tiny] [--epochs N]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import torch

from paradox_utils import checkpoints, population, profiles, runtime
from paradox_utils.cluster import run_population


def weights(folder: Path, net_id: str) -> tuple[dict[str, torch.Tensor], float]:
    state, _, meta = checkpoints.load_state(folder / net_id)
    # copies: the loaded tensors may map the file, which is truncated next
    return {name: value.clone() for name, value in state.items()}, meta["metrics"]["val_accuracy"]


def compare(original: dict[str, torch.Tensor], again: dict[str, torch.Tensor]) -> list[tuple[float, float, str]]:
    """(max |difference|, the original tensor's max |value|, name) per floating-point tensor, largest first."""
    rows = [(float((again[name] - value).abs().max()), float(value.abs().max()), name)
            for name, value in original.items() if value.is_floating_point()]
    return sorted(rows, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="tiny", help="whose base networks (default tiny)")
    parser.add_argument("--epochs", type=int, help="train this many epochs instead of the profile's")
    args = parser.parse_args()
    runtime.configure()
    values = profiles.profile_values(args.profile)
    if args.epochs:
        values["base_common"] = {**values["base_common"], "epochs": args.epochs}
    specs = [s for s in population.from_parameters(values) if s.kind == "base"][:2]
    config = specs[0].config
    print(f"{args.profile}: {specs[0].net_id} and {specs[1].net_id}, {config.epochs} epoch(s) of "
          f"{population.training_images(config)} images, batch {config.batch_size}, {config.optimiser} "
          f"lr {config.lr}, {config.precision}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        run_population(specs, folder, scheduler="serial", progress=False, group_size=2)
        member = specs[1].net_id
        stacked, stacked_accuracy = weights(folder, member)
        blob = (folder / f"{member}.safetensors").read_bytes()
        (folder / f"{member}.safetensors").write_bytes(blob[: len(blob) // 2])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "... is corrupt ... trained again": expected
            run_population(specs, folder, scheduler="serial", progress=False, group_size=2)
        alone, alone_accuracy = weights(folder, member)
        rows = compare(stacked, alone)
        print(f"{member} retrained alone vs trained stacked: {sum(d > 0 for d, _, _ in rows)} of {len(rows)} "
              f"tensors differ; the largest differences:")
        for difference, magnitude, name in rows[:5]:
            print(f"  {name}: {difference:.2g} (the tensor's largest |value| {magnitude:.2g})")
        difference, magnitude, name = next(r for r in rows if r[2].endswith(".weight"))
        print(f"  the largest among the weights (.weight): {name}: {difference:.2g} (largest |value| "
              f"{magnitude:.2g})")
        print(f"  val accuracy {alone_accuracy:.3f} alone vs {stacked_accuracy:.3f} stacked")
        run_population(specs, folder, scheduler="serial", progress=False, group_size=2,
                       retrain=[s.net_id for s in specs])
        group, group_accuracy = weights(folder, member)
        same = all(torch.equal(stacked[name], group[name]) for name in stacked)
        print(f"{member} retrained with its whole group (--retrain {' --retrain '.join(s.net_id for s in specs)}): "
              f"{'bit-identical' if same else 'DIFFERENT'}, val accuracy {group_accuracy:.3f}")


if __name__ == "__main__":
    main()
