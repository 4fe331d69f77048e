"""Shared fixtures: every device test runs on CPU, and on CUDA when selected and present."""

import pytest
import torch

CUDA = pytest.param(
    "cuda",
    marks=[
        pytest.mark.gpu,
        pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
    ],
)


@pytest.fixture(params=["cpu", CUDA])
def device(request) -> str:
    return request.param
