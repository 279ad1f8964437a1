"""The PyTorch script a user would write instead of gradsim, for the two benchmark sweeps
(bench/specs): nn.Linear layers, retain_grad, one forward and backward per simulation, the
per-layer numbers read back. bench/speed.py times it beside gradsim.

One simulation: Linear(W, W) layers with bias, weights N(0, sigma_w^2/W), bias 0, the
activation after every hidden layer, x, t ~ N(0, 1), loss 0.5 * mean_batch ||y - t||^2; then
per-layer ||dL/dh|| (retain_grad), ||dL/dW|| and the activations' mean and variance.
"""
import math

import torch
import torch.nn as nn


def simulate(act, depth, width, sigma_w2, seed, batch):
    gen = torch.Generator().manual_seed(seed)
    std = math.sqrt(sigma_w2 / width)
    layers = []
    for _ in range(depth):
        lin = torch.nn.utils.skip_init(nn.Linear, width, width)
        with torch.no_grad():
            lin.weight.normal_(0.0, std, generator=gen)
            lin.bias.zero_()
        layers.append(lin)
    x = torch.randn(batch, width, generator=gen)
    t = torch.randn(batch, width, generator=gen)
    phi = torch.tanh if act == "tanh" else torch.relu
    hs, stats, a = [], [], x
    for l, lin in enumerate(layers):
        h = lin(a)
        h.retain_grad()
        hs.append(h)
        if l < depth - 1:
            a = phi(h)
            ad = a.detach()
            stats.append(torch.stack((ad.mean(), ad.var(unbiased=False))))
    loss = 0.5 * (hs[-1] - t).pow(2).sum() / batch
    loss.backward()
    with torch.no_grad():
        torch.stack([h.grad.norm() for h in hs]).tolist()
        torch.stack([lin.weight.grad.norm() for lin in layers]).tolist()
        torch.stack(stats).tolist() if stats else []


def grid(name):
    """The simulations of bench/specs/<name>.textproto: (act, depth, width, sigma_w^2, seed, batch)."""
    if name == "ref":
        return [(a, d, w, s, seed, 128) for a in ("tanh", "relu") for d in (16, 64)
                for w in (64, 256, 1024) for s in (1.0, 2.0) for seed in (0, 1)]
    return [(a, 32, 32, s, seed, 32) for a in ("tanh", "relu") for s in (1.0, 2.0) for seed in range(250)]


def run(name, threads):
    torch.set_num_threads(threads)
    for c in grid(name):
        simulate(*c)
