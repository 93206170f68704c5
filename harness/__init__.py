"""fastvideo-harness: agents port model components into FastVideo and prove it with parity tests."""

__version__ = "0.1.0"
