"""`hpsearch models [NAME [--resize N]]`: the registry, or one network layer by layer."""

from __future__ import annotations

import argparse

from hpsearch.cli import common
from hpsearch.cli.common import positive


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = common.parser(prog, "Without NAME: a table of the networks. With NAME: each layer's "
                            "output shape.")
    p.add_argument("name", nargs="?", metavar="NAME", help="a network")
    p.add_argument("--resize", type=positive(int, "--resize"), metavar="N",
                   help="input side in pixels (default: the network's own)")
    return p


def parse_args(argv: list[str] | None, prog: str) -> argparse.Namespace:
    return build_parser(prog).parse_args(argv)


def table() -> str:
    from hpsearch import models

    lines = [f"{'name':<14} {'input':>5} {'parameters':>12} {'MFLOPs/image':>13}  about"]
    for s in models.MODELS.values():
        count = models.param_count(models.build(s.name))
        mflops = models.forward_flops(s.name, s.default_size) / 1e6
        lines.append(f"{s.name:<14} {s.default_size:>5} {count:>12,} {mflops:>13,.1f}  "
                     f"{s.about}")
    return "\n".join(lines)


def layers(name: str, size: int | None) -> str:
    from hpsearch import models

    size = models.spec(name).default_size if size is None else size
    net = models.build(name, size)
    lines = [f"{name} at {size}x{size}: {models.param_count(net):,} parameters"]
    lines += [f"{layer:<18} output shape: {shape}"
              for layer, shape in models.layer_shapes(net, size)]
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "hpsearch models") -> int:
    args = parse_args(argv, prog)
    if args.resize is not None and args.name is None:
        from hpsearch.errors import UsageError

        raise UsageError("--resize needs a network NAME")
    print(layers(args.name, args.resize) if args.name else table())
    return 0
