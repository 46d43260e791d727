"""Seconds, predictor FLOPs and achieved GFLOP/s of one CEM plan at the reference sizes; prints one JSON object.

The model is the paper's PointMaze JEPA-WM predictor (``configs/pointmaze.yaml``: AdaLN, depth 6, width 384 + 16
proprio channels, 16 heads of 25), built by ``build_world_model`` with random weights (the cost of a plan does
not depend on them), at a 8×8 ("small") and a 16×16 ("paper") token grid. The encoder never runs: context and
goal latents are random. One plan = CEM with N candidates × J iterations of H-step rollouts from C context frames
(the package's ``model.rollout``, key/value cache), plus CEM's final evaluation of the mean; E episodes batched.
The C − 1 earlier context frames are run once per episode and cost call and their keys/values shared by the N
candidates (``model.rollout``'s shared context); ``--per-row-context`` runs them once per candidate instead.

Predictor FLOPs (2 per multiply-add; matmuls only, as ``torch.utils.flop_counter`` counts them) per episode::

    plan      = (J + 1) · prefill + (J·N + 1) · rollout            ((J·N + 1) · prefill with --per-row-context)
    prefill   = call(C − 1 frames, keys of C − 1 frames)           (absent when C = 1)
    rollout   = Σ_{h<H} call(1 frame, keys of k_h frames) + proprio
    call(T,K) = T·n·2·D·p + T·2·A·w + T·n·2·p·D                    (embed, action encoder, output projection)
              + depth · [ T·2·w·6w                                 (AdaLN modulation, once per frame)
                        + T·n·2·w·(3w + w + 2·m)                   (qkv, proj, MLP of hidden m)
                        + T·n·2·2·w·hd                             (RoPE: q and k times a dense hd × hd matrix)
                        + 2 · 2·(T·n)·(K·n)·w' ]                   (Q·Kᵀ and A·V over the cached keys)

with n tokens per frame, D the latent width, p = pred_dim, w = p + E the attention width, w' = heads × padded
head size (w without head padding), hd the head size, A the action width. k_h counts the frames the h-th step
attends to: every frame so far, or at most W with ``--kv-window W``. ``proprio`` is the small proprio
encoder/decoder. Elementwise work (norms, softmax, GELU, the cost) is not counted.

    python bench/plan_speed.py --quick                              # CPU smoke run, small budget
    python bench/plan_speed.py --sizes small --dtypes fp32 --samples 32 --iterations 3 --threads 2 \
        --keep-freed-memory --profile [--kv-window 2]              # the CPU anchor of the original's 15.7 s
    python bench/plan_speed.py --device cuda --sizes paper --pad-heads 0,32 [--compile] [--episodes 4]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from jepa_wms.config import load_config
from jepa_wms.layers import padded_head_dim, set_head_padding
from jepa_wms.planning.cem import CEMPlanner
from jepa_wms.planning.memory import bytes_per_row, retain_freed_memory, rollout_shape
from jepa_wms.planning.objectives import goal_cost
from jepa_wms.runtime import resolve_device
from jepa_wms.world_model import LatentState, WorldModel, build_world_model

SIZES = {"small": 8, "paper": 16}  # token grid side per named size
RAW_ACTION_DIM, PROPRIO_DIM = 2, 4  # PointMaze


def build_model(grid: int, depth: int, pred_dim: int, heads: int, device: torch.device) -> WorldModel:
    """The ``pointmaze`` config's world model at a ``grid``×``grid`` token grid (sizes 0 = the config's)."""
    cfg = load_config("pointmaze")
    enc, pred = cfg.model.encoder, cfg.model.predictor
    # A conv encoder of the same width and grid stands in for DINOv2 (no download; it never runs here).
    enc.type, enc.name, enc.weights, enc.grid_size, enc.img_size = "conv", "", "", grid, 8 * grid
    pred.depth, pred.pred_dim, pred.num_heads = depth or pred.depth, pred_dim or pred.pred_dim, heads or pred.num_heads
    torch.manual_seed(0)
    model = build_world_model(cfg.model, raw_action_dim=RAW_ACTION_DIM, proprio_dim=PROPRIO_DIM, frameskip=5)
    return model.to(device).eval()


def plan_flops(
    model: WorldModel,
    samples: int,
    iterations: int,
    horizon: int,
    context: int,
    kv_window: int,
    shared_context: bool = True,
) -> dict:
    """Predictor FLOPs of one episode's plan (module docstring), split into linear layers and attention."""
    pred = model.predictor
    n, dim, p, w = pred.num_tokens, pred.embed_dim, pred.pred_dim, pred.total_dim
    depth, act = len(pred.predictor_blocks), pred.action_dim
    attn = pred.predictor_blocks[0].attn
    hidden = pred.predictor_blocks[0].mlp.fc1.out_features
    w_exec = attn.num_heads * padded_head_dim(attn.head_dim, attn.pad_heads_to)

    # Standard RoPE rotates q and k with one dense (hd × hd) matrix per token (an einsum), before any padding.
    rope = 0 if pred.rope.legacy or pred.rope.rotated_dim == 0 else 2 * 2 * w * attn.head_dim

    def call(frames: int, key_frames: int) -> tuple[int, int]:
        linear = frames * n * 2 * dim * p + frames * 2 * act * w + frames * n * 2 * p * dim
        linear += depth * (frames * 2 * w * 6 * w + frames * n * (2 * w * (4 * w + 2 * hidden) + rope))
        return linear, depth * 2 * 2 * (frames * n) * (key_frames * n) * w_exec

    rollouts = iterations * samples + 1
    # CEM's cost calls (one per iteration, one for the final mean), each running the shared prefill once.
    prefills = iterations + 1 if shared_context else rollouts
    linear = attention = 0
    kept = 0  # frames whose keys the cache holds before a call (PredictorCache.advance)
    if context > 1:
        lin, att = call(context - 1, context - 1)
        linear, attention = prefills * lin, prefills * att
        kept = min(context - 1, kv_window - 1) if kv_window > 0 else context - 1
    for _ in range(horizon):
        lin, att = call(1, kept + 1)
        linear, attention = linear + rollouts * lin, attention + rollouts * att
        kept = min(kept + 1, kv_window - 1) if kv_window > 0 else kept + 1
    if model.proprio_encoder is not None:  # context embedding, then a re-embedding of every predicted step
        enc = model.proprio_encoder.proj
        linear += (prefills * context + rollouts * horizon) * 2 * enc.in_features * enc.out_features
    if model.proprio_decoder is not None:
        dec = model.proprio_decoder.proj
        linear += rollouts * horizon * 2 * dec.in_features * dec.out_features
    return {"linear": linear, "attention": attention, "total": linear + attention}


def cost_fn(
    model: WorldModel,
    context: LatentState,
    ctx_actions: torch.Tensor | None,
    goal: LatentState,
    kv_window: int,
    shared_context: bool = True,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``(E, S, H, A) -> (E, S)`` as ``planning.dynamics.latent_goal_cost_fn``, but from C >= 1 context frames.

    ``shared_context`` gives ``model.rollout`` the E contexts once (their earlier frames run once, shared by the S
    candidates); otherwise each is repeated S times and run per candidate row.
    """

    def cost(candidates: torch.Tensor) -> torch.Tensor:
        e, s = candidates.shape[:2]

        def rep(x: torch.Tensor | None) -> torch.Tensor | None:
            return x if x is None or shared_context else x.repeat_interleave(s, dim=0)

        ctx = LatentState(rep(context.visual), rep(context.proprio))
        pred = model.rollout(ctx, candidates.flatten(0, 1), rep(ctx_actions), kv_window=kv_window)
        last_p = pred.proprio[:, -1].float().unflatten(0, (e, s))
        last_z = pred.visual[:, -1].float().unflatten(0, (e, s))
        return goal_cost(last_z, goal.visual[:, 0], last_p, goal.proprio[:, 0], 0.1, "L2")

    return cost


def sdpa_backends(heads: int, head_dim: int, dtype: torch.dtype, device: torch.device) -> list[str] | str:
    """The SDPA backends that accept a (1, heads, 64, head_dim) query of ``dtype`` here (CUDA only)."""
    if device.type != "cuda":
        return "n/a (cpu)"
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(1, heads, 64, head_dim, device=device, dtype=dtype)
    usable = []
    for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION):
        try:
            with sdpa_kernel([backend]):
                torch.nn.functional.scaled_dot_product_attention(q, q, q)
            usable.append(backend.name.lower())
        except RuntimeError:
            pass
    return usable + ["math"]


@contextlib.contextmanager
def sdpa_choice(name: str, device: torch.device) -> Iterator[None]:
    """Restrict SDPA to one backend (``--sdpa``); ``auto`` leaves PyTorch's choice."""
    if name == "auto" or device.type != "cuda":
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION}
    backend |= {"cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}
    with sdpa_kernel([backend[name]]):
        yield


def _cpu_sdpa_mapping() -> dict:
    """FlopCounterMode counts the CUDA SDPA kernels but not the CPU one (torch 2.13): count it the same way."""
    from torch.utils.flop_counter import sdpa_flop_count

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None:
        return {}

    def flops(query: torch.Size, key: torch.Size, value: torch.Size, *args: Any, **kwargs: Any) -> int:
        return sdpa_flop_count(query, key, value)

    return {op: flops}


# Operator classes of a CPU plan's profile: the matmuls plan_flops counts as linear (bmm: RoPE's einsum), attention.
LINEAR_OPS = {"aten::addmm", "aten::mm", "aten::bmm"}
ATTENTION_OPS = ("scaled_dot_product", "flash_attention")


def time_split(run_plan: Callable[[], None], seconds: float, flops: dict) -> dict:
    """Where one CPU plan's time goes: linear layers, attention and the rest (norms, GELU, copies, CEM).

    Profiles one more plan and scales each class's share of operator self time to ``seconds`` (the unprofiled
    plan). ``ceiling_if_only_linear`` is how many times faster than now a plan could get if attention and all the
    rest cost nothing: the headroom left at the linear layers' achieved rate. ``floor_seconds_at_peak`` is the
    plan's matmul FLOPs at the CPU's large-matmul rate: no exact fp32 plan on this machine gets below it.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_plan()
    split = {"linear": 0.0, "attention": 0.0, "other": 0.0}
    for event in prof.key_averages():
        kind = "linear" if event.key in LINEAR_OPS else "other"
        kind = "attention" if any(a in event.key for a in ATTENTION_OPS) else kind
        split[kind] += event.self_cpu_time_total
    total = sum(split.values())
    seconds_by = {k: seconds * v / total for k, v in split.items()}
    peak = matmul_peak_gflop_per_s()
    return {
        "seconds": {k: round(v, 5) for k, v in seconds_by.items()},
        "matmul_peak_gflop_per_s": round(peak, 1),
        "floor_seconds_at_peak": round(flops["total"] / peak / 1e9, 3),
        "linear_gflop_per_s": round(flops["linear"] / seconds_by["linear"] / 1e9, 1),
        "attention_gflop_per_s": round(flops["attention"] / max(seconds_by["attention"], 1e-9) / 1e9, 1),
        "ceiling_if_only_linear": round(seconds / seconds_by["linear"], 3),
    }


def matmul_peak_gflop_per_s(size: int = 4096, repeats: int = 3) -> float:
    """The CPU's fp32 matmul rate on one large square product (best of ``repeats``): the floor's yardstick."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_config(args: argparse.Namespace, size: str, grid: int, dtype_name: str, pad: int, device: torch.device) -> dict:
    """Build, warm up and time one (size, dtype, head padding) configuration; one result row."""
    model = build_model(grid, args.depth, args.pred_dim, args.heads, device)
    set_head_padding(model, pad)
    pred, attn = model.predictor, model.predictor.predictor_blocks[0].attn
    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    hd_exec = padded_head_dim(attn.head_dim, pad)
    speedups = {
        "kv_cache": pred.context_window == 0,
        "kv_window": args.kv_window,
        "shared_context": not args.per_row_context,
        "pad_heads": pad,
        "compile": "reduce-overhead" if args.cuda_graphs else ("default" if args.compile else False),
        "sdpa": args.sdpa,
        "tf32": device.type == "cuda" and dtype_name == "fp32" and not args.no_tf32,
        "episodes_batched": args.episodes,
        "keep_freed_memory": args.keep_freed_memory,
    }
    row: dict[str, Any] = {
        "size": size,
        "grid": grid,
        "tokens_per_frame": pred.num_tokens,
        "depth": len(pred.predictor_blocks),
        "width": pred.total_dim,
        "heads": attn.num_heads,
        "head_dim": attn.head_dim,
        "head_dim_executed": hd_exec,
        "dtype": dtype_name,
        "speedups": speedups,
        "sdpa_backends_usable": sdpa_backends(attn.num_heads, hd_exec, dtype, device),
    }
    shared = not args.per_row_context
    flops = plan_flops(model, args.samples, args.iterations, args.horizon, args.context, args.kv_window, shared)
    row["predictor_gflop_per_plan"] = round(flops["total"] / 1e9, 3)
    row["attention_share"] = round(flops["attention"] / flops["total"], 4)
    # planning.memory's estimate, scaled by the padded head size (the cache stores padded keys and values).
    row_bytes = bytes_per_row(rollout_shape(pred), args.horizon, args.kv_window, 2 if dtype_name == "bf16" else 4)
    row["memory_gb_per_episode_est"] = round(row_bytes * args.samples * hd_exec / attn.head_dim / 1e9, 3)

    gens = [torch.Generator(device).manual_seed(i) for i in range(args.episodes)]
    e, c, n, d = args.episodes, args.context, pred.num_tokens, pred.embed_dim
    context = LatentState(torch.randn(e, c, n, d, device=device), torch.randn(e, c, PROPRIO_DIM, device=device))
    goal = LatentState(torch.randn(e, 1, n, d, device=device), torch.randn(e, 1, PROPRIO_DIM, device=device))
    ctx_actions = torch.randn(e, c - 1, model.action_dim, device=device) if c > 1 else None
    cost = cost_fn(model, context, ctx_actions, goal, args.kv_window, shared)
    planner = CEMPlanner(num_samples=args.samples, iterations=args.iterations, num_elites=min(10, args.samples))
    autocast = torch.autocast(device.type, torch.bfloat16) if dtype_name == "bf16" else contextlib.nullcontext()

    def plan(p: CEMPlanner) -> None:
        with torch.no_grad(), autocast, sdpa_choice(args.sdpa, device):
            p.plan(cost, e, args.horizon, model.action_dim, gens, device=device)

    if args.compile or args.cuda_graphs:
        mode = "reduce-overhead" if args.cuda_graphs else "default"
        for block in pred.predictor_blocks:  # identical blocks share one compiled graph
            block.compile(mode=mode)
    # Warm-up (allocator, kernels, compilation): two iterations reach every shape a full plan has.
    t0 = time.perf_counter()
    plan(dataclasses.replace(planner, iterations=min(2, args.iterations)))
    _sync(device)
    row["warmup_seconds"] = round(time.perf_counter() - t0, 3)
    times = []
    for _ in range(args.repeats):
        _sync(device)
        t0 = time.perf_counter()
        plan(planner)
        _sync(device)
        times.append(time.perf_counter() - t0)
    best = min(times)
    row["seconds_per_plan"] = round(best, 4)  # one batched call planning all E episodes
    row["seconds_per_episode"] = round(best / e, 4)
    row["gflop_per_s"] = round(flops["total"] * e / best / 1e9, 2)
    if device.type == "cuda":
        row["peak_memory_gb"] = round(torch.cuda.max_memory_allocated(device) / 1e9, 3)
    if args.profile:
        row["time_split"] = time_split(lambda: plan(planner), best, {k: v * e for k, v in flops.items()})
    if args.count_flops:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False, custom_mapping=_cpu_sdpa_mapping())
        with counter:
            plan(planner)
        row["flops_counted_per_plan"] = counter.get_total_flops() / e
        row["flops_analytic_per_plan"] = flops["total"]
    return row


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--sizes", default="small,paper", help="comma list of small (8×8), paper (16×16) or a grid side")
    p.add_argument("--dtypes", default="fp32,bf16", help="comma list of fp32, bf16 (autocast)")
    p.add_argument("--pad-heads", default="0", help="comma list of head-size multiples (0 = no head padding)")
    p.add_argument("--samples", type=int, default=300, help="N, CEM candidates per episode")
    p.add_argument("--iterations", type=int, default=30, help="J, CEM iterations")
    p.add_argument("--horizon", type=int, default=6, help="H, rollout steps")
    p.add_argument("--context", type=int, default=2, help="C, context frames (C - 1 prefilled once per episode)")
    p.add_argument("--episodes", type=int, default=1, help="E, episodes planned in one batch")
    p.add_argument("--kv-window", type=int, default=0, help="plan.kv_window (0 = keep every frame)")
    p.add_argument(
        "--per-row-context", action="store_true", help="run the C - 1 earlier context frames per candidate, unshared"
    )
    p.add_argument("--depth", type=int, default=0, help="override the predictor depth (0 = the paper's)")
    p.add_argument("--pred-dim", type=int, default=0, help="override pred_dim (0 = the paper's 384)")
    p.add_argument("--heads", type=int, default=0, help="override the head count (0 = the paper's 16)")
    p.add_argument("--repeats", type=int, default=1, help="timed plans per configuration (best kept)")
    p.add_argument("--sdpa", default="auto", choices=["auto", "flash", "efficient", "cudnn", "math"])
    p.add_argument("--compile", action="store_true", help="torch.compile every predictor block")
    p.add_argument("--cuda-graphs", action="store_true", help="compile with mode=reduce-overhead (experimental)")
    p.add_argument("--no-tf32", action="store_true", help="keep fp32 matmuls in full fp32 on CUDA")
    p.add_argument("--count-flops", action="store_true", help="also count one plan with FlopCounterMode")
    p.add_argument(
        "--profile", action="store_true", help="CPU: profile one more plan, split its time (linear, attention, other)"
    )
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    p.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="glibc keeps freed memory for reuse (planning.memory.retain_freed_memory): fewer page faults on CPU",
    )
    p.add_argument("--quick", action="store_true", help="small budget: N=16, J=2, H=3 (smoke test)")
    args = p.parse_args(argv)
    if args.profile and resolve_device(args.device).type != "cpu":
        p.error("--profile splits CPU operator time; run it with --device cpu")
    if args.quick:
        args.samples, args.iterations, args.horizon = 16, 2, 3
    if min(args.samples, args.iterations, args.horizon, args.context, args.episodes, args.repeats) < 1:
        p.error("--samples, --iterations, --horizon, --context, --episodes and --repeats must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.keep_freed_memory and not retain_freed_memory():
        print("--keep-freed-memory: this C library has no usable mallopt; ignored", file=sys.stderr)
        args.keep_freed_memory = False
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        # TF32 tensor cores for fp32 matmuls: what "fp32" means on a GPU unless --no-tf32.
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = not args.no_tf32
    out: dict[str, Any] = {
        "bench": "plan_speed",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "budget": {
            "samples": args.samples,
            "iterations": args.iterations,
            "horizon": args.horizon,
            "context_frames": args.context,
            "episodes": args.episodes,
            "rollouts_per_episode": args.iterations * args.samples + 1,
        },
        "flops": "predictor matmul FLOPs (2 per multiply-add) per episode's plan; formula: bench/plan_speed.py",
        "results": [],
    }
    for size in args.sizes.split(","):
        grid = SIZES[size] if size in SIZES else int(size)
        for dtype_name in args.dtypes.split(","):
            for pad in (int(x) for x in args.pad_heads.split(",")):
                try:
                    row = run_config(args, size, grid, dtype_name, pad, device)
                except Exception as exc:  # e.g. out of memory or a compile failure: report it, go on
                    row = {"size": size, "dtype": dtype_name, "pad_heads": pad, "error": f"{type(exc).__name__}: {exc}"}
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(device)
                out["results"].append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)  # partial results survive a timeout
    print(json.dumps(out))


if __name__ == "__main__":
    main()
