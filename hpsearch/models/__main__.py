"""python -m hpsearch.models [NAME [--resize N]]: the registry, or one network layer by layer."""

import argparse
import sys

from hpsearch.cli import run_main
from hpsearch.models import MODELS, build, forward_flops, layer_shapes, param_count, spec


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m hpsearch.models",
        description="Without NAME: a table of the networks. With NAME: each layer's output shape.",
    )
    p.add_argument("name", nargs="?", choices=list(MODELS), metavar="NAME",
                   help=f"one of: {', '.join(MODELS)}")
    p.add_argument("--resize", type=int, default=None, metavar="N",
                   help="input side in pixels (default: the network's own)")
    return p.parse_args(argv)


def table() -> str:
    lines = [f"{'name':<14} {'input':>5} {'parameters':>12} {'MFLOPs/image':>13}  about"]
    for s in MODELS.values():
        net = build(s.name)
        mflops = forward_flops(s.name, s.default_size) / 1e6
        lines.append(f"{s.name:<14} {s.default_size:>5} {param_count(net):>12,} "
                     f"{mflops:>13,.1f}  {s.about}")
    return "\n".join(lines)


def layers(name: str, size: int | None) -> str:
    size = spec(name).default_size if size is None else size
    net = build(name, size)
    count = param_count(net)
    lines = [f"{name} at {size}x{size}: {count:,} parameters"]
    lines += [f"{layer:<18} output shape: {shape}" for layer, shape in layer_shapes(net, size)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(layers(args.name, args.resize) if args.name else table())
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
