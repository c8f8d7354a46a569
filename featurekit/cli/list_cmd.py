"""featurekit list backbones|heads [PATTERN]"""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("list", help="list backbones (usable offline by default) or heads")
    p.add_argument("what", choices=("backbones", "heads"))
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*'")
    p.add_argument(
        "--all", action="store_true", help="backbones: every timm name, not only offline-usable ones"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.what == "heads":
        import fnmatch

        from featurekit.heads import list_heads

        heads = [h for h in list_heads() if fnmatch.fnmatch(h.name, args.pattern)]
        for head in heads:
            print(f"{head.name:<16} {head.description}")
            print(f"{'':<16} preprocessing: {head.preprocessing}")
            if head.search_space:
                space = "; ".join(f"{k} {v}" for k, v in head.search_space.items())
                print(f"{'':<16} search space: {space}")
        if not heads:
            print(f"no head matches {args.pattern!r}")
        return 0
    from featurekit.backbones import list_backbones

    infos = list_backbones(args.pattern, offline_only=not args.all)
    for info in infos:
        status = "offline" if info.offline else "needs network or --weights FILE"
        print(f"{info.name:<40} {status:<32} {info.weights_source}")
    if not infos:
        print("no backbone matches" + ("" if args.all else " offline (try --all)"))
    return 0
