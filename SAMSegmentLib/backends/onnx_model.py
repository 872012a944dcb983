"""A promptable model whose image encoder and mask decoder run in ONNX Runtime.

Image preparation, prompt encoding and mask upsampling stay with the wrapped torch model:
they are cheap, and sharing them keeps both backends' prompts and masks identical.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from ..cancel import CancelToken
from ..errors import CancelledError, InferenceOutOfMemoryError
from ..models.base import ImageEmbedding, PromptableModel
from .export import default_graph_root, discard_graph, ensure_graph, graph_path, open_graph_cache
from .graphs import GraphDefinition, decoder_graph, encoder_graph, example_features, example_image
from .runtime import create_session, session_device

logger = logging.getLogger(__name__)

_UNLOADABLE = (ort_errors.InvalidProtobuf, ort_errors.InvalidGraph, ort_errors.NoSuchFile, ort_errors.Fail)
# run_with_iobinding reports failures as a plain RuntimeError ("Error in execution: ...").
_RUN_ERRORS = (RuntimeError, ort_errors.RuntimeException, ort_errors.Fail)
_OUT_OF_MEMORY_TEXT = ("failed to allocate memory", "out of memory")


class _Graph:
    """One ONNX Runtime session run on torch tensors: inputs are bound without a copy (I/O
    binding), outputs come back as CPU tensors (then moved to the session's device).

    The outputs are allocated by ONNX Runtime because the exporter leaves some of their
    sizes symbolic; they are small next to the inputs (a few MB per slice).
    """

    def __init__(self, session: ort.InferenceSession, requested: torch.device) -> None:
        self.session = session
        self.device = session_device(session, requested)
        self.input_names = [node.name for node in session.get_inputs()]
        self.output_names = [node.name for node in session.get_outputs()]

    def run(self, inputs: Sequence[torch.Tensor], options: ort.RunOptions | None = None) -> list[torch.Tensor]:
        binding = self.session.io_binding()
        device_type, device_id = self.device.type, self.device.index or 0
        kept = [tensor.to(self.device, torch.float32).contiguous() for tensor in inputs]  # alive during the run
        for name, tensor in zip(self.input_names, kept):
            binding.bind_input(name, device_type, device_id, np.float32, tuple(tensor.shape), tensor.data_ptr())
        for name in self.output_names:
            binding.bind_output(name, device_type, device_id)
        if device_type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()  # ONNX Runtime reads on its own stream
        try:
            self.session.run_with_iobinding(binding, options)
        except _RUN_ERRORS as error:
            if options is not None and options.terminate:
                raise CancelledError("Embedding the slice was interrupted by a newer request.") from error
            if any(text in str(error).lower() for text in _OUT_OF_MEMORY_TEXT):
                detail = f"ONNX Runtime: {str(error).splitlines()[0]}"
                raise InferenceOutOfMemoryError.on(device_type, detail) from error
            raise
        return [torch.from_numpy(array).to(self.device) for array in binding.copy_outputs_to_cpu()]


class OnnxPromptableModel(PromptableModel):
    """Wraps a torch PromptableModel; exports its graphs on first use into ``graph_root``.

    ``graph_root`` defaults to ``<checkpoint cache>/onnx``. Exporting takes seconds for
    LiteMedSAM and minutes for SAM ViT-H; later sessions load the cached graphs.
    """

    def __init__(self, torch_model: PromptableModel, graph_root: Path | None = None) -> None:
        super().__init__(torch_model.spec, torch_model.network, torch_model.device)
        self.torch_model = torch_model
        # What the encoder was trained on is the torch model's: its normalisation (below) and this.
        self.native_size_smoothing = torch_model.native_size_smoothing
        self.graph_folder = open_graph_cache(
            graph_root if graph_root is not None else default_graph_root(), torch_model
        )
        self._encoder = self._open("encoder", self._encoder_definition)
        self._encoder_options: ort.RunOptions | None = None  # set inside interruptible()
        self.feature_names = tuple(self._encoder.output_names)
        multimask_flags = (False, True) if self.spec.multimask else (False,)
        self._decoders = {
            flag: self._open(
                "decoder_multimask" if flag else "decoder", functools.partial(self._decoder_definition, flag)
            )
            for flag in multimask_flags
        }

    @property
    def execution_device(self) -> torch.device:
        """Where ONNX Runtime runs: the GPU only if its CUDA provider is active."""
        return self._encoder.device

    # ----- graphs -----
    def _open(self, name: str, definition: Callable[[], GraphDefinition]) -> _Graph:
        path = graph_path(self.graph_folder, name)
        if path.is_file():
            try:
                return _Graph(create_session(path, self.device), self.device)
            except _UNLOADABLE as error:
                logger.warning("The cached graph %s cannot be loaded (%s); exporting it again.", path, error)
                discard_graph(self.graph_folder, name)
        logger.info("Exporting the %s of %s to ONNX (once per model and version)", name, self.spec.name)
        return _Graph(create_session(ensure_graph(self.graph_folder, definition()), self.device), self.device)

    def _encoder_definition(self) -> GraphDefinition:
        return encoder_graph(self.torch_model, tuple(example_features(self.torch_model)))

    def _decoder_definition(self, multimask: bool) -> GraphDefinition:
        # Features from the exported encoder: same names and shapes, without a torch encoder run;
        # on the torch model's device, where the decoder is traced (ONNX Runtime may run elsewhere).
        outputs = self._encoder.run([example_image(self.torch_model)])
        features = {name: value.to(self.device) for name, value in zip(self.feature_names, outputs)}
        return decoder_graph(self.torch_model, features, multimask)

    # ----- PromptableModel -----
    @contextmanager
    def interruptible(self, cancel: CancelToken) -> Iterator[None]:
        """Cancelling sets ONNX Runtime's terminate flag: the encoder run stops within one operator."""
        options = ort.RunOptions()
        self._encoder_options = options
        try:
            with cancel.stopping_with(lambda: setattr(options, "terminate", True)):
                yield
        finally:
            self._encoder_options = None

    def normalise(self, image01: torch.Tensor) -> torch.Tensor:
        return self.torch_model.normalise(image01)

    def encode_tensor(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        # The encoder graph takes one image (see graphs.encoder_graph); a batch is run image by image.
        runs = [self._encoder.run([image[None]], self._encoder_options) for image in batch]
        if len(runs) == 1:
            return dict(zip(self.feature_names, runs[0]))
        return {name: torch.cat([run[i] for run in runs]) for i, name in enumerate(self.feature_names)}

    def run_mask_decoder(
        self, embedding: ImageEmbedding, sparse: torch.Tensor, dense: torch.Tensor, multimask: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        features = [embedding.features[name] for name in self.feature_names]
        logits, scores = self._decoders[multimask].run([*features, sparse, dense])
        return logits, scores
