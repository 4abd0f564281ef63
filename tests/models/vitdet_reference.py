#!/usr/bin/env python3
"""Reference outputs of ViTDet's backbone pieces for tests/models/test_vitdet.cpp: a small PyTorch re-implementation
of detectron2's modeling/backbone/utils.py (get_rel_pos, add_decomposed_rel_pos, get_abs_pos, window_partition /
window_unpartition) and vit.py (Attention with explicit softmax, Block, ViT, SimpleFeaturePyramid + LastLevelMaxPool,
layers.LayerNorm), with semaim's (timm's) parameter names.

usage: vitdet_reference.py IN.safetensors OUT.safetensors

IN holds, by prefix: rel.<case>.table (get_rel_pos cases, metadata `rel_cases`), bias.{q,rel_pos_h,rel_pos_w}
(metadata `bias`: q and k grids), abs.pos (metadata `abs`), block.* (one Block's weights; block.input.x and
block.input.gy, the upstream gradient; metadata `block`), net.* (a ViT's weights; net.input.images; metadata
`net`), fpn.* (a SimpleFeaturePyramid's weights; fpn.input.x; metadata `fpn`). OUT gets rel.<case>, bias, abs,
block.y and block.grad.<x | parameter key>, net.y, fpn.<level index>."""
import json
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file


def window_partition(x, ws):
    b, h, w, c = x.shape
    ph, pw = (ws - h % ws) % ws, (ws - w % ws) % ws
    x = F.pad(x, (0, 0, 0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    x = x.view(b, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws, ws, c)
    return x, (hp, wp)


def window_unpartition(windows, ws, pad_hw, hw):
    hp, wp = pad_hw
    b = windows.shape[0] // (hp * wp // ws // ws)
    x = windows.view(b, hp // ws, wp // ws, ws, ws, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, :hw[0], :hw[1], :]


def get_rel_pos(q_size, k_size, rel_pos):
    max_rel = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != max_rel:
        rel_pos = F.interpolate(rel_pos.reshape(1, rel_pos.shape[0], -1).permute(0, 2, 1), size=max_rel,
                                mode="linear").reshape(-1, max_rel).permute(1, 0)
    q_coords = torch.arange(q_size)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size)[None, :] * max(q_size / k_size, 1.0)
    rel = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return rel_pos[rel.long()]


def decomposed_bias(q, rel_pos_h, rel_pos_w, q_size, k_size):
    """What add_decomposed_rel_pos adds to a zero attention map: (B, qh*qw, kh*kw)."""
    (qh, qw), (kh, kw) = q_size, k_size
    rh, rw = get_rel_pos(qh, kh, rel_pos_h), get_rel_pos(qw, kw, rel_pos_w)
    b, _, c = q.shape
    r_q = q.reshape(b, qh, qw, c)
    rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, rh)
    rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, rw)
    return (rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]).reshape(b, qh * qw, kh * kw)


def get_abs_pos(abs_pos, table_hw, hw):
    abs_pos = abs_pos[:, 1:]
    if tuple(table_hw) == tuple(hw):
        return abs_pos.reshape(1, hw[0], hw[1], -1)
    grid = abs_pos.reshape(1, table_hw[0], table_hw[1], -1).permute(0, 3, 1, 2)
    return F.interpolate(grid, size=tuple(hw), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)


class Attention(nn.Module):
    def __init__(self, dim, heads, rel_side):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.use_rel_pos = rel_side > 0
        if self.use_rel_pos:
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * rel_side - 1, dim // heads))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * rel_side - 1, dim // heads))

    def forward(self, x):
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, b * self.heads, h * w, -1).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        if self.use_rel_pos:
            attn = attn + decomposed_bias(q, self.rel_pos_h, self.rel_pos_w, (h, w), (h, w))
        x = (attn.softmax(dim=-1) @ v).view(b, self.heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, hidden, window, rel_side):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn, self.mlp, self.window = Attention(dim, heads, rel_side), Mlp(dim, hidden), window

    def forward(self, x):
        shortcut, x = x, self.norm1(x)
        if self.window > 0:
            hw = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, self.window)
        x = self.attn(x)
        if self.window > 0:
            x = window_unpartition(x, self.window, pad_hw, hw)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, chans, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(chans, dim, patch, patch)


class ViT(nn.Module):
    def __init__(self, a):
        super().__init__()
        d, gh, gw = a["embed_dim"], a["table_grid"][0], a["table_grid"][1]
        self.table_grid = (gh, gw)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + gh * gw, d))
        self.patch_embed = PatchEmbed(a["in_chans"], d, a["patch_size"])
        self.blocks = nn.ModuleList(
            Block(d, a["num_heads"], a["mlp_hidden"], 0 if i in a["global_blocks"] else a["window_size"],
                  (a["input_size"] // a["patch_size"] if i in a["global_blocks"] else a["window_size"])
                  if a["use_rel_pos"] else 0)
            for i in range(a["depth"]))

    def forward(self, images):
        x = self.patch_embed.proj(images).permute(0, 2, 3, 1)
        x = x + get_abs_pos(self.pos_embed, self.table_grid, (x.shape[1], x.shape[2]))
        for blk in self.blocks:
            x = blk(x)
        return x.permute(0, 3, 1, 2)


class ChannelLayerNorm(nn.Module):
    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight, self.bias, self.eps = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c)), eps

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ConvLn(nn.Conv2d):
    def __init__(self, cin, cout, k):
        super().__init__(cin, cout, k, padding=k // 2, bias=False)
        self.norm = ChannelLayerNorm(cout)

    def forward(self, x):
        return self.norm(super().forward(x))


class Pyramid(nn.Module):
    def __init__(self, a):
        super().__init__()
        d, out, self.stages = a["in_dim"], a["out_channels"], []
        for scale in a["scale_factors"]:
            if scale == 4.0:
                layers, w = [nn.ConvTranspose2d(d, d // 2, 2, 2), ChannelLayerNorm(d // 2), nn.GELU(),
                             nn.ConvTranspose2d(d // 2, d // 4, 2, 2)], d // 4
            elif scale == 2.0:
                layers, w = [nn.ConvTranspose2d(d, d // 2, 2, 2)], d // 2
            elif scale == 1.0:
                layers, w = [], d
            else:
                layers, w = [nn.MaxPool2d(2, 2)], d
            stage = nn.Sequential(*layers, ConvLn(w, out, 1), ConvLn(out, out, 3))
            self.add_module(f"simfp_{round(math.log2(a['in_stride'] / scale))}", stage)
            self.stages.append(stage)

    def forward(self, x):
        levels = [s(x) for s in self.stages]
        return levels + [F.max_pool2d(levels[-1], kernel_size=1, stride=2, padding=0)]


def prefixed(tensors, prefix):
    return {k[len(prefix):]: v for k, v in tensors.items()
            if k.startswith(prefix) and not k.startswith(prefix + "input.")}


def main() -> int:
    in_path, out_path = sys.argv[1], sys.argv[2]
    with safe_open(in_path, "pt") as f:
        meta = {k: json.loads(v) for k, v in f.metadata().items()}
    t = load_file(in_path)
    out = {}
    with torch.no_grad():
        for case in meta["rel_cases"]:
            out[f"rel.{case['name']}"] = get_rel_pos(case["q"], case["k"], t[f"rel.{case['name']}.table"])
        b = meta["bias"]
        out["bias"] = decomposed_bias(t["bias.q"], t["bias.rel_pos_h"], t["bias.rel_pos_w"], b["q"], b["k"])
        out["abs"] = get_abs_pos(t["abs.pos"], meta["abs"]["table"], meta["abs"]["hw"])

    a = meta["block"]
    block = Block(a["dim"], a["num_heads"], a["mlp_hidden"], a["window_size"], a["rel_side"])
    block.load_state_dict(prefixed(t, "block."), strict=True)
    x = t["block.input.x"].clone().requires_grad_(True)
    y = block(x)
    (y * t["block.input.gy"]).sum().backward()
    out["block.y"] = y.detach()
    out["block.grad.x"] = x.grad
    for k, p in block.named_parameters():
        out[f"block.grad.{k}"] = p.grad

    net = ViT(meta["net"])
    net.load_state_dict(prefixed(t, "net."), strict=True)
    fpn = Pyramid(meta["fpn"])
    fpn.load_state_dict(prefixed(t, "fpn."), strict=True)
    with torch.no_grad():
        out["net.y"] = net(t["net.input.images"]).contiguous()
        for i, level in enumerate(fpn(t["fpn.input.x"])):
            out[f"fpn.{i}"] = level.contiguous()
    save_file({k: v.contiguous() for k, v in out.items()}, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
