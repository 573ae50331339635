"""`scarlab surrogate organize`: turn any folder of images into a chunked surrogate folder."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("surrogate", help="surrogate (out-of-distribution) image sets")
    ssub = p.add_subparsers(dest="surrogate_command", metavar="ACTION", required=True)
    o = ssub.add_parser("organize", help="copy images from SRC into DST/0, DST/1, ... chunks",
                        description="Shuffle every image under SRC (e.g. 10,000 sampled ImageNet or COCO images) "
                                    "and copy them into numbered chunk folders, the layout SCAR's surrogate "
                                    "option imagefolder:DST reads.")
    o.add_argument("src")
    o.add_argument("dst")
    o.add_argument("--chunk-size", type=int, default=1000)
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--overwrite", action="store_true")
    o.set_defaults(func=run)


def run(args) -> int:
    from ..data import organize_surrogate

    chunks = organize_surrogate(args.src, args.dst, args.chunk_size, args.seed, args.overwrite)
    print(f"{len(chunks)} chunk(s) written under {args.dst}; use --surrogate imagefolder:{args.dst}")
    return 0
