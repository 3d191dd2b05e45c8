"""The per-image correctness store: packed bits, small at the paper's scale."""

import numpy as np


def test_correctness_store_is_small_at_the_papers_scale():
    """329 networks × 37 cells × 10,000 images packed: about 15 MB (≲ 20 MB)."""
    from paradox_utils.correctness import pack

    assert 329 * 37 * len(pack(np.ones(10_000, dtype=bool))) / 2**20 < 20
