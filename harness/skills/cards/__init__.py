"""Built-in skill cards (markdown), used when a checkout has no .agents/skills."""
