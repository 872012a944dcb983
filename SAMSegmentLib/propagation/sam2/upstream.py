"""The one module that touches sam2's private API: its inference state and the private methods
of its video predictor. Everything else in SAMSegment uses sam2's public API or this module.

Written against sam2 1.1.0 (``SUPPORTED_SAM2``, pinned in pyproject.toml); loading a SAM 2 model
checks the installed version first (``check_sam2_version``), because sam2's later updates rename
exactly the state keys and methods used here. tests/test_sam2_frames.py,
test_sam2_memory_policy.py and test_sam2_corrections.py fail if their names or arguments change.

``VolumeVideoPredictor`` is built by Hydra in place of ``SAM2VideoPredictor`` (see
``loading.py``) and keeps all of upstream's state handling. It adds:

* the predicted IoU of every slice's mask, stored in the slice's output dict under
  ``PREDICTED_IOU_KEY`` (upstream computes it and then drops it), for scores and the bank;
* a count of image-encoder runs (``encoded_frames``);
* a hook on the memory selection step: when an object's output dict carries a
  ``SelfSortingMemoryBank`` under ``MEMORY_BANK_KEY``, memory attention is given the bank's
  resampled memories instead of the most recent slices (see ``_with_bank_memories``).
"""

from __future__ import annotations

from collections import OrderedDict
from importlib import metadata
from typing import Any

import torch
import torch.nn.functional as F
from sam2.sam2_video_predictor import SAM2VideoPredictor

from ...errors import ModelUnavailableError
from .frames import VolumeFrames
from .memory_bank import IMAGE_KEY, MEMORY_BANK_KEY, PREDICTED_IOU_KEY, SelfSortingMemoryBank, unit_vector

SUPPORTED_SAM2 = "1.1.0"

# An inference state: the dict sam2's init_state makes, read and written by its video predictor.
InferenceState = dict[str, Any]


def check_sam2_version() -> None:
    """Refuse a sam2 other than the one this module was written against, with what to install."""
    installed = metadata.version("sam2")
    if installed != SUPPORTED_SAM2:
        raise ModelUnavailableError(
            f"SAMSegment's SAM 2 support needs sam2 {SUPPORTED_SAM2}, but sam2 {installed} is installed: its "
            f"inference state differs. Install sam2=={SUPPORTED_SAM2} (see the README)."
        )


class UpstreamState:
    """sam2's inference state over a volume's slices, and the reads of it SAMSegment needs.

    ``state`` is the dict that sam2 1.1.0's ``init_state`` fills (tests compare the two), with
    the frames from the volume instead of files; sam2's public methods take it. Unlike
    ``init_state`` it does not encode slice 0 up front: the first prompt encodes its slice.
    """

    def __init__(self, frames: VolumeFrames, device: torch.device) -> None:
        height, width = frames.slice_shape
        self.state: InferenceState = {
            "images": frames,
            "num_frames": len(frames),
            # Frames are made on the CPU on demand; upstream moves each to the device when used.
            "offload_video_to_cpu": True,
            "offload_state_to_cpu": False,
            "video_height": height,
            "video_width": width,
            "device": device,
            "storage_device": device,
            "point_inputs_per_obj": {},
            "mask_inputs_per_obj": {},
            "cached_features": {},
            "constants": {},
            "obj_id_to_idx": OrderedDict(),
            "obj_idx_to_id": OrderedDict(),
            "obj_ids": [],
            "output_dict_per_obj": {},
            "temp_output_dict_per_obj": {},
            "frames_tracked_per_obj": {},
        }

    def object_ids(self) -> list[str]:
        return list(self.state["obj_ids"])

    def object_index(self, predictor: SAM2VideoPredictor, object_id: str) -> int:
        """The index upstream keeps ``object_id`` under, added to the state if new."""
        return int(predictor._obj_id_to_idx(self.state, object_id))

    def object_outputs(self, index: int) -> dict[str, Any]:
        """The stored outputs of the object at ``index``: ``cond_frame_outputs`` (prompted slices)
        and ``non_cond_frame_outputs`` (propagated ones), by slice; SAMSegment adds its memory bank here."""
        return self.state["output_dict_per_obj"][index]

    def prompted_output(self, index: int, frame: int) -> dict[str, Any]:
        """The output of the object at ``index`` on prompted slice ``frame``, before a propagation stores it."""
        return self.state["temp_output_dict_per_obj"][index]["cond_frame_outputs"][frame]

    def frame_output(self, object_id: str, frame: int) -> dict[str, Any] | None:
        """The stored output (mask logits, memory, scores) of ``object_id`` on slice ``frame``, if any."""
        outputs = self.object_outputs(self.state["obj_id_to_idx"][object_id])
        return outputs["cond_frame_outputs"].get(frame, outputs["non_cond_frame_outputs"].get(frame))


# Image embeddings are pooled to this grid before comparing slices: enough to tell where
# bright and dark structures are, small enough to keep one vector per slice in memory.
IMAGE_KEY_GRID = 8


def image_key(features: torch.Tensor) -> torch.Tensor:
    """Unit vector describing a slice from its top-level image features [1, C, H, W]."""
    return unit_vector(F.adaptive_avg_pool2d(features[:1].float(), IMAGE_KEY_GRID))


class VolumeVideoPredictor(SAM2VideoPredictor):
    """Upstream's video predictor plus per-slice IoU, an encoder counter and the memory-bank hook."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoded_frames = 0
        self._last_predicted_iou: torch.Tensor | None = None

    def forward_image(self, img_batch: torch.Tensor) -> dict[str, Any]:
        self.encoded_frames += int(img_batch.shape[0])
        return super().forward_image(img_batch)

    def _track_step(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        current_out, sam_outputs, high_res_features, pix_feat = super()._track_step(*args, **kwargs)
        ious = sam_outputs[2]  # [objects, candidates]; SAM 2 keeps the best-scored candidate
        self._last_predicted_iou = ious.detach().float().max(dim=-1).values
        return current_out, sam_outputs, high_res_features, pix_feat

    def _run_single_frame_inference(
        self, inference_state: dict, output_dict: dict, frame_idx: int, **kwargs: Any
    ) -> tuple[dict, torch.Tensor]:
        # Upstream keeps a compact copy of the track_step output; the IoU it computed on the
        # way (in _track_step above, which this call runs exactly once) is added back here.
        compact_out, pred_masks = super()._run_single_frame_inference(
            inference_state=inference_state, output_dict=output_dict, frame_idx=frame_idx, **kwargs
        )
        compact_out[PREDICTED_IOU_KEY] = self._last_predicted_iou
        if MEMORY_BANK_KEY in output_dict:
            _, backbone_out = inference_state["cached_features"][frame_idx]
            compact_out[IMAGE_KEY] = image_key(backbone_out["backbone_fpn"][-1])
        return compact_out, pred_masks

    def _prepare_memory_conditioned_features(
        self,
        frame_idx: int,
        is_init_cond_frame: bool,
        current_vision_feats: list[torch.Tensor],
        current_vision_pos_embeds: list[torch.Tensor],
        feat_sizes: list[tuple[int, int]],
        output_dict: dict,
        num_frames: int,
        track_in_reverse: bool = False,
    ) -> torch.Tensor:
        bank = output_dict.get(MEMORY_BANK_KEY)
        if bank is not None and not is_init_cond_frame and self.num_maskmem > 0:
            output_dict = self._with_bank_memories(
                bank, output_dict, frame_idx, current_vision_feats[-1], feat_sizes[-1], track_in_reverse
            )
        return super()._prepare_memory_conditioned_features(
            frame_idx=frame_idx,
            is_init_cond_frame=is_init_cond_frame,
            current_vision_feats=current_vision_feats,
            current_vision_pos_embeds=current_vision_pos_embeds,
            feat_sizes=feat_sizes,
            output_dict=output_dict,
            num_frames=num_frames,
            track_in_reverse=track_in_reverse,
        )

    def _with_bank_memories(
        self,
        bank: SelfSortingMemoryBank,
        output_dict: dict,
        frame_idx: int,
        features: torch.Tensor,
        size: tuple[int, int],
        reverse: bool,
    ) -> dict:
        """A view of ``output_dict`` whose non-prompted outputs are the bank's chosen memories.

        Upstream reads the memory of the slice ``t`` steps back from position ``t`` (1 to
        ``num_maskmem - 1``, with ``memory_temporal_stride_for_eval`` 1, which the session
        checks). Placing the chosen memories there, most similar nearest, reuses upstream's
        attention code unchanged. Object pointers are read from the same positions, so they
        follow the same choice. The prompted slices are passed through untouched.
        """
        bank.update(output_dict["non_cond_frame_outputs"])
        height, width = size
        current = features.permute(1, 2, 0).reshape(-1, features.shape[-1], height, width)
        chosen = bank.select(image_key(current), self.num_maskmem - 1, exclude_index=frame_idx)
        back = 1 if reverse else -1  # the direction the walk came from
        return {
            "cond_frame_outputs": output_dict["cond_frame_outputs"],
            "non_cond_frame_outputs": {frame_idx + back * t: m.output for t, m in enumerate(chosen, start=1)},
        }
