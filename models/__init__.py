"""Learned codecs: architecture, ladder files, bitstream format, weights, training."""

import warnings

# torchvision (imported by compressai) warns about its own use of torch.jit.script.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
