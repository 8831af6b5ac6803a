"""Retrieval augmentation (Re-AudioLDM): an on-disk index of a sound library and how it is built."""

from tta.retrieval.index import Neighbours, RetrievalIndex

__all__ = ["Neighbours", "RetrievalIndex"]
