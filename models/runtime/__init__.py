"""The learned codec's decoding runtime: everything a packaged decoder ships of it.

Imports nothing outside this folder but torch, numpy and the standard library (no
CompressAI), so it runs as a top-level ``runtime`` package beside a submission's
``decode.py`` as well as ``models.runtime`` in the project.
"""
