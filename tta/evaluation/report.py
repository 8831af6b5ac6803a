"""Writing an evaluation result: ``report.json``, ``report.md`` (a Markdown table) and optional PNG plots.

Plots (matplotlib, imported only when asked for): ``clap_per_class.png``, the mean CLAP score (cosine) of each
class (or prompt) as horizontal bars, and ``mel_best_worst.png``, the log-mels of the generated clips with the
highest and lowest CLAP scores.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from tta.errors import InputError

# metric name -> (label in the Markdown table, which way is better)
METRIC_LABELS: dict[str, tuple[str, str]] = {
    "fad": ("FAD", "lower"),
    "fad_inf": ("FAD∞ (fit against 1/n, as fadtk)", "lower"),
    "fad_inf_r2": ("FAD∞ fit R²", ""),
    "kad": ("KAD (kernel audio distance, ×100, as kadtk)", "lower"),
    "clap_score": ("CLAP score (mean cosine)", "higher"),
    "clap_score_x100": ("CLAP score ×100", "higher"),
    "clap_score_w2.5": ("CLAP score, mean 2.5·max(0, cos) (CLIPScore convention)", "higher"),
    "kl_softmax": ("KL, softmax (audioldm_eval / AudioGen)", "lower"),
    "kl_sigmoid": ("KL, sigmoid (audioldm_eval)", "lower"),
    "inception_score": ("Inception Score", "higher"),
    "inception_score_std": ("Inception Score std over splits", ""),
    "inception_score_splits": ("Inception Score splits (>= 10 clips each)", ""),
    "mel_distance": ("mel distance (mean abs. Δ log-mel)", "lower"),
    "lsd": ("log-spectral distance", "lower"),
    "psnr": ("PSNR of log-mels (dB)", "higher"),
}


def _finite(value):
    """JSON has no inf/NaN: write them as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def markdown(report: dict) -> str:
    """The metrics as a Markdown table, with the backend, classifier, counts and notes."""
    s = report["settings"]
    lines = [
        f"Backend: `{s['backend']}` (`{s['backend_version'][:40]}`); classifier: {s['classifier'] or 'none'}",
        f"Generated: {report['counts']['generated']} clips, reference: {report['counts']['reference']} clips, "
        f"paired: {report['counts']['paired']}, with prompt: {report['counts']['with_prompt']}",
        "",
        "| metric | value | better |",
        "| --- | ---: | --- |",
    ]
    for name, value in report["metrics"].items():
        label, better = METRIC_LABELS.get(name, (name, ""))
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"| {label} | {shown} | {better} |")
    lines += loudness_lines(report.get("loudness") or {})
    if s.get("per_clip"):
        lines += per_clip_table(report["clips"])
    lines += [f"\n* {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def loudness_lines(spread: dict) -> list[str]:
    """The loudness spread of the generated clips as a small table (empty without one)."""
    if not spread.get("clips"):
        return []
    lines = ["", f"Loudness of the generated clips ({spread['clips']} clips, {spread['silent']} silent):", ""]
    lines += ["| | min | median | max |", "| --- | ---: | ---: | ---: |"]
    for key, label in (("lufs", "integrated loudness (LUFS)"), ("true_peak_dbtp", "true peak (dBTP)")):
        if f"{key}_min" in spread:
            values = [spread[f"{key}_{stat}"] for stat in ("min", "median", "max")]
            lines.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    return lines


def per_clip_table(clips: list[dict]) -> list[str]:
    """Every generated clip, farthest from the reference set first: kernel distance, CLAP cosine, loudness."""
    rows = sorted(clips, key=lambda c: -c.get("kad_distance", float("-inf")))
    lines = ["", "Per clip, farthest from the reference set first:", ""]
    lines += ["| file | prompt | kernel distance | CLAP cosine | LUFS |", "| --- | --- | ---: | ---: | ---: |"]
    for c in rows:
        cells = [c.get(k) for k in ("kad_distance", "clap_cosine", "lufs")]
        shown = " | ".join("" if v is None else f"{v:.3f}" for v in cells)
        prompt = str(c.get("prompt", "")).replace("|", "/")[:60]
        lines.append(f"| {c['file']} | {prompt} | {shown} |")
    return lines


def write_report(report: dict, out_dir: str | os.PathLike, plots: bool = False) -> list[Path]:
    """Write ``report.json`` and ``report.md`` (and the PNG plots) into ``out_dir``; returns the paths."""
    from tta.audio.io import write_atomic

    out = Path(out_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create output folder {out}: {err.strerror or err}") from err
    paths = [
        write_atomic(out / "report.json", json.dumps(_finite(report), indent=2, ensure_ascii=False) + "\n"),
        write_atomic(out / "report.md", markdown(report)),
    ]
    if plots:
        paths += write_plots(report, out)
    return paths


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise InputError("--plots needs matplotlib (pip install matplotlib)") from err
    return plt


def write_plots(report: dict, out: Path, per_side: int = 3) -> list[Path]:
    """The two PNG plots of the module docstring (only those the report has data for)."""
    plt = _pyplot()
    paths = []
    per_class = report.get("per_class_clap_score") or {}
    if per_class:
        names = sorted(per_class, key=per_class.get)
        fig, ax = plt.subplots(figsize=(7, 0.25 * len(names) + 1.2))
        ax.barh(range(len(names)), [per_class[n] for n in names], color="tab:blue")
        ax.set_yticks(range(len(names)), [n[:40] for n in names], fontsize=7)
        ax.set_xlabel("CLAP score (mean cosine)")
        fig.tight_layout()
        fig.savefig(out / "clap_per_class.png", dpi=110)
        plt.close(fig)
        paths.append(out / "clap_per_class.png")
    scored = [c for c in report["clips"] if "clap_cosine" in c]
    if len(scored) >= 2:
        import torch

        from tta.audio.io import load_audio
        from tta.audio.mel import MelSpectrogram

        scored.sort(key=lambda c: c["clap_cosine"], reverse=True)
        k = min(per_side, len(scored) // 2)
        chosen = [("best", c) for c in scored[:k]] + [("worst", c) for c in scored[-k:]]
        mel = MelSpectrogram()
        folder = Path(report["settings"]["generated"])
        fig, axes = plt.subplots(2, k, figsize=(3.2 * k, 5), squeeze=False)
        for ax, (tag, clip) in zip(axes.flat, chosen):
            path = next(folder.rglob(clip["file"]), None)
            if path is not None:
                with torch.no_grad():
                    spec = mel(torch.from_numpy(load_audio(path)[: 16000 * 10])).numpy().T
                ax.imshow(spec, origin="lower", aspect="auto", cmap="magma")
            ax.set_title(f"{tag} {clip['clap_cosine']:.2f}: {clip.get('prompt', '')[:28]}", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        fig.savefig(out / "mel_best_worst.png", dpi=110)
        plt.close(fig)
        paths.append(out / "mel_best_worst.png")
    return paths
