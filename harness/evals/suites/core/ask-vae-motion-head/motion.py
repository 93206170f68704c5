"""The motion-field head of the TinyVid VAE, used by the video model's motion conditioning.

`warp_field` is a fused kernel from the closed-source `tinyvid_private_ops` package.
"""

from __future__ import annotations

import torch

from tinyvid_official.vae import DiagonalGaussian, TinyKLVAE


def encode_with_motion(vae: TinyKLVAE, video: torch.Tensor) -> tuple[DiagonalGaussian, torch.Tensor]:
    from tinyvid_private_ops import warp_field  # not distributed with the reference

    posterior = vae.encode(video)
    return posterior, warp_field(posterior.mean, video)
