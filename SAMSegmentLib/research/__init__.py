"""Published uses of Segment Anything in medical imaging, built on the engine.

- ``finetune``: fine-tune the mask decoder on labelled volumes (as in abdominal CT with SAM / HQ-SAM).
- ``prior_maps``: SAM segmentation and boundary prior maps as extra input channels (SAMAug).
- ``everything``: automatic segmentation of every structure on a slice or slab.
- ``registration``: multimodal registration guided by the same structure segmented in both images.

``automatic`` holds the prompt grid and mask scoring shared by the prior maps and "everything".
"""
