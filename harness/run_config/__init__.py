"""What a run is given and what is checked before anything is spent: `RunConfig` (the one
source of every run option), the packet and options checked together (`validation`), and the
run's outside inputs (`inputs`: API key or local server, Docker engine and image, bwrap)."""
