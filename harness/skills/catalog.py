"""Static facts about the four component skills: names, buckets, targets, drift checklists.

The drift checklists and reference examples restate the bucket-specific guidance of the
add-model component skills in short items the parity-debugger can tick off one by one.
"""

from __future__ import annotations

from types import MappingProxyType

VAE_SKILL = "add-model-04-port-vae"
ENCODER_SKILL = "add-model-05-port-encoder"
DIT_SKILL = "add-model-03-port-dit"
GENERIC_SKILL = "add-model-06-port-generic"
PARITY_SKILL = "add-model-02-parity"  # writes the parity test (mode parity-scaffold); not run by the harness

# component_type -> skill name; anything not listed uses the generic skill.
SKILL_BY_TYPE = MappingProxyType(
    {
        "vae": VAE_SKILL,
        "encoder": ENCODER_SKILL,
        "conditioner": ENCODER_SKILL,
        "dit": DIT_SKILL,
    }
)

BUCKET_BY_SKILL = MappingProxyType(
    {VAE_SKILL: "vaes", ENCODER_SKILL: "encoders", DIT_SKILL: "dits", GENERIC_SKILL: None}
)


def target_patterns(bucket: str | None) -> tuple[str, ...]:
    """Where a port in this bucket may put its model and config files."""
    if bucket is None:
        return ("fastvideo/models/*/*.py", "fastvideo/configs/models/*/*.py")
    return (f"fastvideo/models/{bucket}/*.py", f"fastvideo/configs/models/{bucket}/*.py")


REFERENCE_EXAMPLES = MappingProxyType(
    {
        VAE_SKILL: ("oobleck.py", "autoencoder_kl.py", "wanvae.py", "ltx2vae.py", "gamecraftvae.py"),
        ENCODER_SKILL: (
            "t5.py",
            "clip.py",
            "siglip.py",
            "llama.py",
            "qwen2_5.py",
            "gemma.py",
            "stable_audio_conditioner.py",
        ),
        DIT_SKILL: ("stable_audio.py", "wanvideo.py", "sd3.py", "longcat.py", "ltx2.py"),
        GENERIC_SKILL: ("schedulers/", "upsamplers/hunyuan15.py", "audio/ltx2_audio_vae.py"),
    }
)

DRIFT_CHECKLISTS = MappingProxyType(
    {
        VAE_SKILL: (
            "latent layout (channel/time/height/width order)",
            "temporal, spatial and audio compression factors",
            "latent scaling factor",
            "latent mean/std normalization",
            "posterior mode vs sample (never compare stochastic samples)",
            "channel order",
            "frame/sample cropping after decode",
            "tiling (use only where it keeps official numerics)",
            "decode output container",
        ),
        ENCODER_SKILL: (
            "tokenizer kwargs",
            "padding side",
            "truncation",
            "special tokens",
            "attention-mask dtype",
            "hidden-state layer index",
            "pooled output",
            "final norm",
            "output_hidden_states",
            "positional IDs",
            "dtype/autocast",
            "output packing",
            "connector/projection order",
            "passthrough paths",
            "returned dataclass shape",
        ),
        DIT_SKILL: (
            "patchify/unpatchify layout",
            "timestep embedding (sinusoid order, scale, flip_sin_to_cos)",
            "positional embedding / RoPE axes and frequencies",
            "attention masks and head layout",
            "modulation (shift/scale/gate) order",
            "norm epsilon and affine flags",
            "dtype/autocast boundaries",
            "output projection and final layer",
        ),
        GENERIC_SKILL: (
            "constructor args and defaults",
            "runtime flags",
            "RNG use",
            "dtype/autocast",
            "scaling constants",
            "masks",
            "mutable internal state",
            "output containers",
        ),
    }
)

SUCCESS_CRITERIA = MappingProxyType(
    {
        "prototype": (
            "every FastVideo target module imports",
            "the EntryClass instantiates with the official architecture args",
            "official and FastVideo state-dict key/shape dumps are written",
        ),
        "parity-debug": (
            "the harness ran `pytest <parity_test> -v -s` after the last edit",
            "the result is a non-skip PASS: >=1 passed, 0 failed, 0 errors, 0 skipped",
        ),
    }
)
