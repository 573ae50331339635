"""bench/report.py, which writes BENCHMARKS.md: a step whose outputs are not at hand (bench/out/ is not in the
repository) keeps the block the page has for it, under its recipe label, instead of turning into "not run yet"."""
from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _report(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_report", REPO / "bench" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    monkeypatch.setattr(report, "ROOT", tmp_path)
    monkeypatch.setattr(report, "LOGS", tmp_path / "bench" / "out" / "report")
    return report


def test_a_block_without_outputs_here_is_kept_under_one_label(tmp_path, monkeypatch):
    report = _report(tmp_path, monkeypatch)
    steps = [s for s in report.STEPS if s[0] == "5"]
    kept_step, fresh_step = "scar", "dashboard"  # scar trained cifar10-mini models (labelled); dashboard did not
    assert {kept_step, fresh_step} <= {s[1] for s in steps} and kept_step in report.RECIPE
    (tmp_path / "BENCHMARKS.md").write_text(
        "## 5. Speed and memory\n\nnotes\n\n"
        f"<!-- step: {kept_step} -->\n{report.RECIPE_LABEL[report.RECIPE[kept_step]]}\n\n"
        "`python bench/bench_scar.py --epochs 30 --reuse`\n\n| measured | 4.9x |\n\n"
        "## 6. GPU\n")
    kept = report.page_blocks()
    assert kept[kept_step] == "`python bench/bench_scar.py --epochs 30 --reuse`\n\n| measured | 4.9x |"
    text = "\n".join(report.section("5", {}, kept))
    assert text.count("| measured | 4.9x |") == 1  # kept, once
    assert text.count(report.RECIPE_LABEL["classic"]) == sum(report.RECIPE.get(s[1]) == "classic" for s in steps)
    assert text.count(report.MARK.format(kept_step)) == 1
    # a step neither measured here nor on the page says so
    block = text.split(report.MARK.format(fresh_step))[1].split("<!-- step:")[0]
    assert "_not run yet_" in block
    # outputs at hand win over the page's block
    out = tmp_path / "bench" / "out" / "scar"
    out.mkdir(parents=True)
    (out / "scar.md").write_text("| measured again | 5.1x |\n")
    text = "\n".join(report.section("5", {}, kept))
    assert "| measured again | 5.1x |" in text and "| measured | 4.9x |" not in text
