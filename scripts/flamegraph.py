#!/usr/bin/env python3
"""Fold `perf script` output into a flame graph SVG (no dependencies).

    perf record -g -p PID -o perf.data -- sleep 5
    perf script -i perf.data | scripts/flamegraph.py "title" > out.svg

Each sample's stack (leaf last after reversal) adds one to every frame on
its path; frames are drawn bottom-up, width proportional to samples. Frames
narrower than 0.1% are merged away. Colours: kernel frames orange, lab's
own code blue, everything else grey.
"""
import html
import re
import sys
from collections import defaultdict

title = sys.argv[1] if len(sys.argv) > 1 else "flame graph"
stacks = defaultdict(int)
cur = []
comm = None


def flush():
    global cur, comm
    if cur and comm is not None:
        stacks[tuple([comm] + list(reversed(cur)))] += 1
    cur, comm = [], None


for line in sys.stdin:
    line = line.rstrip("\n")
    if not line.strip():
        flush()
        continue
    if not line.startswith((" ", "\t")):
        flush()
        comm = line.split()[0]
        continue
    parts = line.strip().split(None, 1)
    if len(parts) < 2:
        continue
    sym = re.sub(r"\+0x[0-9a-f]+$", "", parts[1].split(" (")[0])
    # Shorten Rust paths: drop the hash suffix and generic noise.
    sym = re.sub(r"::h[0-9a-f]{16}$", "", sym)
    cur.append(sym)
flush()

total = sum(stacks.values())
if total == 0:
    sys.exit("no samples")


class Node:
    __slots__ = ("name", "count", "kids")

    def __init__(self, name):
        self.name, self.count, self.kids = name, 0, {}


root = Node("all")
for st, n in stacks.items():
    root.count += n
    node = root
    for f in st:
        node = node.kids.setdefault(f, Node(f))
        node.count += n

W, H, PAD = 1600, 16, 10
rects = []
depth_max = 0


def walk(node, x, depth):
    global depth_max
    depth_max = max(depth_max, depth)
    rects.append((node, x, depth))
    for k in sorted(node.kids.values(), key=lambda k: -k.count):
        if k.count / total >= 0.001:
            walk(k, x, depth + 1)
        x += k.count


walk(root, 0, 0)
height = (depth_max + 1) * H + 3 * PAD + 20
out = [
    f'<svg xmlns="http://www.w3.org/2000/svg" width="{W + 2 * PAD}" height="{height}" '
    f'font-family="monospace" font-size="11">',
    f'<rect width="100%" height="100%" fill="#fff"/>',
    f'<text x="{PAD}" y="{PAD + 10}" font-size="14">{html.escape(title)} '
    f"({total} samples)</text>",
]
for node, x, depth in rects:
    w = node.count / total * W
    if w < 0.5:
        continue
    y = height - PAD - (depth + 1) * H
    n = node.name
    if n.startswith(("lab::", "<lab::")) or "dataplane" in n:
        color = "#7aa6d8"
    elif re.match(r"^[a-z_0-9.]+$", n) and "::" not in n:
        color = "#f0a860"
    else:
        color = "#c8c8c8"
    pct = 100 * node.count / total
    label = html.escape(n)
    out.append(
        f'<g><title>{label} ({node.count} samples, {pct:.1f}%)</title>'
        f'<rect x="{PAD + x / total * W:.1f}" y="{y}" width="{w:.1f}" height="{H - 1}" '
        f'fill="{color}"/>'
    )
    chars = int(w / 7)
    if chars >= 4:
        text = n if len(n) <= chars else n[: chars - 2] + ".."
        out.append(
            f'<text x="{PAD + x / total * W + 2:.1f}" y="{y + 11}">{html.escape(text)}</text>'
        )
    out.append("</g>")
out.append("</svg>")
print("\n".join(out))
