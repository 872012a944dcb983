"""MRML glue between Slicer's Segment Editor and the SAMSegment engine.

Plain Python on top of ``slicer`` MRML/VTK classes: every function takes the scene, nodes or
logics it works on as arguments (no ``slicer.app``, no Qt), so it runs headless with the
slicer-core wheel as well as inside Slicer. Nothing here imports torch.
"""
