"""Configuration sweeps: every reference's constructor arguments, recorded and replayed (issue 13)."""
