#!/usr/bin/env python3
"""Runs ../shared/bench/torch_reference.py on the GPU, unchanged.

The reference is written for the CPU; here every tensor it makes (and every
array it loads) lands on CUDA instead, so the same model, data and timing
code measure PyTorch on the same GPU as gru-imdb. Usage:

    python benches/torch_cuda.py path/to/torch_reference.py [its arguments]
"""
import runpy
import sys

import torch

torch.set_default_device("cuda")
_from_numpy = torch.from_numpy
torch.from_numpy = lambda a: _from_numpy(a).to("cuda")

reference = sys.argv[1]
sys.argv = [reference] + sys.argv[2:]
runpy.run_path(reference, run_name="__main__")
