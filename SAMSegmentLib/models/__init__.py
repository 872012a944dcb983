"""Promptable 2D models behind one interface."""

from .base import Decoded, ImageEmbedding, PromptableModel
from .factory import build_network, load_model, wrap_network

__all__ = ["Decoded", "ImageEmbedding", "PromptableModel", "build_network", "load_model", "wrap_network"]
