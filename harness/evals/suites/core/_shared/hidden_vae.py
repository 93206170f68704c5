"""Hidden grader test for the TinyVid VAE: stricter than the packet's parity test.

Never shown to the agent. It loads the port through the production loader from the
converted weights and compares with the official reference on other seeds and shapes
(batch > 1, even and odd sizes, several frames), including the posterior std, a seeded
posterior sample and an encode/decode round trip, at a tighter tolerance.
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
CONVERTED = REPO / "converted_weights" / "tinyvid" / "vae"
TOL = 2e-5
CASES = [  # (seed, video shape [B, C, T, H, W])
    (11, (2, 3, 2, 10, 12)),
    (23, (1, 3, 3, 11, 5)),
    (37, (2, 3, 1, 7, 9)),
]


def _official():
    sys.path.insert(0, str(OFFICIAL))
    return importlib.import_module("tinyvid_official.factory").build_vae().float().eval()


def _native():
    from fastvideo.models.loader import load_component

    return load_component(CONVERTED, device="cpu", dtype=torch.float32)


def _close(name: str, got: torch.Tensor, ref: torch.Tensor) -> None:
    assert got.shape == ref.shape, f"{name}: shape {tuple(got.shape)} != {tuple(ref.shape)}"
    print(f"{name}_max_abs={(got.float() - ref.float()).abs().max().item():.3e}")
    assert_close(got.float(), ref.float(), atol=TOL, rtol=TOL, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("seed,shape", CASES)
def test_hidden_vae(seed: int, shape: tuple[int, ...]) -> None:
    official, native = _official(), _native()
    gen = torch.Generator().manual_seed(seed)
    video = torch.randn(*shape, generator=gen)
    b, _, t, h, w = shape
    latents = torch.randn(b, 4, t, (h + 1) // 2, (w + 1) // 2, generator=gen)
    with torch.no_grad():
        ref_post, got_post = official.encode(video), native.encode(video)
        _close("mean", got_post.mean, ref_post.mean)
        _close("logvar", got_post.logvar, ref_post.logvar)
        _close("std", got_post.std, ref_post.std)
        _close("latents", native.encode_latents(video), official.encode_latents(video))
        # A sample drawn with the same explicit generator must match too.
        sampled = [m.encode(video).sample(torch.Generator().manual_seed(seed)) for m in (native, official)]
        _close("posterior_sample", *sampled)
        _close("decoded", native.decode_latents(latents, h, w), official.decode_latents(latents, h, w))
        roundtrip = [m.decode_latents(m.encode_latents(video), h, w) for m in (native, official)]
        _close("roundtrip", *roundtrip)
