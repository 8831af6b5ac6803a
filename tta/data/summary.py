"""Counting a built corpus: per-class table, licences, skips with reasons; ``summary.json`` and ``LICENSES.md``."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from tta.audio.io import write_atomic


def summarize(records: list[dict], skipped: Iterable[dict], capped: dict[str, int] | None = None) -> dict:
    """Counts for a corpus.

    Returns:
        ``{"clips", "minutes", "recordings", "classes": {label: {"clips", "minutes", "train", "valid", "test"}},
        "licenses": {licence: clips}, "packages": {package: {"clips", "minutes", "license"}},
        "skipped": {reason: count}, "skipped_total", "left_out_by_caps": {label: rows}}``.
    """
    classes: dict[str, dict] = defaultdict(lambda: {"clips": 0, "minutes": 0.0, "train": 0, "valid": 0, "test": 0})
    packages: dict[str, dict] = defaultdict(lambda: {"clips": 0, "minutes": 0.0, "licenses": Counter()})
    for rec in records:
        minutes = rec["duration"] / 60.0
        for label in rec["labels"]:
            entry = classes[label]
            entry["clips"] += 1
            entry["minutes"] += minutes
            entry[rec["split"]] = entry.get(rec["split"], 0) + 1
        pkg = packages[rec["source_package"]]
        pkg["clips"] += 1
        pkg["minutes"] += minutes
        pkg["licenses"][rec["license"]] += 1
    skipped = list(skipped)
    return {
        "clips": len(records),
        "minutes": round(sum(r["duration"] for r in records) / 60.0, 2),
        "recordings": len({r["md5"] for r in records}),
        "classes": {k: {**v, "minutes": round(v["minutes"], 2)} for k, v in sorted(classes.items())},
        "licenses": dict(Counter(r["license"] for r in records).most_common()),
        "packages": {
            k: {"clips": v["clips"], "minutes": round(v["minutes"], 2), "licenses": dict(v["licenses"])}
            for k, v in sorted(packages.items())
        },
        "skipped": dict(Counter(s["reason"] for s in skipped).most_common()),
        "skipped_total": len(skipped),
        "left_out_by_caps": dict(sorted((capped or {}).items())),
    }


def format_table(summary: dict) -> str:
    """The summary as plain-text tables (classes, licences, skips) for the terminal."""
    lines = [f"{'class':<24}{'clips':>7}{'minutes':>9}{'train':>7}{'valid':>7}{'test':>6}"]
    for label, c in summary["classes"].items():
        lines.append(f"{label:<24}{c['clips']:>7}{c['minutes']:>9.1f}{c['train']:>7}{c['valid']:>7}{c['test']:>6}")
    totals = {k: sum(c[k] for c in summary["classes"].values()) for k in ("train", "valid", "test")}
    lines.append(
        f"{'TOTAL':<24}{summary['clips']:>7}{summary['minutes']:>9.1f}{totals['train']:>7}{totals['valid']:>7}{totals['test']:>6}"
    )
    lines.append(f"{len(summary['classes'])} classes, {summary['recordings']} distinct source recordings")
    lines.append("")
    lines.append(f"{'licence':<44}{'clips':>7}")
    for lic, n in summary["licenses"].items():
        lines.append(f"{lic:<44}{n:>7}")
    lines.append("")
    capped = summary.get("left_out_by_caps") or {}
    if capped:
        lines.append("left out by per-class caps (not skipped): " + ", ".join(f"{k} {v}" for k, v in capped.items()))
    lines.append(f"skipped: {summary['skipped_total']}")
    for reason, n in summary["skipped"].items():
        lines.append(f"  {reason:<42}{n:>7}")
    return "\n".join(lines)


def licenses_markdown(summary: dict) -> str:
    """``LICENSES.md`` for a corpus root: every source package, its licence(s) and what it contributed."""
    lines = [
        "# Sources and licences of this corpus",
        "",
        "Every clip comes from a package of Debian's main archive; `manifest.jsonl` names the package, the path",
        "inside it and the licence of each clip. Models trained on this corpus must credit these sources; several",
        "are CC-BY-SA or GPL. `flightgear-data-base` and `widelands-data` are reserved for evaluation and never",
        "included.",
        "",
        "| package | clips | minutes | licence(s) |",
        "|---|---:|---:|---|",
    ]
    for pkg, p in summary["packages"].items():
        lic = "; ".join(f"{k} ({v})" if len(p["licenses"]) > 1 else k for k, v in p["licenses"].items())
        lines.append(f"| {pkg} | {p['clips']} | {p['minutes']:.1f} | {lic} |")
    return "\n".join(lines) + "\n"


def write_reports(root: str | Path, summary: dict, skipped: Iterable[dict]) -> None:
    """Write ``summary.json`` (with every skipped row) and ``LICENSES.md`` into the corpus root."""
    root = Path(root)
    write_atomic(root / "summary.json", json.dumps({**summary, "skipped_rows": list(skipped)}, indent=1))
    write_atomic(root / "LICENSES.md", licenses_markdown(summary))


def read_manifest(root: str | Path) -> list[dict]:
    """The records of ``<root>/manifest.jsonl``."""
    path = Path(root) / "manifest.jsonl"
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
