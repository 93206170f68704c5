"""Hidden grader test for the TinyVid text encoder: stricter than the packet's parity test.

Never shown to the agent. It loads the port through the production loader and compares
with the official reference on other seeds, a batch of three prompts with different
padding lengths (one unpadded, one a single token), every hidden state and the prompt
embedding, at a tighter tolerance.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

REPO = Path(__file__).resolve().parents[3]
OFFICIAL = Path(os.environ.get("OFFICIAL_REF_DIR") or REPO.parent / "official")
CONVERTED = REPO / "converted_weights" / "tinyvid" / "text_encoder"
TOL = 2e-5


def _official():
    sys.path.insert(0, str(OFFICIAL))
    return importlib.import_module("tinyvid_official.factory").build_text_encoder().float().eval()


def _native():
    from fastvideo.models.loader import load_component

    return load_component(CONVERTED, device="cpu", dtype=torch.float32)


def _close(name: str, got: torch.Tensor, ref: torch.Tensor) -> None:
    assert got.shape == ref.shape, f"{name}: shape {tuple(got.shape)} != {tuple(ref.shape)}"
    print(f"{name}_max_abs={(got.float() - ref.float()).abs().max().item():.3e}")
    assert_close(got.float(), ref.float(), atol=TOL, rtol=TOL, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("seed,lengths", [(5, (16, 3, 1)), (19, (12, 16, 9))])
def test_hidden_text_encoder(seed: int, lengths: tuple[int, ...]) -> None:
    official, native = _official(), _native()
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 64, (len(lengths), 16), generator=gen)
    mask = torch.zeros(len(lengths), 16, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
        ids[row, n:] = 0
    with torch.no_grad():
        ref, got = official(ids, mask), native(ids, mask)
    _close("prompt_embeds", got.last_hidden_state, ref.prompt_embeds)
    assert got.hidden_states is not None and len(got.hidden_states) == len(ref.hidden_states)
    for i, (g, r) in enumerate(zip(got.hidden_states, ref.hidden_states)):
        _close(f"hidden_states_{i}", g, r)
