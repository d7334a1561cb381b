import os
from pathlib import Path

import pytest
import torch

# Two cores in CI: keep each test process to one intra-op thread so tests do not oversubscribe.
torch.set_num_threads(int(os.environ.get("TRAINWISE_TEST_THREADS", "1")))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (real public samples); tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA
