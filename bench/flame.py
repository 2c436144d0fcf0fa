#!/usr/bin/env python3
"""bench/flame.py TITLE < perf-script-output > out.svg

Folds the call stacks that `perf script` prints (one sample: a header line,
then one frame per line, innermost first, then a blank line) and draws them
as a flame graph: the root at the bottom, each frame as wide as the share of
samples it appears in, callers below callees. Frames are named by function
(the module when the symbol is unknown). Hovering a frame shows its name,
samples and share. Written for factum's benchmarks (bench/profile-flame.sh).
"""
import html
import re
import sys
from collections import defaultdict

def fold(lines):
    stacks = defaultdict(int)
    frames = []
    thread = None
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if frames:
                stacks[tuple([thread] + frames[::-1])] += 1
            frames, thread = [], None
            continue
        if not line.startswith((" ", "\t")):
            thread = line.split()[0]  # the command (thread name)
            continue
        parts = line.strip().split(None, 1)
        if len(parts) < 2:
            continue
        sym = parts[1]
        m = re.match(r"(.*?)\s+\((.*)\)$", sym)
        name, mod = (m.group(1), m.group(2)) if m else (sym, "")
        name = re.sub(r"\+0x[0-9a-f]+$", "", name)
        if name == "[unknown]":
            name = "[" + mod.rsplit("/", 1)[-1] + "]"
        frames.append(name)
    if frames:
        stacks[tuple([thread] + frames[::-1])] += 1
    return stacks

def tree(stacks):
    root = {"n": 0, "c": {}}
    for st, n in stacks.items():
        node = root
        node["n"] += n
        for f in st:
            node = node["c"].setdefault(f, {"n": 0, "c": {}})
            node["n"] += n
    return root

def colour(name):
    h = 0
    for ch in name:
        h = (h * 31 + ord(ch)) & 0xFFFFFF
    if name.startswith("["):
        return "rgb(180,180,180)"
    kernel = name.startswith(("__x64", "do_", "entry_", "sys_", "tcp_", "ip_", "__sys", "schedule", "finish_task",
                              "ep_", "sock_", "__GI", "futex", "pvm_", "__schedule", "x64_"))
    if kernel:
        return "rgb(%d,%d,%d)" % (200 + h % 50, 120 + (h >> 8) % 60, 40 + (h >> 16) % 40)
    return "rgb(%d,%d,%d)" % (220 + h % 35, 80 + (h >> 8) % 120, 30 + (h >> 16) % 50)

def main():
    title = sys.argv[1] if len(sys.argv) > 1 else "flame graph"
    stacks = fold(sys.stdin)
    root = tree(stacks)
    total = root["n"] or 1
    width, rowh, minw = 1200, 16, 0.5
    rects = []
    depth_max = [0]

    def walk(node, x, depth, name):
        w = node["n"] / total * (width - 20)
        if w < minw:
            return
        if name is not None:
            rects.append((x, depth, w, name, node["n"]))
            depth_max[0] = max(depth_max[0], depth)
        cx = x
        for cname, child in sorted(node["c"].items()):
            walk(child, cx, depth + 1 if name is not None else depth, cname)
            cx += child["n"] / total * (width - 20)

    walk(root, 10, 0, None)
    height = (depth_max[0] + 1) * rowh + 60
    out = ['<?xml version="1.0" standalone="no"?>',
           '<svg version="1.1" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg" '
           'font-family="Verdana" font-size="11">' % (width, height),
           '<rect x="0" y="0" width="100%" height="100%" fill="rgb(250,250,240)"/>',
           '<text x="%d" y="24" text-anchor="middle" font-size="16">%s (%d samples)</text>'
           % (width / 2, html.escape(title), total)]
    for x, depth, w, name, n in rects:
        y = height - 20 - (depth + 1) * rowh
        label = html.escape(name)
        out.append('<g><title>%s: %d samples (%.2f%%)</title><rect x="%.1f" y="%d" width="%.1f" height="%d" '
                   'fill="%s" rx="2"/>' % (label, n, 100.0 * n / total, x, y, w, rowh - 1, colour(name)))
        chars = int(w / 7)
        if chars >= 3:
            text = name if len(name) <= chars else name[: chars - 2] + ".."
            out.append('<text x="%.1f" y="%d">%s</text>' % (x + 3, y + rowh - 4, html.escape(text)))
        out.append("</g>")
    out.append("</svg>")
    sys.stdout.write("\n".join(out) + "\n")

if __name__ == "__main__":
    main()
