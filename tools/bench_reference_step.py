#!/usr/bin/env python3
"""Pretraining step, semaim vs the published SemAIM code (github skyoux/SemAIM): images/s of the reference's
training step as engines/engine_pretrain.py runs it and of build/bench_pretrain_step at the same model size,
ordering, batch and precision, timed in alternating rounds on the CPU; prints semaim / reference per row.

The reference step, per iteration (accum_iter 1): the per-iteration lr schedule (util/lr_sched.py); for the
semantic ordering (`attention_center`) the no-grad encoder pass in eval mode and its cls similarity; the masked
two-stream forward with its dense (L+1)^2 masks and the pixel loss; loss.item() and the finiteness check;
backward; clip_grad_norm_ 3.0; torch.optim.AdamW (0.9, 0.95) over the timm weight-decay groups; zero_grad.
Model and loss flags are the README's pretraining command (MLP head, blur 9 / sigma 1, norm-pix, L2, cls
similarity, clip 3, blr 2e-4, warmup 30 of 800 epochs, wd 0.05). A fixed random batch, no data loading.

Precision rows (reference / semaim):
  fp32      main_pretrain --not_use_fp16 (no autocast, no scaler) / pretrain.precision=fp32
  bf16      the same step under torch.autocast('cpu', bfloat16) / pretrain.precision=bf16; the reference's
            semantic pass runs under that autocast too (as semaim's does), unless --reference-pass fp32
  defaults  main_pretrain's defaults, verbatim: torch.cuda.amp.autocast(True) and the NativeScaler of
            util/misc.py; both are CUDA-only and switch themselves off on a CPU, so the step computes in
            fp32 / pretrain.precision=auto (bf16 where the CPU has native bf16, else fp32)

Alternation: per config, per round, per precision the reference runs --steps steps of every ordering and
bench_pretrain_step runs --steps steps (one repeat, after its own 2 warm-up steps) in a fresh process; the
order of the two flips every round. Medians are over rounds.

usage: bench_reference_step.py --reference DIR [--configs small,vits,fmnist] [--orderings semantic,stochastic]
                               [--precisions fp32,bf16,defaults] [--rounds R] [--steps K] [--warmup W]
                               [--threads T] [--reference-pass step|fp32] [--semaim-bin PATH] [--quick]
                               [--json FILE] [--profile]
--profile prints the reference step's time by category instead (bench_pretrain_step --profile's categories).
DIR is a checkout of the reference (git clone https://github.com/skyoux/SemAIM); its code is imported, not
changed. Exit codes: 2 bad input (no such DIR, the import fails, the binary is missing), 1 runtime failure.
"""
import argparse
import contextlib
import importlib
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

PROG = "bench_reference_step"
ROOT = Path(__file__).resolve().parent.parent

# Sizes (the issue's): the reference model's arguments, the batch, and the bench_pretrain_step arguments that
# build the same model in semaim. `orderings` is the default set for the size.
CONFIGS = {
    "small": dict(img=56, patch=4, chans=3, dim=192, depth=6, heads=3, decoder=6, batch=64,
                  orderings=("semantic", "stochastic"),
                  semaim=["--set", "model.name=aim_fmnist_patch4", "--set", "model.img_size=56", "--set",
                          "model.in_chans=3", "--set", "model.embed_dim=192", "--set", "model.depth=6", "--set",
                          "model.num_heads=3", "--set", "model.decoder_depth=6"]),
    "vits": dict(img=224, patch=16, chans=3, dim=384, depth=12, heads=6, decoder=12, batch=16,
                 orderings=("semantic",),
                 semaim=["--set", "model.name=aim_small_patch16", "--set", "model.img_size=224"]),
    # semaim's Fashion-MNIST default; the reference cannot build it (see reference_cannot_build).
    "fmnist": dict(img=28, patch=4, chans=1, dim=128, depth=4, heads=4, decoder=4, batch=128,
                   orderings=("semantic",),
                   semaim=["configs/pretrain/aim-fmnist-p4_1xb128-semantic_fmnist.yaml"]),
}
# semaim ordering -> (reference permutation_type, bench_pretrain_step variant row, variants needed)
ORDERINGS = {
    "semantic": ("attention_center", "semantic, sorted-causal SDPA (default)", 1),
    "stochastic": ("stochastic", "stochastic (SAIM), sorted-causal SDPA", 3),
}
# precision row -> semaim's pretrain.precision
PRECISIONS = {"fp32": "fp32", "bf16": "bf16", "defaults": "auto"}
# The README's pretraining command (the published recipe).
RECIPE = dict(blr=2e-4, min_lr=0.0, warmup_epochs=30, epochs=800, weight_decay=0.05, betas=(0.9, 0.95),
              clip_grad=3.0, gaussian_kernel_size=9, gaussian_sigma=1, attention_type="cls")
STEPS_PER_EPOCH = 1000  # only places the synthetic iterations on the lr schedule


def fail(code, msg):
    print(f"{PROG}: {msg}", file=sys.stderr)
    sys.exit(code)


def shim_environment():
    """Lets the reference (written for torch 1.13, timm 0.4.5, NumPy < 1.24, CUDA) import and run on a CPU
    with this venv, without touching its files: each shim restores one name a newer release removed."""
    if not hasattr(np, "float"):  # util/pos_embed.py: np.arange(..., dtype=np.float); removed in NumPy 1.24
        np.float = float
    if "torch._six" not in sys.modules:  # util/misc.py: from torch._six import inf; removed in torch 2.0
        six = types.ModuleType("torch._six")
        six.inf = math.inf
        sys.modules["torch._six"] = six
    # models_semaim.py moves its permutations with .cuda(); on this CPU benchmark every tensor stays put.
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    # Deprecation notices of the CUDA-only amp API and of torch.meshgrid, which the reference calls as written.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*CUDA is not available.*")
    warnings.filterwarnings("ignore", message=".*torch.meshgrid.*")


def load_reference(ref_dir):
    """The reference's modules (models_semaim, util.lr_sched, util.misc) and timm's weight-decay grouping;
    exits with code 2 when DIR is not a checkout or the import fails."""
    ref = Path(ref_dir)
    if not (ref / "models" / "models_semaim.py").is_file():
        fail(2, f"--reference {ref_dir}: no models/models_semaim.py there (expected a checkout of "
                "https://github.com/skyoux/SemAIM)")
    shim_environment()
    sys.path.insert(0, str(ref.resolve()))
    try:
        models = importlib.import_module("models.models_semaim")
        lr_sched = importlib.import_module("util.lr_sched")
        misc = importlib.import_module("util.misc")
        import timm.optim.optim_factory as optim_factory
    except Exception as e:  # any import-time failure of their code is a bad --reference for this tool
        fail(2, f"--reference {ref_dir}: importing the reference failed: {type(e).__name__}: {e}")
    # main_pretrain.py calls optim_factory.add_weight_decay (timm 0.4.5); timm >= 0.9 names the same grouping
    # (no decay for 1-D parameters and biases, decay for the rest) param_groups_weight_decay.
    add_weight_decay = getattr(optim_factory, "add_weight_decay", None) or optim_factory.param_groups_weight_decay
    return SimpleNamespace(models=models, lr_sched=lr_sched, misc=misc, add_weight_decay=add_weight_decay)


def reference_cannot_build(cfg):
    """Why the reference model cannot take this size, or None. Both reasons are in models_semaim.py: its
    __init__ fills a 14-row table of center windows indexed by grid row (any grid under 14 raises IndexError),
    and patchify, unpatchify, the Gaussian blur and the pixel head hard-code 3 channels."""
    grid = cfg["img"] // cfg["patch"]
    why = []
    if grid < 14:
        why.append(f"its __init__ writes rows 0-13 of a ({grid}, 2, 4) center-window table (IndexError for a "
                   f"{grid}x{grid} grid)")
    if cfg["chans"] != 3:
        why.append(f"patchify, the blur and the pixel head hard-code 3 channels ({cfg['chans']} here)")
    return "; ".join(why) or None


def model_flops_per_image(named_params, num_patches, dim, depth, decoder, semantic):
    """bench_pretrain_step's analytic model FLOPs of one image's step, from the model's parameters: every weight
    matrix once per token (x2), dense attention scores and sums, forward + backward (x3), plus the encoder
    forward of the semantic pass. Both sides name their parameters alike, so equal results mean equal sizes."""
    enc = rest = 0.0
    for name, p in named_params:
        if p.dim() < 2 or "pos_embed" in name or "token" in name:
            continue
        if name.startswith(("patch_embed.", "blocks.", "norm.")):
            enc += p.numel()
        else:
            rest += p.numel()
    l, t = float(num_patches), float(num_patches + 1)
    enc_fwd = 2 * enc * t + 4 * t * t * dim * depth
    fwd = enc_fwd + 2 * rest * l + 4 * l * t * dim * decoder
    return 3 * fwd + (enc_fwd if semantic else 0.0)


class ReferenceStep:
    """One (size, ordering, precision) of the reference: its model, optimizer and fixed batch; step() is one
    iteration of engine_pretrain.train_one_epoch."""

    def __init__(self, ref, cfg, ordering, precision, batch, pass_at_step_precision):
        torch.manual_seed(0)
        self.permutation_type = ORDERINGS[ordering][0]
        self.model = ref.models.AimViT(
            img_size=cfg["img"], patch_size=cfg["patch"], in_chans=cfg["chans"], embed_dim=cfg["dim"],
            depth=cfg["depth"], num_heads=cfg["heads"], mlp_ratio=4.0, permutation_type=self.permutation_type,
            attention_type=RECIPE["attention_type"], query_depth=cfg["decoder"], share_weight=False, out_dim=512,
            prediction_head_type="MLP", gaussian_kernel_size=RECIPE["gaussian_kernel_size"],
            gaussian_sigma=RECIPE["gaussian_sigma"], loss_type="L2", predict_feature="none", norm_pix_loss=True)
        self.args = SimpleNamespace(lr=RECIPE["blr"] * batch / 256, min_lr=RECIPE["min_lr"],
                                    warmup_epochs=RECIPE["warmup_epochs"], epochs=RECIPE["epochs"], accum_iter=1)
        groups = ref.add_weight_decay(self.model, RECIPE["weight_decay"])
        self.optimizer = torch.optim.AdamW(groups, lr=self.args.lr, betas=RECIPE["betas"])
        self.lr_sched = ref.lr_sched
        self.precision = precision
        # main_pretrain: loss_scaler = None if --not_use_fp16 else NativeScaler(); bf16 needs no scaler.
        self.loss_scaler = ref.misc.NativeScalerWithGradNormCount() if precision == "defaults" else None
        self.pass_at_step_precision = pass_at_step_precision and precision == "bf16"
        self.imgs = torch.randn(batch, cfg["chans"], cfg["img"], cfg["img"])
        self.batch = batch
        self.iteration = 0
        self.last_loss = float("nan")
        self.flops = model_flops_per_image(self.model.named_parameters(), self.model.patch_embed.num_patches,
                                           cfg["dim"], cfg["depth"], cfg["decoder"],
                                           "attention" in self.permutation_type)
        self.model.train(True)
        self.optimizer.zero_grad()

    def autocast(self):
        if self.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        # The engine's `torch.cuda.amp.autocast(loss_scaler is not None)`: CUDA-only, so fp32 on this CPU.
        return torch.cuda.amp.autocast(self.loss_scaler is not None)

    def step(self):
        epoch, data_iter_step = divmod(self.iteration, STEPS_PER_EPOCH)
        self.lr_sched.adjust_learning_rate(self.optimizer, data_iter_step / STEPS_PER_EPOCH + epoch, self.args)
        samples = self.imgs
        enc_tokens, attention = None, None
        if "attention" in self.permutation_type:  # predict_feature 'none', attention_type 'cls', no EMA
            self.model.eval()
            with torch.no_grad(), (self.autocast() if self.pass_at_step_precision else contextlib.nullcontext()), \
                    torch.profiler.record_function(PHASE + "semantic pass (no-grad encoder)"):
                enc_tokens, feature_attention, self_attention = self.model(samples, forward_encoder=True)
            self.model.train()
            attention = feature_attention.detach()
        with self.autocast():
            loss, _, _ = self.model(samples, enc_tokens, attention)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise RuntimeError(f"reference loss is {loss_value} at iteration {self.iteration}")
        loss /= self.args.accum_iter
        if self.loss_scaler is None:
            loss.backward()
            with torch.profiler.record_function(PHASE + "optimizer (clip, AdamW, zero_grad)"):
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), RECIPE["clip_grad"])
                self.optimizer.step()
        else:
            self.loss_scaler(loss, self.optimizer, parameters=self.model.parameters(), clip_grad=RECIPE["clip_grad"],
                             update_grad=True)
        self.optimizer.zero_grad()
        # (the engine's torch.cuda.synchronize() has nothing to wait for on a CPU)
        self.iteration += 1
        self.last_loss = loss_value

    def time_steps(self, steps):
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step()
        return steps * self.batch / (time.perf_counter() - t0)


PHASE = "phase::"  # the scope names bench/step_profile.h counts as phases


def op_category(name):
    """bench/step_profile.h's op_category, for the reference's ops."""
    if "scaled_dot_product" in name or "flash_attention" in name or "softmax" in name:
        return "attention (SDPA kernels, softmax)"
    if "layer_norm" in name:
        return "norms (LayerNorm fwd + bwd)"
    if name in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_addmm_activation") or \
            "convolution" in name or "mkldnn_" in name:
        return "GEMMs and convolutions"
    if any(k in name for k in ("copy_", "clone", "contiguous", "index", "gather", "scatter")) or \
            name in ("aten::cat", "aten::stack"):
        return "layout copies, gathers, cat"
    if name.startswith("aten::"):
        return "elementwise and reductions"
    return "autograd, dispatch and Python overhead"


def profile_categories(step, steps, with_flops):
    """{category: [self us, FLOPs]} over `steps` profiled steps, and their wall seconds."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], with_flops=with_flops) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            step.step()
        wall = time.perf_counter() - t0
    cats, ops = {}, {}
    for ev in prof.events():
        phase, p = None, ev
        while p is not None:
            if p.name.startswith(PHASE):
                phase = p.name[len(PHASE):]
                break
            p = p.cpu_parent
        cat = phase or op_category(ev.name)
        for c in (cats.setdefault(cat, [0.0, 0.0]), ops.setdefault(f"{cat} / {ev.name}", [0.0, 0.0])):
            c[0] += ev.self_cpu_time_total  # us
            c[1] += ev.flops or 0
    return cats, wall, ops


def profile_reference(ref, cfg, ordering, precision, batch, args):
    """The reference step's time by category, as bench_pretrain_step --profile prints semaim's: each op's self
    time under its phase scope (semantic pass, optimizer) or else by its name. As there, the times come from a
    run without FLOP counting (which records input shapes and slows some ops several-fold), the FLOPs from a
    second run with it."""
    step = ReferenceStep(ref, cfg, ordering, precision, batch, args.reference_pass == "step")
    for _ in range(max(args.warmup, 1)):
        step.step()
    cats, wall, ops = profile_categories(step, args.steps, with_flops=False)
    flops = profile_categories(step, args.steps, with_flops=True)[0]
    total = sum(v[0] for v in cats.values())
    print(f"\nreference step, {cfg['img']} px, D {cfg['dim']}, {cfg['depth']}+{cfg['decoder']}, batch {batch}, "
          f"{ordering}, {precision}: {1e3 * wall / args.steps:.1f} ms per step wall, {total / 1e3 / args.steps:.1f} "
          f"ms in op self times\n")
    print("top ops by self time (category / op: ms per step):")
    for name, (us, _) in sorted(ops.items(), key=lambda kv: -kv[1][0])[:25]:
        print(f"  {us / 1e3 / args.steps:8.1f}  {name}")
    print("\n| category | ms per step | share | achieved TFLOP/s |\n|---|---|---|---|")
    for name, (us, _) in sorted(cats.items(), key=lambda kv: -kv[1][0]):
        f = flops.get(name, [0, 0])[1]
        tf = f"{f / us / 1e6:.3f}" if f > 1e-3 * us * 1e6 and us else "-"
        print(f"| {name} | {us / 1e3 / args.steps:.1f} | {100 * us / total:.1f}% | {tf} |")


SEMAIM_HEADER = re.compile(r"precision (.+), (\S+), (\d+) threads, ")
SEMAIM_ROW = re.compile(r"^\| ([^|]+?) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.eE+-]+) \|")


def run_semaim(args, cfg, batch, precision, variants):
    """One bench_pretrain_step process: {variant row name: (images/s as printed, model TFLOP/s)} and its
    precision text. Raises RuntimeError when it fails or prints something this parser does not know."""
    cmd = [str(args.semaim_bin), *cfg["semaim"], "--batch", str(batch), "--steps", str(args.steps), "--repeats", "1",
           "--variants", str(variants), "--set", f"pretrain.precision={PRECISIONS[precision]}"]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}: {proc.stderr.strip()}")
    header = SEMAIM_HEADER.search(proc.stdout)
    if not header:
        raise RuntimeError(f"no header line in bench_pretrain_step's output:\n{proc.stdout}")
    if int(header.group(3)) != args.threads:
        raise RuntimeError(f"bench_pretrain_step ran {header.group(3)} threads, not {args.threads}")
    rows = {}
    for line in proc.stdout.splitlines():
        m = SEMAIM_ROW.match(line)
        if m:
            rows[m.group(1)] = (float(m.group(2)), float(m.group(6)))
    return rows, header.group(1)


def semaim_rate(label, printed_rate, tflops, ref_flops):
    """semaim's images/s to 3 significant digits: its model TFLOP/s (printed to 3) over the FLOPs per image,
    which the same formula gives for the reference's parameters when the two models are the same size. The
    printed images/s (1 decimal, coarse below ~10 images/s) must agree within rounding, else the sizes differ."""
    rate = tflops * 1e12 / ref_flops
    if abs(rate - printed_rate) > 0.05 + 0.01 * printed_rate:
        raise RuntimeError(f"{label}: the models differ in size: semaim printed {printed_rate} images/s at "
                           f"{tflops} TFLOP/s, i.e. {tflops * 1e12 / max(printed_rate, 1e-9):.4g} FLOPs per image; "
                           f"the reference has {ref_flops:.4g}")
    return rate


def bench_config(args, name, ref, results):
    cfg = CONFIGS[name]
    batch = args.batch_override.get(name, cfg["batch"])
    orderings = args.orderings or cfg["orderings"]
    start = time.perf_counter()
    variants = max(ORDERINGS[o][2] for o in orderings)
    runners = {}
    for p in args.precisions:
        for o in orderings:
            try:
                s = ReferenceStep(ref, cfg, o, p, batch, args.reference_pass == "step")
                for _ in range(max(args.warmup, 1)):  # one step at least, so a size it cannot run shows here
                    s.step()
            except (IndexError, RuntimeError) as e:
                why = reference_cannot_build(cfg)
                if not why:
                    raise RuntimeError(f"{name} {o} {p}: the reference step failed: {type(e).__name__}: {e}")
                print(f"{name}: skipped, the reference cannot take {cfg['img']}x{cfg['img']}x{cfg['chans']} "
                      f"images with patch {cfg['patch']} ({type(e).__name__}: {e}): {why}.\n", flush=True)
                results.append(dict(config=name, skipped=why))
                return
            runners[p, o] = s
    rates = {(side, p, o): [] for side in ("reference", "semaim") for p in args.precisions for o in orderings}
    semaim_precision = {}
    for r in range(args.rounds):
        for p in args.precisions:
            def run_reference():
                for o in orderings:
                    rates["reference", p, o].append(runners[p, o].time_steps(args.steps))

            def run_cpp():
                rows, semaim_precision[p] = run_semaim(args, cfg, batch, p, variants)
                for o in orderings:
                    row = ORDERINGS[o][1]
                    if row not in rows:
                        raise RuntimeError(f"bench_pretrain_step printed no row '{row}'")
                    rates["semaim", p, o].append(semaim_rate(f"{name} {o} {p}", *rows[row], runners[p, o].flops))

            for run in ((run_reference, run_cpp) if r % 2 == 0 else (run_cpp, run_reference)):
                run()
        print(f"{name} round {r + 1}/{args.rounds} done, {time.perf_counter() - start:.0f} s since the config's start "
              f"(load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)
    for p in args.precisions:
        for o in orderings:
            ref_r, sem_r = rates["reference", p, o], rates["semaim", p, o]
            results.append(dict(config=name, batch=batch, ordering=o, precision=p,
                                semaim_precision=semaim_precision[p], reference=ref_r, semaim=sem_r,
                                per_round=[s / q for s, q in zip(sem_r, ref_r)],
                                reference_last_loss=runners[p, o].last_loss,
                                scaler_enabled=bool(runners[p, o].loss_scaler and
                                                    runners[p, o].loss_scaler._scaler.is_enabled())))


def precision_cell(row, reference_pass):
    if row["precision"] == "fp32":
        return "fp32 / fp32"
    if row["precision"] == "bf16":
        return "bf16 autocast" + ("" if reference_pass == "step" else " (semantic pass fp32)") + " / bf16"
    ref = "defaults: " + ("fp16 AMP" if row["scaler_enabled"] else "fp32 (CUDA AMP off on CPU)")
    return f"{ref} / auto -> {row['semaim_precision'].split()[0]}"


def print_table(args, results):
    size = {n: f"{c['img']} px, patch {c['patch']}, D {c['dim']}, {c['depth']}+{c['decoder']}"
            for n, c in CONFIGS.items()}
    print("| config | batch | ordering | precision (reference / semaim) | reference img/s | semaim img/s | "
          "semaim / reference | per-round ratios |\n|---|---|---|---|---|---|---|---|")
    for row in results:
        if "skipped" in row:
            print(f"| {row['config']} ({size[row['config']]}) | - | - | - | reference cannot build | - | - | - |")
            continue
        cell = lambda v: f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})"
        ratio = statistics.median(row["semaim"]) / statistics.median(row["reference"])
        print(f"| {row['config']} ({size[row['config']]}) | {row['batch']} | {row['ordering']} | "
              f"{precision_cell(row, args.reference_pass)} | {cell(row['reference'])} | {cell(row['semaim'])} | "
              f"**{ratio:.2f}x** | {min(row['per_round']):.2f}-{max(row['per_round']):.2f} |")


def parse_args():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", required=True, help="checkout of github.com/skyoux/SemAIM")
    ap.add_argument("--configs", default="small,vits,fmnist", help=f"of {','.join(CONFIGS)}")
    ap.add_argument("--orderings", default="", help="semantic,stochastic (default: per config)")
    ap.add_argument("--precisions", default="fp32,bf16,defaults")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per side per round")
    ap.add_argument("--warmup", type=int, default=2, help="reference warm-up steps (semaim's bench does 2)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reference-pass", choices=("step", "fp32"), default="step",
                    help="bf16 rows: the reference's semantic pass under the step's autocast (as semaim's), or "
                         "fp32 as engine_pretrain.py places it outside autocast")
    ap.add_argument("--semaim-bin", default=str(ROOT / os.environ.get("SEMAIM_BUILD", "build") / "bench_pretrain_step"))
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 1 step at small batches")
    ap.add_argument("--json", default="", help="also write the raw rates to this file")
    ap.add_argument("--profile", action="store_true",
                    help="instead of timing: the reference step's time by category (torch.profiler), the same "
                         "categories as bench_pretrain_step --profile, --steps steps per config, ordering and precision")
    args = ap.parse_args()
    args.configs = [c for c in args.configs.split(",") if c]
    args.orderings = tuple(o for o in args.orderings.split(",") if o)
    args.precisions = [p for p in args.precisions.split(",") if p]
    for what, got, known in (("--configs", args.configs, CONFIGS), ("--orderings", args.orderings, ORDERINGS),
                             ("--precisions", args.precisions, PRECISIONS)):
        bad = [g for g in got if g not in known]
        if bad or not (got or what == "--orderings"):
            fail(2, f"{what}: unknown or empty {bad or got}; known: {', '.join(known)}")
    if min(args.rounds, args.steps, args.threads) < 1 or args.warmup < 0:
        fail(2, "--rounds, --steps and --threads must be >= 1, --warmup >= 0")
    args.batch_override = {}
    if args.quick:
        args.rounds, args.steps, args.warmup = 1, 1, 1
        args.batch_override = {"small": 8, "vits": 2}
    if not os.access(args.semaim_bin, os.X_OK):
        fail(2, f"{args.semaim_bin}: not built (cmake --build build --target bench_pretrain_step)")
    if not Path(args.reference).is_dir():
        fail(2, f"--reference {args.reference}: no such directory")
    return args


def main():
    args = parse_args()
    ref = load_reference(args.reference)
    torch.set_num_threads(args.threads)
    print(f"reference {Path(args.reference).resolve()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads on both sides, {args.rounds} rounds x {args.steps} steps per side, reference warm-up "
          f"{args.warmup}, semantic pass in bf16 rows: {args.reference_pass}\n", flush=True)
    if args.profile:
        for name in args.configs:
            cfg = CONFIGS[name]
            if reference_cannot_build(cfg):
                continue
            for ordering in args.orderings or cfg["orderings"]:
                for precision in args.precisions:
                    profile_reference(ref, cfg, ordering, precision,
                                      args.batch_override.get(name, cfg["batch"]), args)
        return
    results = []
    t0 = time.perf_counter()
    try:
        for name in args.configs:
            bench_config(args, name, ref, results)
    except RuntimeError as e:
        fail(1, str(e))
    print_table(args, results)
    print(f"\nwall time {time.perf_counter() - t0:.0f} s; load average now {os.getloadavg()[0]:.2f}")
    record = {"bench": "reference_step", "threads": args.threads, "rounds": args.rounds, "steps": args.steps,
              "reference_pass": args.reference_pass, "rows": results}
    if args.json:
        Path(args.json).write_text(json.dumps(record) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
