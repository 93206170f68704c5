#!/usr/bin/env bash
# Builds a CPU-only virtual environment in which FastVideo's Oobleck VAE parity tests run.
# FastVideo itself is not installed: the tree under test (a worktree) goes on PYTHONPATH, so one
# environment serves every checkout. It gets what `import fastvideo` imports, with FastVideo's own
# version specifiers, and, given the official stable-audio-tools clone, what
# `stable_audio_tools.models.autoencoders` imports (the clone also goes on PYTHONPATH).
# Idempotent: a second run installs nothing new. pip's cache is used.
# Usage: bash scripts/fastvideo-cpu-env.sh VENV_DIR FASTVIDEO_CHECKOUT [OFFICIAL_CLONE]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 VENV_DIR FASTVIDEO_CHECKOUT [OFFICIAL_CLONE]" >&2; exit 2; }
venv=$1
checkout=$(cd "$2" && pwd)
official=${3:+$(cd "$3" && pwd)}
[ -f "$checkout/fastvideo/__init__.py" ] || { echo "not a FastVideo checkout: $checkout" >&2; exit 2; }
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
py=$venv/bin/python

# torch pinned (a bare `torch` would resolve to a multi-GB CUDA build), with the torchvision built
# for it; torchaudio's last release is 2.11, whose wheel accepts torch>=2.11.
pins=(torch==2.13.0 torchvision==0.28.0 torchaudio==2.11.1)
# What `import fastvideo` imports; its full dependency list pins CUDA-only packages.
fastvideo_needs=(cloudpickle diffusers einops filelock ftfy huggingface_hub imageio numpy pillow
                 psutil pyyaml remote-pdb scipy tokenizers transformers pytest)
# What the official autoencoders module imports; k-diffusion's `clip` needs pkg_resources,
# which setuptools 81 removed.
official_needs=(alias-free-torch==0.0.6 einops-exts k-diffusion 'setuptools<81')

# Each needed name with the specifier FastVideo's pyproject.toml gives it, if any.
mapfile -t specs < <("$py" - "$checkout/pyproject.toml" "${fastvideo_needs[@]}" <<'EOF'
import re, sys, tomllib
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
listed = {norm(re.match(r"[A-Za-z0-9_.-]+", d).group()): d.split(";")[0].strip() for d in deps}
print("\n".join(listed.get(norm(name), name) for name in sys.argv[2:]))
EOF
)
"$py" -m pip install -q "${pins[@]}" "${specs[@]}" ${official:+"${official_needs[@]}"}

# PyPI's torchvision/torchaudio wheels carry CUDA-built native ops that a CPU torch cannot load.
if "$py" -c 'import sys, torch; sys.exit(torch.version.cuda is not None)'; then
  site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  # torchaudio runs as pure Python when its libraries are absent.
  rm -f "$site"/torchaudio/lib/*.so
  # torchvision registers fake kernels for nms/qnms even when its ops did not load: guard them.
  sed -i -E 's/^@torch\.library\.register_fake\(("torchvision::q?nms")\)$/@(torch.library.register_fake(\1) if torchvision.extension._has_ops() else (lambda fn: fn))/' \
    "$site/torchvision/_meta_registrations.py"
fi

# Check the imports the parity test makes, from the checkout (cwd first on sys.path, as pytest has it).
path=$checkout${official:+:$official}
check() {
  local out
  out=$(cd "$checkout" && PYTHONPATH=$path "$py" -c "import $1" 2>&1) \
    || { printf 'import %s failed:\n%s\n' "$1" "$out" >&2; exit 1; }
}
check fastvideo.models.vaes.oobleck
[ -z "$official" ] || check stable_audio_tools.models.autoencoders
echo "ready: cd $checkout && PYTHONPATH=$path $py -m pytest <test> -v -s"
