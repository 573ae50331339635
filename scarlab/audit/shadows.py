"""Shadow populations: the folder of one training configuration and forget set (``shadows.json``, its
fingerprint), the K seeds, and :func:`shadow_population`, which makes or reuses the members an audit needs (the
package docstring: layout and reuse rule)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import MIN_SHADOWS, shadow_seeds
from ..errors import ScarlabError
from ..runs import locked, make_folder, read_json, replacing, write_json
from .members import Builder, Member, build, shadow_trace
from .targets import (DEFAULT_SEED, DEFAULT_SHADOWS, Audited, audited, differences, digest, folder_identity,
                      method_key, split_identity)


@dataclass
class ShadowPopulation:
    """The shadow members one audit uses (paths), and what making them cost."""

    folder: Path
    fingerprint: str
    seeds: list[int]
    originals: list[Path] = field(default_factory=list)
    retrained: list[Path] = field(default_factory=list)
    unlearned: list[Path] = field(default_factory=list)
    method_key: str | None = None
    built: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    """seconds spent per population (original, retrained, the method key), building and checking."""


def check_k(k, kind: str | None = None) -> None:
    """Refuse a K the held-out attack cannot use (a retrained run's halves need twice MIN_SHADOWS)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < MIN_SHADOWS:
        raise ScarlabError(f"--shadows K={k!r} is too small: the held-out U-LiRA attack fits each score on the other "
                           f"K − 1 shadow pairs and one std needs two models, so K must be at least {MIN_SHADOWS} "
                           "(8 or more for usable intervals; ε can exceed 0 only from K = 6)")
    if kind == "retrained" and k < 2 * MIN_SHADOWS:
        raise ScarlabError(f"--shadows K={k} is too small to audit a retrained run: its K retrained shadows are split "
                           f"into two halves of at least {MIN_SHADOWS} (one plays 'unlearned', one 'retrained'), so K "
                           f"must be at least {2 * MIN_SHADOWS}")


LOCK = ".shadows.lock"
"""the shadow folder's lock file: the stages that use one folder at once (with --jobs 2 an audit runs beside a
method's shadow stage) take turns writing its split.npz and shadows.json."""


def shadow_folder(a: Audited, shadow_dir) -> tuple[Path, str]:
    """(The shadow folder of ``a``, its fingerprint): ``shadow_dir`` or ``shadows__<fingerprint8>`` beside the run;
    a folder of another configuration, or not a shadow folder, is refused."""
    ident = folder_identity(a)
    fp = digest(ident)
    folder = Path(shadow_dir) if shadow_dir else a.run.path.resolve().parent / f"shadows__{fp[:8]}"
    rec = folder / "shadows.json"
    if rec.is_file():
        old = read_json(rec)
        if old.get("fingerprint") != fp:
            diff = "; ".join(differences(old.get("identity") or {}, ident)) or "unknown"
            raise ScarlabError(f"shadow folder {folder} holds shadows of another configuration (fingerprint "
                               f"{str(old.get('fingerprint'))[:8]} ≠ {fp[:8]}: {diff}); another split, data set or "
                               "training option. Audit with another --shadow-dir (or none: a folder per fingerprint)")
    elif folder.is_dir() and any(p.name not in ("split.npz", LOCK) for p in folder.iterdir()):
        raise ScarlabError(f"{folder} exists and is not a scarlab shadow folder (no shadows.json); choose another "
                           "--shadow-dir")
    return folder, fp


def _record(folder: Path, fp: str, a: Audited, pop: ShadowPopulation) -> None:
    """Add ``pop``'s complete members (and its method) to the folder's shadows.json, under the folder's lock."""
    rec = folder / "shadows.json"
    with locked(folder / LOCK):
        old = read_json(rec) if rec.is_file() else {"created": time.time()}
        members = old.get("members") or {}
        there = set(pop.built) | set(pop.reused)  # complete now (a failed build leaves the rest unlisted)
        for key, paths in (("original", pop.originals), ("retrained", pop.retrained),
                           (pop.method_key or "", pop.unlearned)):
            names = {p.name for p in paths} & there
            if names:
                members[key] = sorted(set(members.get(key, [])) | names)
        if pop.method_key:
            methods = old.get("methods") or {}
            methods[pop.method_key] = a.unlearn
            old["methods"] = methods
        write_json(rec, {**old, "fingerprint": fp, "identity": folder_identity(a), "members": members,
                         "updated": time.time()})


POPULATIONS = ("original", "retrained", "unlearned")


def shadow_population(run, shadows: int = DEFAULT_SHADOWS, *, seed: int = DEFAULT_SEED, shadow_dir=None,
                      device: str = "auto", progress: bool = True, populations=None,
                      jobs: int = 1) -> ShadowPopulation:
    """Make or reuse the K shadow members an audit of ``run`` needs (the package docstring: layout and reuse rule).

    An unlearn run needs originals, retrained oracles and unlearned models; an original, the first two; a retrained
    run, only retrained oracles. ``run`` may also be an :class:`Audited` (e.g. :func:`split_target`).
    ``populations``: only these of the ones the run needs ("original", "retrained", "unlearned"; None = all of
    them) — the unlearned population is made from the originals, so it needs them complete (they are made or
    reused with it). ``jobs``: worker processes making members at once on the CPU (torch's threads shared out
    among them; on this project's 2-core machine two 1-thread workers made 1.3-1.5x the cifar10-mini trainings
    per minute of one 2-thread process, and the digits K = 16 audit ran 1.85x faster, BENCHMARKS.md §7); on an
    accelerator members are made one at a time. Returns the member paths (index i = seed + i in
    every population).
    """
    from tqdm.auto import tqdm

    from ..device import resolve_device

    a = run if isinstance(run, Audited) else audited(run)
    check_k(shadows)  # a retrained run's halves (K ≥ 6) are the online attack's need: audit_run checks them
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ScarlabError(f"jobs must be a whole number ≥ 1 (worker processes making shadow members), got {jobs!r}")
    wanted = _wanted(a, populations)
    seeds = shadow_seeds(seed, shadows)
    if a.model_seed in seeds:
        raise ScarlabError(f"the shadow seeds {seeds[0]}..{seeds[-1]} include the audited model's own training seed "
                           f"{a.model_seed}: a shadow would be its twin. Pass --seed outside that range")
    device = resolve_device(device)
    folder, fp = shadow_folder(a, shadow_dir)
    make_folder(folder, "shadow folder")
    split_file = folder / "split.npz"
    with locked(folder / LOCK):
        if not _split_ok(split_file, a.split):
            with replacing(split_file, folder / "split.tmp.npz") as tmp:
                a.split.save(tmp)
    pop = ShadowPopulation(folder, fp, seeds)
    b = Builder(a, fp)
    _record(folder, fp, a, pop)  # first, so an interrupted build still leaves a recognisable shadow folder
    members = _members(a, pop, wanted, split_file, device)
    bar = tqdm(total=len(members), desc=f"shadows of {a.run.path.name}", unit="model", disable=not progress,
               leave=False)
    try:
        with bar:
            build(b, members, min(jobs, len(members)) if device == "cpu" else 1, bar, pop.seconds)
    finally:
        pop.built, pop.reused = b.built, b.reused
        _record(folder, fp, a, pop)
    return pop


def _wanted(a: Audited, populations) -> set[str]:
    """The populations to make: those the run's kind needs, or the ``populations`` asked for (shadow_population)."""
    needs = {"unlearn": POPULATIONS, "original": POPULATIONS[:2], "retrained": POPULATIONS[1:2]}[a.kind]
    if populations is None:
        return set(needs)
    wanted = {populations} if isinstance(populations, str) else set(populations)
    bad = sorted(wanted - set(needs))
    if bad:
        raise ScarlabError(f"populations {', '.join(bad)}: an audit of a {a.kind} run uses only {', '.join(needs)}")
    if "unlearned" in wanted:
        wanted |= {"original", "retrained"}  # the unlearned shadows start from (and are compared with) these
    return wanted


def _members(a: Audited, pop: ShadowPopulation, wanted: set[str], split_file: Path, device: str) -> list[Member]:
    """The members of the ``wanted`` populations (their paths set in ``pop``), each with the configuration that
    makes it: originals and retrained oracles copy the audited run's training, unlearned ones its unlearning."""
    folder, seeds, base, u = pop.folder, pop.seeds, {**a.train, "device": device}, a.unlearn or {}
    members: list[Member] = []
    if "original" in wanted:
        pop.originals = [folder / f"original__s{s}" for s in seeds]
        members += [Member("original", "original", p, s, "train", {**base, "role": "original", "seed": s})
                    for p, s in zip(pop.originals, seeds)]
    if "retrained" in wanted:
        pop.retrained = [folder / f"retrained__s{s}" for s in seeds]
        members += [Member("retrained", "retrained", p, s, "train",
                           {**base, "role": "retrained", "seed": s, "split": str(split_file)})
                    for p, s in zip(pop.retrained, seeds)]
    if "unlearned" in wanted:
        pop.method_key = method_key(a.unlearn)
        pop.unlearned = [folder / f"{pop.method_key}__s{s}" for s in seeds]
        members += [Member(pop.method_key, "unlearned", p, s, "unlearn",
                           {"original": str(o), "method": u["method"], "retrained": str(r), "split": str(split_file),
                            "seed": s, "surrogate": u["surrogate"], "surrogate_chunks": u["surrogate_chunks"],
                            "surrogate_size": u["surrogate_size"], "params": dict(u["params"]), "device": device,
                            "retain_available": u["retain_available"], **shadow_trace(a)}, depends=o)
                    for p, s, o, r in zip(pop.unlearned, seeds, pop.originals, pop.retrained)]
    return members


def _split_ok(path: Path, split) -> bool:
    from ..data import Split

    if not path.is_file():
        return False
    try:
        return split_identity(Split.load(path)) == split_identity(split)
    except Exception:  # noqa: BLE001 - a damaged copy is rewritten
        return False


