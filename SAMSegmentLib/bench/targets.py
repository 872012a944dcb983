"""The interactive-speed targets, checked against a bench report, and its short table."""

from __future__ import annotations

from collections.abc import Mapping

PEAK_FRACTION_TARGET = 0.4

# (name, path in the report, comparison, target value, unit)
TARGETS = (
    ("click-to-mask p95", ("click_to_mask_ms", "p95"), "<=", 50.0, "ms"),
    ("first mask on a fresh slice", ("first_mask_ms",), "<=", 1500.0, "ms"),
    ("propagation vs plain loop", ("propagation", "speedup_vs_plain_loop"), ">=", 2.0, "x"),
    ("encoder share of peak FLOP/s", ("encoder_peak_fraction",), ">=", PEAK_FRACTION_TARGET, ""),
    ("main-thread stall", ("main_thread_stall_ms", "max"), "<=", 50.0, "ms"),
)


def _lookup(report: Mapping[str, object], path: tuple[str, ...]) -> float:
    value: object = report
    for key in path:
        value = value[key]  # type: ignore[index]
    return float(value)  # type: ignore[arg-type]


def check_targets(report: Mapping[str, object]) -> dict[str, dict[str, object]]:
    checked = {}
    for name, path, comparison, target, unit in TARGETS:
        measured = _lookup(report, path)
        met = measured <= target if comparison == "<=" else measured >= target
        checked[name] = {"target": f"{comparison} {target:g}{unit}", "measured": measured, "met": met}
    return checked


def peak_fraction_note(fraction: float, dense_share: float | None) -> str:
    """Why the encoder is below the FLOP/s target, from where its time goes; empty when it is not."""
    if fraction >= PEAK_FRACTION_TARGET:
        return ""
    note = (f"The encoder reaches {fraction:.0%} of this run's float32 matmul peak. Only matmuls and "
            "convolutions are counted as FLOPs")
    if dense_share is not None:
        note += (f"; in torch they take {dense_share:.0%} of the encoder's time, the rest is memory-bound "
                 "work (normalisation, activations, softmax, window partitioning, reshapes and copies)")
    return note + (". Small matrices (windowed attention over few tokens, depthwise 3x3 convolutions) also "
                   "run far below the peak of one large square matmul.")


def format_table(report: Mapping[str, object]) -> str:
    """A few lines a person reads after the JSON: what was measured against what target."""
    lines = [f"{report['model']} on {report['device']} ({report['volume']['source']})"]  # type: ignore[index]
    if report.get("random_weights"):
        lines[0] += " - RANDOM WEIGHTS: timings only"
    encoder = report["encoder_ms"]
    lines.append(f"  encoder ms        torch {encoder['torch']}  "  # type: ignore[index]
                 f"onnxruntime {encoder['onnxruntime']}  (engine: {report['engine_backend']})")  # type: ignore[index]
    lines.append(f"  {'target':<30} {'measured':>10}  {'goal':<10} met")
    for name, check in report["targets"].items():  # type: ignore[union-attr]
        lines.append(f"  {name:<30} {check['measured']:>10g}  {check['target']:<10} {'yes' if check['met'] else 'NO'}")
    during = report["click_during_prefetch_ms"]
    lines.append(f"  clicks while neighbours are embedded in the background: p50 {during['p50']} ms, "  # type: ignore[index]
                 f"p95 {during['p95']} ms")  # type: ignore[index]
    lines.append(f"  peak RSS {report['peak_rss_mb']} MB, embedding cache budget {report['cache_budget_mb']} MB")
    if report.get("encoder_peak_note"):
        lines.append(f"  note: {report['encoder_peak_note']}")
    return "\n".join(lines)
