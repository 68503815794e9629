"""Shared checks of the network tests."""

import pytest
import torch


def _forward_backward(net: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    out = net(x)
    out.square().mean().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    return out, grads


@pytest.fixture
def cuda_matches_cpu():
    """``check(net, x, atol)``: the float64 ``net``'s output and gradients on CUDA equal those on CPU
    (output to 1e-9 relative, gradients to 1e-7; float64 keeps cuDNN's TF32 out of the comparison)."""

    def check(net: torch.nn.Module, x: torch.Tensor, atol: float) -> None:
        cpu_out, cpu_grads = _forward_backward(net, x)
        gpu_out, gpu_grads = _forward_backward(net.cuda(), x.cuda())
        assert gpu_out.is_cuda
        torch.testing.assert_close(gpu_out.cpu(), cpu_out, rtol=1e-9, atol=atol)
        for got, expected in zip(gpu_grads, cpu_grads, strict=True):
            torch.testing.assert_close(got.cpu(), expected, rtol=1e-7, atol=atol)

    return check
