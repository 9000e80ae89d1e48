"""Write a whisper GGML model (f16 or f32) as an openai-whisper ``.pt`` checkpoint, for the bench.

openai-whisper then runs on exactly the weights the other engines run on:

    bench/.work/openai-whisper/bin/python bench/openai_checkpoint.py ggml-base-f16.bin base.pt

whisper.cpp's tensor names are openai's own (its converter kept them), so the mapping is the
identity but for the convolution biases, which whisper.cpp stores as ``(n, 1)`` columns. The
checkpoint is ``{"dims": ..., "model_state_dict": ...}`` as ``whisper.load_model(path)`` reads it;
it is loaded into openai's model (strictly: every name, every shape) before it is written. Needs
torch and openai-whisper, so it runs in the bench's openai-whisper environment.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from whisper.model import ModelDimensions, Whisper

from dattavani.convert.ggml_writer import read_ggml

# whisper.cpp broadcasts these over time as (n, 1); openai's Conv1d biases are (n,).
_COLUMN_BIASES = ("encoder.conv1.bias", "encoder.conv2.bias")


def ggml_to_openai(ggml_path: Path, out_path: Path) -> Path:
    """Write ``ggml_path``'s weights and dimensions as an openai-whisper checkpoint."""
    info = read_ggml(ggml_path)
    dims = ModelDimensions(**asdict(info.hparams))
    state = {}
    for name in info.tensors:
        array = info.load(name)
        if name in _COLUMN_BIASES:
            array = array.reshape(-1)
        state[name] = torch.from_numpy(np.ascontiguousarray(array))
    Whisper(dims).load_state_dict(state, strict=True)  # raises on a missing or odd tensor
    tmp = out_path.with_name(out_path.name + ".tmp")
    torch.save({"dims": asdict(dims), "model_state_dict": state}, tmp)
    os.replace(tmp, out_path)
    return out_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ggml", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    ggml_to_openai(args.ggml, args.out)


if __name__ == "__main__":
    main()
