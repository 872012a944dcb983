"""``samsegment bench``: every measurement of one model on one volume, side by side in one run."""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from ..backends import onnxruntime_available, open_backend
from ..cache import DEFAULT_BUDGET_BYTES
from ..intensity import AUTO_PRESET, IntensityMapping, mapping_for
from ..models import PromptableModel
from ..predictor import VolumePredictor
from ..propagation import StopRule
from ..worker import WorkerSettings
from . import memory
from .cases import BenchCase
from .clicks import click_seconds, first_mask_seconds, jittered_prompts, takes_points
from .encoder import (
    dense_time_share,
    encoder_flops,
    encoder_milliseconds,
    onnxruntime_peak_flops_per_second,
    peak_flops_per_second,
)
from .machine import describe_machine, load_average
from .prefetch_clicks import clicks_during_prefetch_seconds
from .propagation import OBJECT_ID, engine_propagation, mean_dice, plain_loop, slice_range
from .service import ServiceBenchSettings, service_section
from .targets import check_targets, peak_fraction_note
from .timing import milliseconds

if TYPE_CHECKING:  # onnxruntime is optional: the bench then times torch alone
    from ..backends.onnx_model import OnnxPromptableModel as OnnxModel

TORCH, ONNXRUNTIME = "torch", "onnxruntime"
logger = logging.getLogger(__name__)


@dataclass
class BenchSettings:
    encoder_slices: int = 5  # slices timed per backend for the encoder
    clicks: int = 40  # prompts timed per backend on an embedded slice
    prefetch_clicks: int = 16  # prompts timed through the worker while it embeds neighbours
    first_mask_slices: int = 3
    propagation_slices: int = 30
    cache_budget_bytes: int = DEFAULT_BUDGET_BYTES  # the worker's embedding cache
    backend: str = "auto"  # the engine's backend, as open_backend chooses it
    intensity: str = AUTO_PRESET
    stop_rule: StopRule = field(default_factory=StopRule)
    random_weights: bool = False  # recorded: timings only, masks meaningless
    service: bool = True  # also measure through the engine service (not with random weights)
    checkpoint: Path | None = None  # the weights the engine service loads (None: the checkpoint store's)
    graph_root: Path | None = None  # exported ONNX graphs; None: the checkpoint cache's onnx folder


def run_bench(
    torch_model: PromptableModel, case: BenchCase, settings: BenchSettings, baseline_rss_mb: float | None = None
) -> dict[str, object]:
    """Measure ``torch_model`` and its ONNX Runtime twin on ``case``; returns the JSON report.

    ``baseline_rss_mb`` is the process's memory before the model and volume were loaded.
    """
    device = torch_model.device
    load_before = load_average()
    started = time.perf_counter()
    engine_model, onnx_model, onnx_open_s = _backends(torch_model, settings.backend, settings.graph_root)
    models = {TORCH: torch_model, **({ONNXRUNTIME: onnx_model} if onnx_model is not None else {})}
    engine_name = ONNXRUNTIME if engine_model is onnx_model else TORCH
    intensity = mapping_for(case.volume, settings.intensity)
    report: dict[str, object] = {
        "date": datetime.date.today().isoformat(),
        "machine": describe_machine(device),
        "load_average_before": load_before,
        "model": torch_model.spec.name,
        "random_weights": settings.random_weights,
        "device": str(device),
        "engine_backend": engine_name,
        "onnxruntime_device": str(onnx_model.execution_device) if onnx_model is not None else None,
        "onnx_open_s": onnx_open_s,
        "volume": {
            "source": case.description,
            "shape_kji": list(case.volume.array.shape),
            "axis": case.axis.value,
            "seed_index": case.seed_index,
            "intensity": intensity.preset,
        },
    }
    report.update(_encoder_section(models, engine_name, case, intensity, settings))
    report.update(_click_section(models, engine_name, case, intensity, settings))
    report["click_during_prefetch_ms"] = _prefetch_click_section(
        models[engine_name],
        case,
        intensity,
        settings,
        report["encoder_ms"][engine_name],  # type: ignore[index]
    )
    propagation, cache_used_bytes = _propagation_section(engine_model, torch_model, case, intensity, settings)
    report.update(propagation)
    if settings.service and not settings.random_weights:
        report["service"] = service_section(
            case,
            intensity,
            ServiceBenchSettings(
                model=torch_model.spec.name,
                device=str(device),
                backend=settings.backend,
                checkpoint=settings.checkpoint,
                clicks=settings.clicks,
                fresh_slices=settings.first_mask_slices,
                propagation_slices=settings.propagation_slices,
                stop_rule=settings.stop_rule,
            ),
            engine_model,
        )
    report["peak_rss_mb"] = memory.peak_rss_mb()
    report["memory_mb"] = {
        "baseline_rss": baseline_rss_mb,
        "volume": round(case.volume.array.nbytes / memory.MB, 1),
        "torch_model": memory.module_mb(torch_model.network),
        "cache_budget": round(settings.cache_budget_bytes / memory.MB, 1),
        "cache_used": round(cache_used_bytes / memory.MB, 1),
        "gpu_peak_torch": memory.gpu_peak_mb(device),
    }
    report["cache_budget_mb"] = round(settings.cache_budget_bytes / memory.MB, 1)
    report["bench_s"] = round(time.perf_counter() - started, 1)
    report["load_average_after"] = load_average()
    report["targets"] = check_targets(report)
    return report


def _encoder_section(
    models: dict[str, PromptableModel],
    engine_name: str,
    case: BenchCase,
    intensity: IntensityMapping,
    settings: BenchSettings,
) -> dict[str, object]:
    torch_model = models[TORCH]
    count = case.volume.slice_count(case.axis)
    images = [
        intensity.apply(case.volume.slice_2d(case.axis, (case.seed_index + 1 + i) % count))
        for i in range(settings.encoder_slices)
    ]
    encoder_ms = encoder_milliseconds(models, images)
    flops = encoder_flops(torch_model)
    peaks = {TORCH: peak_flops_per_second(torch_model.device)}
    if ONNXRUNTIME in models and models[ONNXRUNTIME].execution_device.type == "cpu":  # type: ignore[attr-defined]
        peaks[ONNXRUNTIME] = onnxruntime_peak_flops_per_second()
    peak = max(peaks.values())
    fraction = flops / (encoder_ms[engine_name] / 1000.0) / peak
    dense_share = dense_time_share(torch_model) if torch_model.device.type == "cpu" else None
    return {
        "encoder_ms": {TORCH: encoder_ms[TORCH], ONNXRUNTIME: encoder_ms.get(ONNXRUNTIME)},
        "encoder_gflop": round(flops / 1e9, 2),
        "peak_gflops": round(peak / 1e9, 1),
        "peak_gflops_by_library": {name: round(value / 1e9, 1) for name, value in peaks.items()},
        "encoder_peak_fraction": round(fraction, 3),
        "encoder_dense_time_share_torch": None if dense_share is None else round(dense_share, 3),
        "encoder_peak_note": peak_fraction_note(fraction, dense_share),
    }


def _click_section(
    models: dict[str, PromptableModel],
    engine_name: str,
    case: BenchCase,
    intensity: IntensityMapping,
    settings: BenchSettings,
) -> dict[str, object]:
    predictors = {name: VolumePredictor(model) for name, model in models.items()}
    for predictor in predictors.values():
        predictor.set_volume(case.volume, intensity, volume_key="bench")
    points = takes_points(predictors[TORCH])
    prompts_list = jittered_prompts(case.box, case.volume.slice_shape(case.axis), points, settings.clicks)
    seconds = click_seconds(predictors, case.axis, case.seed_index, prompts_list)
    clicks_ms = {
        name: {"p50": milliseconds(values, 50), "p95": milliseconds(values, 95)} for name, values in seconds.items()
    }
    count = case.volume.slice_count(case.axis)
    fresh = [i % count for i in range(case.seed_index + 1, case.seed_index + 1 + settings.first_mask_slices)]
    first_mask = first_mask_seconds(predictors[engine_name], case.axis, fresh, case.box)
    return {
        "click_to_mask_ms": {**clicks_ms[engine_name], "backend": engine_name, "clicks": settings.clicks},
        "click_to_mask_ms_by_backend": clicks_ms,
        "first_mask_ms": milliseconds(first_mask, 50),
    }


def _prefetch_click_section(
    engine_model: PromptableModel,
    case: BenchCase,
    intensity: IntensityMapping,
    settings: BenchSettings,
    encoder_ms: float,
) -> dict[str, object]:
    worker_settings = WorkerSettings(cache_budget_bytes=settings.cache_budget_bytes)
    seconds = clicks_during_prefetch_seconds(
        engine_model, case, intensity, settings.prefetch_clicks, encoder_ms / 1000.0, worker_settings
    )
    return {
        "p50": milliseconds(seconds, 50),
        "p95": milliseconds(seconds, 95),
        "clicks": len(seconds),
        "how": "through the inference worker, while it embeds neighbouring slices in the background",
    }


def _propagation_section(
    engine_model: PromptableModel,
    torch_model: PromptableModel,
    case: BenchCase,
    intensity: IntensityMapping,
    settings: BenchSettings,
) -> tuple[dict[str, object], int]:
    """(report section, most bytes the engine's embedding cache held).

    The engine runs before and after the plain loop (A-B-A), so a change in machine load
    during the minutes this takes weighs on both alike."""
    slices = slice_range(case, settings.propagation_slices)
    worker_settings = WorkerSettings(cache_budget_bytes=settings.cache_budget_bytes)
    runs = [engine_propagation(engine_model, case, intensity, slices, settings.stop_rule, worker_settings)]
    order = runs[0].order or [case.seed_index]  # the seed alone when the model found nothing to carry
    plain_s, plain_masks = plain_loop(torch_model, case, intensity, order)
    runs.append(engine_propagation(engine_model, case, intensity, slices, settings.stop_rule, worker_settings))
    engine_per_slice = [run.seconds / len(order) for run in runs]
    engine_mean = sum(engine_per_slice) / len(engine_per_slice)
    plain_per_slice = plain_s / len(order)
    stalls = [run.stall for run in runs]
    return {
        "propagation": {
            "slices": len(order),
            "slice_range": list(slices),
            "engine_s_per_slice": round(engine_mean, 3),
            "engine_runs_s_per_slice": [round(value, 3) for value in engine_per_slice],
            "plain_loop_s_per_slice": round(plain_per_slice, 3),
            "speedup_vs_plain_loop": round(plain_per_slice / engine_mean, 2),
            "engine": f"inference worker, {'onnxruntime' if engine_model is not torch_model else 'torch'}, "
            f"MaskCarryPropagation, prefetch of {worker_settings.prefetch_slices} neighbours when idle",
            "plain_loop": "torch, embed every slice (no cache, nothing ahead), box of the previous mask",
            "mean_dice_engine_vs_plain": round(mean_dice(runs[0].result, case, plain_masks), 3),
            "stops": [f"{stop.direction}: {stop.reason}" for stop in runs[0].result.objects[OBJECT_ID].stops],
        },
        "main_thread_stall_ms": {
            "max": max(stall.longest_stall_ms for stall in stalls),
            "gap_p95": max(stall.gap_p95_ms for stall in stalls),
            "period": stalls[0].period_ms,
            "ticks": sum(stall.ticks for stall in stalls),
        },
    }, max(run.cache_bytes for run in runs)


def _backends(
    torch_model: PromptableModel, backend: str, graph_root: Path | None
) -> tuple[PromptableModel, OnnxModel | None, float | None]:
    """(engine model, ONNX Runtime model or None, seconds to export or load the graphs)."""
    started = time.perf_counter()
    engine = open_backend(torch_model, backend, graph_root)
    if engine is not torch_model:
        return engine, cast("OnnxModel", engine), round(time.perf_counter() - started, 1)
    if not onnxruntime_available():
        return engine, None, None
    if torch_model.device.type != "cpu":
        # A GPU without onnxruntime-gpu: the engine runs torch there, and an ONNX Runtime twin
        # would run on the CPU, which says nothing about this GPU; the report times torch alone.
        logger.warning("ONNX Runtime cannot use %s here; only torch is timed.", torch_model.device)
        return engine, None, None
    onnx_model = open_backend(torch_model, ONNXRUNTIME, graph_root)
    return engine, cast("OnnxModel", onnx_model), round(time.perf_counter() - started, 1)
