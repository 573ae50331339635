"""Run the benchmarks and write BENCHMARKS.md (issue 8): one page, every number with the command that made it.

    python bench/report.py --run            # run every step not yet done (hours on a 2-core CPU), then write
    python bench/report.py --run --only cr_core hr --force   # rerun some steps
    python bench/report.py                  # only rebuild BENCHMARKS.md from what bench/out/ holds
    python bench/report.py --section 7      # rebuild §7 in place, every other section as it is

Each step is a separate process (the command a reader can copy); its wall time and the peak resident memory
of its largest process are recorded in bench/out/report/<step>.json, what it prints in <step>.log (its stderr
in <step>.err). A step's result block is its markdown file when it writes one, else the end of what it
printed. The editorial text (what the numbers mean, which goals are unmet and why) lives in bench/NOTES.md and
is inserted per section. bench/out/ is not part of the repository: a step without a record or output here keeps
the block BENCHMARKS.md has for it (each block opens with a ``<!-- step: NAME -->`` marker). A step that trained
cifar10-mini models names their recipe above its block (:data:`RECIPE`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
LOGS = OUT / "report"
PY = "python"  # as printed; run with this interpreter

# (section, step, command, result file or None: the printed output's tail)
STEPS = [
    ("1", "cr_core", "bench/bench_repro.py cr --classes 0 1 2 3 --seeds 0 "
     "--methods scar,scar_self,negative_gradient,random_labels,duck --set train.recipe=classic --name cr_core",
     "bench/out/repro/cr_core.md"),
    ("1", "cr_lab", "bench/bench_repro.py cr --classes 0 1 2 3 --seeds 0 --methods scar,negative_gradient,"
     "random_labels --epochs 18 --set train.recipe=fast --set train.bf16=true --name cr_fastbf16 "
     "--out bench/out/repro_fastbf16", "bench/out/repro_fastbf16/cr_fastbf16.md"),
    ("2", "loop", "bench/bench_loop.py --recipe classic --epochs 30", "bench/out/loop/loop.md"),
    ("3", "hr", "bench/bench_repro.py hr --seeds 0 1 2 --methods scar,finetune --set train.recipe=classic",
     "bench/out/repro/hr.md"),
    ("4", "surrogate", "bench/bench_repro.py surrogate --classes 0 1 --seeds 0 --set train.recipe=classic",
     "bench/out/repro/surrogate.md"),
    ("4", "surrogate_digits", "bench/bench_surrogate_digits.py --classes 0 3 7", None),
    ("4", "digits", "bench/bench_digits.py --methods scar --seeds 0 1 2 --threads 1 2 --name seeds_threads",
     "bench/out/digits/seeds_threads.md"),
    ("4", "digits_methods", "bench/bench_digits.py --classes 0 --epochs 8 --original-seed 0 --seeds 0 1 2 3 4 "
     "--threads 1 2 --methods scar scar_self finetune negative_gradient random_labels duck scrub bad_teacher ssd "
     "salun --name methods_c0_e8_o0", "bench/out/digits/methods_c0_e8_o0.md"),
    ("5", "recipe", "bench/bench_recipe.py --recipes classic fast fast:bf16=true fast:bf16=true,epochs=18 --seeds 0 1 "
     "2 3 4 --threads 2 --name recipe_bf16", "bench/out/recipe_bf16/recipe.md"),
    ("5", "recipe_digits", "bench/bench_recipe.py --data digits --baseline lab --recipes lab lab:epochs=8 "
     "lab:epochs=6 lab:batch_size=128,lr=0.006 lab:bf16=true --target 0.97 --seeds 0 1 2 3 4 --threads 2 "
     "--name recipe_digits", "bench/out/recipe_digits/recipe.md"),
    ("5", "compile", "bench/bench_compile.py", "bench/out/compile/compile.md"),
    ("5", "scar", "bench/bench_scar.py --recipe classic --epochs 30 --reuse", "bench/out/scar/scar.md"),
    ("5", "scar_lab", "bench/bench_scar.py --recipe lab --out bench/out/scar_lab --lrs 0.0005 --reuse",
     "bench/out/scar_ab/lab.3.md"),
    ("5", "scar_classic", "bench/bench_scar.py --recipe classic --epochs 30 --out bench/out/scar_classic --lrs 0.0005 "
     "--reuse", "bench/out/scar_ab/classic.3.md"),
    ("5", "evaluate", "bench/bench_evaluate.py --run {scar_run}", "bench/out/evaluate/evaluate.md"),
    ("5", "demo", "bench/bench_demo.py", None),
    ("5", "train", "bench/bench_train.py --max-batches 5", "bench/out/train.md"),
    ("5", "dashboard", "bench/bench_dashboard.py", None),
    ("5", "sweep", "bench/bench_sweep.py", None),
    ("5", "ray_cluster", "bench/bench_ray_cluster.py", "bench/out/ray_cluster.md"),
    ("7", "audit_digits_cr8", "bench/bench_audit.py --shadows 8 --mode both --out bench/out/audit_digits_cr8",
     "bench/out/audit_digits_cr8/both.md"),
    ("7", "audit_digits_hr8", "bench/bench_audit.py --scenario HR --forget-size 150 --shadows 8 --mode both "
     "--out bench/out/audit_digits_hr8", "bench/out/audit_digits_hr8/both.md"),
    ("7", "audit_cifar_cr8_offline", "bench/bench_audit.py --data cifar10-mini --shadows 8 --jobs 2 --mode offline "
     "--recipe classic --out bench/out/audit_cifar_cr8", "bench/out/audit_cifar_cr8/offline_cold.md"),
    ("7", "audit_cifar_cr8_lab", "bench/bench_audit.py --data cifar10-mini --shadows 8 --jobs 2 --mode offline "
     "--recipe fast:bf16=true,epochs=18 --out bench/out/audit_cifar_cr8_fastbf16",
     "bench/out/audit_cifar_cr8_fastbf16/offline_cold.md"),
    ("7", "audit_cifar_cr8", "bench/bench_audit.py --data cifar10-mini --shadows 8 --jobs 2 --mode both --reuse "
     "--recipe classic --out bench/out/audit_cifar_cr8", "bench/out/audit_cifar_cr8/both.md"),
    ("7", "audit_cifar_hr8", "bench/bench_audit.py --data cifar10-mini --scenario HR --forget-size 500 --shadows 8 "
     "--jobs 2 --mode both --reuse --recipe classic --out bench/out/audit_cifar_hr8", "bench/out/audit_cifar_hr8/both.md"),
    ("7", "audit_k16_idle", "bench/bench_audit.py --shadows 16 --out bench/out/audit_k16_idle",
     "bench/out/audit_k16_idle/audit.md"),
    ("7", "audit", "bench/bench_audit.py --shadows 16 --out bench/out/audit", "bench/out/audit/audit.md"),
]
RECIPE = {"cr_core": "classic", "cr_lab": "lab", "loop": "classic", "hr": "classic", "surrogate": "classic",
          "scar": "classic", "scar_classic": "classic", "scar_lab": "lab", "evaluate": "classic",
          "audit_cifar_cr8_offline": "classic", "audit_cifar_cr8": "classic", "audit_cifar_hr8": "classic",
          "audit_cifar_cr8_lab": "lab", "compile": "lab"}
"""The training recipe of the cifar10-mini models behind a step's block (digits has one recipe): said above it."""
RECIPE_LABEL = {
    "classic": "_cifar10-mini models of the **classic** recipe (30 epochs; the default before 2026-12-05)_",
    "lab": "_cifar10-mini models of the **lab** recipe (the default since 2026-12-05: the fast recipe for 18 epochs "
           "with bfloat16 autocast on this CPU; `fast:bf16=true,epochs=18` spells out the same options)_"}
MARK = "<!-- step: {} -->"
"""Opens each step's block in BENCHMARKS.md, so that a block can be found again (:func:`page_blocks`)."""

SECTIONS = {"1": "1. Class removal (CR) on cifar10-mini: the paper-style table",
            "2": "2. Loop ablation: the authors' loop against each single deviation",
            "3": "3. Homogeneous removal (HR): 500 random images",
            "4": "4. Surrogate ablation and digits",
            "5": "5. Speed and memory",
            "6": "6. GPU: ResNet-18 at the paper's hyper-parameters",
            "7": "7. Privacy audit: forget, control and membership, online (U-LiRA) and offline (LiRA, RMIA)"}
GPU_COMMAND = ("bench/bench_repro.py cr --model resnet18 --device cuda --jobs 4 --classes 0 1 2 "
               "--out bench/out/repro_gpu")
PEAK = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
        "print('PEAK_KIB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)")


def scar_run() -> str:
    """the SCAR run of the CR reproduction (class 0, seed 0, default parameters, all of ood-mini), for the
    evaluation timing."""
    for run in sorted((OUT / "repro" / "runs").glob("cifar10-mini__smallcnn/CR-f0__*/scar__s0__*")):
        try:
            cfg = json.loads((run / "config.json").read_text())
        except (OSError, ValueError):
            continue
        if cfg.get("params", {}).get("lr") == 5e-4 and cfg.get("surrogate_chunks") is None \
                and "ood-mini" in cfg.get("surrogate", ""):
            return str(run.relative_to(ROOT))
    return "RUN"


def command(step: str, cmd: str) -> str:
    return f"{PY} {cmd.format(scar_run=scar_run())}"


def run_step(step: str, cmd: str) -> dict:
    LOGS.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-c", PEAK, sys.executable, *command(step, cmd).split()[1:]]
    load = os.getloadavg()[0]
    print(f"[{time.strftime('%H:%M:%S')}] {step}: {command(step, cmd)}", flush=True)
    t0 = time.perf_counter()
    with open(LOGS / f"{step}.log", "w") as log:  # what it prints (the result); warnings and progress: .err
        proc = subprocess.run(argv, cwd=ROOT, stdout=log, stderr=subprocess.PIPE, text=True)
    (LOGS / f"{step}.err").write_text(proc.stderr)
    peak = re.findall(r"PEAK_KIB (\d+)", proc.stderr)
    rec = {"step": step, "command": command(step, cmd), "rc": proc.returncode,
           "seconds": round(time.perf_counter() - t0, 1), "peak_mib": round(int(peak[-1]) / 1024) if peak else None,
           "load_before": round(load, 2), "machine": machine(), "finished": time.strftime("%Y-%m-%d %H:%M")}
    (LOGS / f"{step}.json").write_text(json.dumps(rec, indent=1))
    print(f"    rc={rec['rc']} {rec['seconds']} s, peak {rec['peak_mib']} MiB", flush=True)
    return rec


def machine() -> str:
    return f"{platform.machine()} CPU, {os.cpu_count()} cores, Python {platform.python_version()}, no GPU"


def result_block(step: str, result: str | None) -> str:
    if result and (ROOT / result).is_file():
        text = (ROOT / result).read_text().strip()
        text = text.split("\n", 1)[1].strip() if text.startswith("`python") else text  # the command is shown above
        return re.sub(r"^#+ (.*)$", r"**\1**", text, flags=re.M)  # its headings would break this page's outline
    log = LOGS / f"{step}.log"
    if not log.is_file():
        return "_not run yet_"
    lines = [ln for ln in log.read_text().splitlines()
             if ln.strip() and "\r" not in ln and "PEAK_KIB" not in ln and "%|" not in ln]
    return "```\n" + "\n".join(lines[-30:]) + "\n```"


def page_blocks() -> dict[str, str]:
    """The blocks BENCHMARKS.md holds now, by step: from a step's marker to the next marker or heading, without its
    recipe label. bench/out/ is not part of the repository, so a step measured on another machine (or in an earlier
    clone) has no outputs here: its block is kept as the page has it rather than replaced by "not run yet"."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.is_file() else ""
    blocks = {}
    for m in re.finditer(r"^<!-- step: (\S+) -->\n(.*?)(?=^<!-- step: |^## |\Z)", text, flags=re.M | re.S):
        body = m.group(2).strip()
        if body.startswith("_cifar10-mini models of the"):  # the label is written anew
            body = body.split("\n", 1)[1].strip() if "\n" in body else ""
        blocks[m.group(1)] = body
    return blocks


def _at_hand(step: str, result: str | None) -> bool:
    return (LOGS / f"{step}.json").is_file() or bool(result and (ROOT / result).is_file())


def notes() -> dict[str, str]:
    """bench/NOTES.md split at '## <section>' headings."""
    path = ROOT / "bench" / "NOTES.md"
    parts = re.split(r"^## (\S+)\s*$", path.read_text(), flags=re.M) if path.is_file() else [""]
    return {k: v.strip() for k, v in zip(parts[1::2], parts[2::2])} | {"intro": parts[0].strip()}


def section(sec: str, note: dict, kept: dict[str, str]) -> list[str]:
    """One section: its title, its notes (bench/NOTES.md), then each step's recipe label, command, record and result
    (``kept``: the page's blocks, for the steps whose outputs are not at hand)."""
    out = [f"## {SECTIONS[sec]}", ""]
    if sec in note:
        out += [note[sec], ""]
    for s, step, cmd, result in STEPS:
        if s != sec:
            continue
        out += [MARK.format(step)] + ([RECIPE_LABEL[RECIPE[step]], ""] if step in RECIPE else [])
        if not _at_hand(step, result) and kept.get(step):
            out += [kept[step], ""]
            continue
        rec_path = LOGS / f"{step}.json"
        rec = json.loads(rec_path.read_text()) if rec_path.is_file() else None
        out += [f"`{rec['command'] if rec else command(step, cmd)}`", ""]
        if rec:
            out += [f"_finished {rec['finished']}, {rec['machine']}, load {rec['load_before']} before; "
                    f"{_wall(rec['seconds'])}, peak memory {_mib(rec['peak_mib'])}, exit {rec['rc']}_"
                    + (f" ({rec['how']})" if rec.get("how") else ""), ""]
        out += [result_block(step, result), ""]
    if sec == "6":
        out += [f"`{PY} {GPU_COMMAND}`", ""]
    return out


def _wall(seconds) -> str:
    return "wall time not recorded" if seconds is None else f"{seconds:.0f} s wall"


def _mib(peak) -> str:
    return "not recorded" if peak is None else f"{peak} MiB"


def _as_typed(text: str) -> str:
    return text.replace(sys.executable, "python").replace(f"{ROOT}/", "")  # paths as typed


def splice(sec: str) -> Path:
    """Rebuild one section of BENCHMARKS.md in place (from its '## <sec>.' heading to the next '## '), the rest as
    it is: for a section re-measured while the outputs of the others are not at hand."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text()
    start = re.search(rf"^## {re.escape(sec)}\. .*$", text, flags=re.M)
    if start is None:
        raise SystemExit(f"BENCHMARKS.md has no section '## {sec}.'")
    end = re.search(r"^## ", text[start.end():], flags=re.M)
    stop = start.end() + end.start() if end else len(text)
    body = _as_typed("\n".join(section(sec, notes(), page_blocks())).rstrip()) + "\n\n"
    path.write_text(text[:start.start()] + body + text[stop:].lstrip("\n"))
    return path


def write() -> Path:
    note, kept = notes(), page_blocks()
    out = ["# scarlab benchmarks", "",
           "Generated by `python bench/report.py` from `bench/out/` (rerun everything: `python bench/report.py --run "
           "--force`). Each block: the command, when and where it ran, its wall time and the peak resident memory of "
           "its largest process; then its output. Data: `$SCARLAB_SHARED_DATA/cifar10-mini` (5,000 train + 1,000 "
           "test CIFAR-10 images) and `ood-mini` (2,000 CIFAR-100 images, 4 chunks) as surrogate.", ""]
    if note["intro"]:
        out += [note["intro"], ""]
    for sec in SECTIONS:
        out += section(sec, note, kept)
    path = ROOT / "BENCHMARKS.md"
    path.write_text(_as_typed("\n".join(out).rstrip()) + "\n")
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="store_true", help="run the steps (those without a record, unless --force)")
    ap.add_argument("--only", nargs="+", default=None, help="steps to run: " + " ".join(s[1] for s in STEPS))
    ap.add_argument("--force", action="store_true", help="rerun steps that have a record")
    ap.add_argument("--section", default=None, choices=sorted(SECTIONS),
                    help="rebuild only this section of BENCHMARKS.md in place (the others as they are)")
    a = ap.parse_args()
    failed = 0
    if a.run:
        for _, step, cmd, _ in STEPS:
            if (a.only and step not in a.only) or ((LOGS / f"{step}.json").is_file() and not a.force):
                continue
            failed += run_step(step, cmd)["rc"] != 0
    print(f"wrote {splice(a.section) if a.section else write()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
