"""Local wire-format servers the real provider SDKs talk to in tests."""
