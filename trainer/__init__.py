"""Plain-PyTorch transfer-learning core: models, adaptation strategies, data, training loop, metrics.

This package never imports Ray and never sees a storage URL: `workers/` adapts it to both.
"""
