"""The interactive-speed targets, checked against a bench report, and its short table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PEAK_FRACTION_TARGET = 0.4

# (name, path in the report, comparison, target value, unit)
TARGETS = (
    ("click-to-mask p95", ("click_to_mask_ms", "p95"), "<=", 50.0, "ms"),
    ("first mask on a fresh slice", ("first_mask_ms",), "<=", 1500.0, "ms"),
    ("propagation vs plain loop", ("propagation", "speedup_vs_plain_loop"), ">=", 2.0, "x"),
    ("encoder share of peak FLOP/s", ("encoder_peak_fraction",), ">=", PEAK_FRACTION_TARGET, ""),
    ("main-thread stall", ("main_thread_stall_ms", "max"), "<=", 50.0, "ms"),
)
# Through the engine service, polled from a GIL-holding main loop as in Slicer (when measured).
SERVICE_TARGETS = (
    ("service click-to-mask p95", ("service", "click_to_mask_ms", "p95"), "<=", 50.0, "ms"),
    ("service first mask", ("service", "first_mask_ms"), "<=", 1500.0, "ms"),
    ("service propagation vs in-process", ("service", "propagation_vs_in_process"), "<=", 1.2, "x"),
    ("service main-thread stall", ("service", "main_thread_stall_ms", "max"), "<=", 50.0, "ms"),
)


def _lookup(report: Mapping[str, object], path: tuple[str, ...]) -> float:
    value: object = report
    for key in path:
        value = value[key]  # type: ignore[index]
    return float(value)  # type: ignore[arg-type]


def check_targets(report: Mapping[str, object]) -> dict[str, dict[str, object]]:
    checked = {}
    for name, path, comparison, target, unit in TARGETS + (SERVICE_TARGETS if "service" in report else ()):
        measured = _lookup(report, path)
        met = measured <= target if comparison == "<=" else measured >= target
        checked[name] = {"target": f"{comparison} {target:g}{unit}", "measured": measured, "met": met}
    return checked


def peak_fraction_note(fraction: float, dense_share: float | None) -> str:
    """Why the encoder is below the FLOP/s target, from where its time goes; empty when it is not."""
    if fraction >= PEAK_FRACTION_TARGET:
        return ""
    note = (
        f"The encoder reaches {fraction:.0%} of this run's float32 matmul peak. Only matmuls and "
        "convolutions are counted as FLOPs"
    )
    if dense_share is not None:
        note += (
            f"; in torch they take {dense_share:.0%} of the encoder's time, the rest is memory-bound "
            "work (normalisation, activations, softmax, window partitioning, reshapes and copies)"
        )
    return note + (
        ". Small matrices (windowed attention over few tokens, depthwise 3x3 convolutions) also "
        "run far below the peak of one large square matmul."
    )


def format_table(report: Mapping[str, Any]) -> str:
    """A few lines a person reads after the JSON: what was measured against what target."""
    lines = [f"{report['model']} on {report['device']} ({report['volume']['source']})"]
    if report.get("random_weights"):
        lines[0] += " - RANDOM WEIGHTS: timings only"
    encoder = report["encoder_ms"]
    lines.append(
        f"  encoder ms        torch {encoder['torch']}  "
        f"onnxruntime {encoder['onnxruntime']}  (engine: {report['engine_backend']})"
    )
    lines.append(f"  {'target':<30} {'measured':>10}  {'goal':<10} met")
    for name, check in report["targets"].items():
        lines.append(f"  {name:<30} {check['measured']:>10g}  {check['target']:<10} {'yes' if check['met'] else 'NO'}")
    during = report["click_during_prefetch_ms"]
    lines.append(
        f"  clicks while neighbours are embedded in the background: p50 {during['p50']} ms, p95 {during['p95']} ms"
    )
    lines.append(f"  peak RSS {report['peak_rss_mb']} MB, embedding cache budget {report['cache_budget_mb']} MB")
    service = report.get("service")
    if isinstance(service, Mapping):
        for name, label in (
            ("service", "engine service, GIL-holding loop"),
            ("in_process", "in-process reference"),
            ("in_process_thread_gil_loop", "old worker thread, GIL-holding loop"),
        ):
            part = service if name == "service" else service[name]
            lines.append(
                f"  {label:<37} click p50/p95 {part['click_to_mask_ms']['p50']}/"
                f"{part['click_to_mask_ms']['p95']} ms, first mask {part['first_mask_ms']} ms, "
                f"{part['propagation_s_per_slice']} s/slice, stall "
                f"{(part['main_thread_stall_ms'] or {}).get('max', '-')} ms"
            )
    if report.get("encoder_peak_note"):
        lines.append(f"  note: {report['encoder_peak_note']}")
    return "\n".join(lines)
