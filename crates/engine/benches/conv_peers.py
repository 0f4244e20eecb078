#!/usr/bin/env python3
"""The peer of `conv_speed`: the same 3x3 convolution shapes through PyTorch (cuDNN, fp16 and
fp32, channels-last, bias added inside, the nearest x2 upsampling before conv_up timed with it),
on the GPU of the machine it runs on. Prints one JSON object per measurement, in the bench's
fields, so the two outputs sit side by side.

    python3 crates/engine/benches/conv_peers.py [SIDE]

Needs PyTorch with CUDA (the lent H200's); not part of the test suite.
"""
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

SIDE = int(sys.argv[1]) if len(sys.argv) > 1 else 512
# (name, cin, cout, output side in eighths of SIDE, upsample) as in conv_speed.rs
SHAPES = [
    ("rrdb.conv_first 3->64", 3, 64, 8, 1),
    ("rrdb.rdb.conv1 64->32", 64, 32, 8, 1),
    ("rrdb.rdb.conv2 96->32", 96, 32, 8, 1),
    ("rrdb.rdb.conv3 128->32", 128, 32, 8, 1),
    ("rrdb.rdb.conv4 160->32", 160, 32, 8, 1),
    ("rrdb.rdb.conv5 192->64", 192, 64, 8, 1),
    ("rrdb.conv_body 64->64", 64, 64, 8, 1),
    ("rrdb.conv_up1 64->64 (x2 in)", 64, 64, 16, 2),
    ("rrdb.conv_up2 64->64 (x2 in)", 64, 64, 32, 2),
    ("rrdb.conv_hr 64->64 (x4)", 64, 64, 32, 1),
    ("rrdb.conv_last 64->3 (x4)", 64, 3, 32, 1),
    ("compact.last 64->48", 64, 48, 8, 1),
]


def best_seconds(fn):
    """As conv_speed: after at least WARM_S seconds of runs (the GPU's clocks rise from idle
    over tens of milliseconds; shorter runs time a slower GPU), the best of three batches of at
    least BATCH_S seconds each, one synchronisation a batch."""
    fn()
    torch.cuda.synchronize()
    runs, t = 0, time.perf_counter()
    while time.perf_counter() - t < WARM_S:
        for _ in range(5):
            fn()
        torch.cuda.synchronize()
        runs += 5
    reps = max(10, min(1000, math.ceil(BATCH_S / ((time.perf_counter() - t) / runs))))
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t) / reps)
    return best


WARM_S, BATCH_S = 0.3, 0.05
torch.backends.cudnn.benchmark = True
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
problems = [(name, cin, cout, SIDE * e // 8, SIDE * e // 8, up) for name, cin, cout, e, up in SHAPES]
problems.append(("issue: 64->64 1920x1080", 64, 64, 1080, 1920, 1))
name_of = {torch.half: "f16", torch.float: "f32"}
with torch.no_grad():
    for name, cin, cout, h, w, up in problems:
        for dtype in (torch.half, torch.float):
            x = torch.rand(1, cin, h // up, w // up, device="cuda", dtype=dtype).to(memory_format=torch.channels_last)
            wt = (torch.rand(cout, cin, 3, 3, device="cuda", dtype=dtype) - 0.5).to(memory_format=torch.channels_last)
            b = torch.rand(cout, device="cuda", dtype=dtype)

            def run():
                y = F.interpolate(x, scale_factor=up, mode="nearest") if up > 1 else x
                return F.conv2d(y, wt, b, padding=1)

            s = best_seconds(run)
            flops = 2.0 * h * w * 9 * cin * cout
            print(json.dumps({"device": torch.cuda.get_device_name(), "conv": name, "dtype": name_of[dtype],
                              "kernel": "pytorch cudnn (channels-last)", "ms": s * 1e3,
                              "tflops": flops / s / 1e12}), flush=True)
