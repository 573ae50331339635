"""`scarlab surrogate organize`: turn any folder of images into a chunked surrogate folder."""
from __future__ import annotations

from ..config import OrganizeConfig
from . import _common


def register(sub) -> None:
    p = sub.add_parser("surrogate", help="surrogate (out-of-distribution) image sets")
    ssub = p.add_subparsers(dest="surrogate_command", metavar="ACTION", required=True)
    o = _common.add_parser(ssub, "organize", OrganizeConfig, "copy images from SRC into DST/0, DST/1, ... chunks",
                           positional=("src", "dst"))
    o.set_defaults(func=run)


def run(args) -> int:
    from ..data import organize_surrogate
    from ..errors import ScarlabError

    cfg, _ = _common.options(args)
    if not cfg.src or not cfg.dst:
        raise ScarlabError("give the image folder and the surrogate folder to create: scarlab surrogate organize SRC DST")
    chunks = organize_surrogate(cfg.src, cfg.dst, cfg.chunk_size, cfg.seed, cfg.overwrite)
    print(f"{len(chunks)} chunk(s) written under {cfg.dst}; use --surrogate imagefolder:{cfg.dst}")
    return 0
