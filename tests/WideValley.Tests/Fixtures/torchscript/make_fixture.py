#!/usr/bin/env python3
"""Makes the TorchScript fixture of WideValley's user-model tests.

Run from this folder (re-runnable; the output is the same on every run with the same PyTorch build):

    apt-get install -y python3-torch python3-numpy   # Debian 12: PyTorch 1.13.1, NumPy 1.24
    /usr/bin/python3 make_fixture.py                 # Debian's Python, where those packages live (about 20 s)

It writes, next to itself:
  tiny_convnet.pt      the network, scripted (torch.jit.script) and saved by torch.jit.save
  weights/<name>.npy   its state_dict, one float32 array per tensor, named as in named_parameters()
  inputs.npy           64 images (64, 1, 28, 28) float32, standard normal
  labels.npy           their labels (64,) int64 in [0, 10)
  logits.npy           PyTorch's forward on inputs.npy (64, 10) float32
  reference.txt        PyTorch's mean cross-entropy on the 64 samples and the top eigenvalue of its Hessian with
                       respect to all 2,674 weights (float64: the whole Hessian by torch.autograd.functional.hessian,
                       then eigvalsh), for the C# tests to compare against

The C# tests build the same network in TorchSharp (TinyConvNet in UserModelTests.cs), copy these weights into it,
and check forward, loss and the top Hessian eigenvalue (Lanczos on Hessian-vector products) against both the loaded
TorchScript module and reference.txt.
"""
import os
import sys

# TorchScript writes a module's constants in Python set order, which string hashing randomises per process: pin the
# hash seed so that the archive's bytes are the same on every run.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, "PYTHONHASHSEED": "0"})

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class TinyConvNet(nn.Module):
    """conv 4@5x5 stride 3 (28x28 -> 8x8), tanh, linear 256 -> 10: 104 + 2,570 = 2,674 weights.

    tanh rather than ReLU so that the Hessian has a curvature term from the activation too, not only from the loss.
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=5, stride=3)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.conv(x))
        return self.fc(torch.flatten(x, 1))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    torch.manual_seed(20261204)
    model = TinyConvNet().eval()
    scripted = torch.jit.script(model)
    scripted.save(os.path.join(here, "tiny_convnet.pt"))

    weights = os.path.join(here, "weights")
    os.makedirs(weights, exist_ok=True)
    for name, parameter in model.named_parameters():
        np.save(os.path.join(weights, name + ".npy"), parameter.detach().numpy().astype(np.float32))

    generator = torch.Generator().manual_seed(7)
    inputs = torch.randn(64, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (64,), generator=generator)
    np.save(os.path.join(here, "inputs.npy"), inputs.numpy().astype(np.float32))
    np.save(os.path.join(here, "labels.npy"), labels.numpy().astype(np.int64))
    with torch.no_grad():
        logits = scripted(inputs)
    np.save(os.path.join(here, "logits.npy"), logits.numpy().astype(np.float32))

    # The reference Hessian in float64: the same weights, the whole matrix, exact eigenvalues.
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().double().reshape(-1) for _, p in model.named_parameters()])
    x64 = inputs.double()
    model64 = TinyConvNet().double()

    def loss_of(w):
        offset = 0
        tensors = {}
        for name, shape in zip(names, shapes):
            n = int(np.prod(shape))
            tensors[name] = w[offset:offset + n].reshape(shape)
            offset += n
        out = torch.func.functional_call(model64, tensors, (x64,)) if hasattr(torch, "func") else \
            torch.nn.utils.stateless.functional_call(model64, tensors, (x64,))
        return F.cross_entropy(out, labels)

    loss = loss_of(flat).item()
    hessian = torch.autograd.functional.hessian(loss_of, flat)
    eigenvalues = torch.linalg.eigvalsh(hessian)
    with open(os.path.join(here, "reference.txt"), "w") as f:
        f.write("# written by make_fixture.py with torch %s; float64\n" % torch.__version__)
        f.write("parameters %d\n" % flat.numel())
        f.write("loss %.17g\n" % loss)
        f.write("top_eigenvalue %.17g\n" % eigenvalues[-1].item())
        f.write("second_eigenvalue %.17g\n" % eigenvalues[-2].item())
        f.write("bottom_eigenvalue %.17g\n" % eigenvalues[0].item())
    print("torch", torch.__version__, "parameters", flat.numel(), "loss", loss,
          "top eigenvalue", eigenvalues[-1].item(), "second", eigenvalues[-2].item())


if __name__ == "__main__":
    main()
