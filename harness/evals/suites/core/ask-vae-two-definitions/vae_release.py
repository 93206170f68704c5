"""TinyKLVAE as used by the release scripts.

Same layers and weights as vae.py; the latent contract differs: latents are scaled by
scaling_factor only (no per-channel mean/std), and decode crops the centre of the frame.
"""

from __future__ import annotations

import torch

from tinyvid_official.vae import TinyKLVAE, _to_frames, _to_video


class TinyKLVAERelease(TinyKLVAE):
    def scale_latents(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.config.scaling_factor

    def unscale_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return latents / self.config.scaling_factor

    def decode(self, z: torch.Tensor, height: int, width: int) -> torch.Tensor:
        frames = self.decoder(self.post_quant_conv(_to_frames(z)))
        top = (frames.shape[-2] - height) // 2
        left = (frames.shape[-1] - width) // 2
        return _to_video(frames[..., top:top + height, left:left + width], z.shape[0])
