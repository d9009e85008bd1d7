"""Architectures as plain ``nn.Module``s (DESIGN §3)."""
