"""Architectures as plain ``nn.Module``s (docs/architecture.md, Models)."""
