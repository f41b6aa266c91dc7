"""zoo: a transformer architecture zoo on PyTorch and Lightning."""
