"""Learned codecs: architecture, ladder files, bitstream format, weights, training."""

from .lean_import import compressai_without_extras

compressai_without_extras()  # before any module below imports compressai
