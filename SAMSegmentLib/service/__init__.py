"""The engine service: the engine in its own process, behind the protocol of ``SAMSegmentLib.protocol``.

``engine`` and ``http_server`` run in that process (they import torch); ``launcher`` starts it
from Slicer or a test and imports no torch.
"""
