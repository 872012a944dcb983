"""Image encoder speed: both backends side by side, and how close to the machine's peak it runs."""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from ..models import PromptableModel
from .timing import milliseconds, timed

# Square float32 matmul used to measure peak FLOP/s: big enough for full vector units,
# small enough to take well under a second on a laptop CPU.
_PEAK_MATMUL_SIZE = {"cpu": 2048, "cuda": 8192}
_PEAK_REPEATS = 10


@torch.inference_mode()
def encoder_milliseconds(
    models: Mapping[str, PromptableModel], images01: Sequence[np.ndarray], warmup: bool = True
) -> dict[str, float]:
    """Median encoder time per backend over ``images01``, interleaved (torch, onnx, torch, ...)
    so that a change in machine load hits both backends alike."""
    batches = {name: [model.prepare_image(image)[0] for image in images01] for name, model in models.items()}
    if warmup:  # first runs allocate memory arenas and pick kernels
        for name, model in models.items():
            model.encode_tensor(batches[name][0])
    seconds: dict[str, list[float]] = {name: [] for name in models}
    for index in range(len(images01)):
        for name, model in models.items():
            elapsed, _ = timed(functools.partial(model.encode_tensor, batches[name][index]), model.device)
            seconds[name].append(elapsed)
    return {name: milliseconds(values) for name, values in seconds.items()}


@torch.inference_mode()
def encoder_flops(model: PromptableModel) -> int:
    """FLOPs of one encoder call in torch, counted per operator (matmuls, convolutions,
    attention; elementwise operations such as normalisation and GELU are not counted)."""
    image = torch.zeros(1, 3, model.input_size, model.input_size, device=model.device)
    with FlopCounterMode(display=False) as counter:
        model.encode_tensor(image)
    return int(counter.get_total_flops())


@torch.inference_mode()
def peak_flops_per_second(device: torch.device, repeats: int = _PEAK_REPEATS) -> float:
    """The best float32 matmul throughput of torch in this run on ``device``: the practical peak.
    The best of many short runs, so a moment of competition from other programs does not count."""
    size = _PEAK_MATMUL_SIZE["cuda" if device.type == "cuda" else "cpu"]
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    torch.matmul(a, b)  # warm-up
    best = min(timed(lambda: torch.matmul(a, b), device)[0] for _ in range(repeats))
    return 2.0 * size**3 / best


def onnxruntime_peak_flops_per_second(repeats: int = _PEAK_REPEATS) -> float:
    """The same on the CPU with ONNX Runtime's own matmul kernels, which run the ONNX encoder
    (they can beat torch's on some CPUs, so the peak is the better of the two)."""
    import onnx
    import onnxruntime as ort

    from ..backends.runtime import CPU_PROVIDER, session_options

    square = [_PEAK_MATMUL_SIZE["cpu"]] * 2
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["a", "b"], ["c"])],
        "matmul",
        [onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, square) for name in "ab"],
        [onnx.helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, square)],
    )
    # IR version 8 (opset 17's): readable by every onnxruntime the backend supports.
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), session_options(), providers=[CPU_PROVIDER])
    rng = np.random.default_rng(0)
    feeds = {name: rng.random(square, dtype=np.float32) for name in "ab"}
    session.run(None, feeds)  # warm-up
    best = min(timed(lambda: session.run(None, feeds), torch.device("cpu"))[0] for _ in range(repeats))
    return 2.0 * square[0] ** 3 / best


# aten operator names (as the dispatcher sees them in inference mode) doing matmul-like work.
_DENSE_OPERATORS = ("conv", "linear", "mm", "matmul", "einsum", "attention")


class _OperatorTimer(TorchDispatchMode):
    """Wall time per aten operator; exact on the CPU, where every operator runs synchronously."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[object, float] = defaultdict(float)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        started = time.perf_counter()
        result = func(*args, **(kwargs or {}))
        self.seconds[func.overloadpacket] += time.perf_counter() - started
        return result


@torch.inference_mode()
def dense_time_share(model: PromptableModel) -> float:
    """Share of a torch encoder call (CPU) spent in matmuls, convolutions and attention, the
    operators whose FLOPs are counted and that can approach peak FLOP/s. The rest
    (normalisation, activations, softmax, reshapes, copies) moves memory for no counted FLOPs."""
    image = torch.zeros(1, 3, model.input_size, model.input_size, device=model.device)
    model.encode_tensor(image)  # warm-up, not timed
    with _OperatorTimer() as timer:
        model.encode_tensor(image)
    total = sum(timer.seconds.values())
    dense = sum(seconds for op, seconds in timer.seconds.items() if any(k in str(op) for k in _DENSE_OPERATORS))
    return dense / total if total else 0.0
