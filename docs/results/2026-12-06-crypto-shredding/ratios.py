#!/usr/bin/env python3
# Medians of sealbench.sh's raw lines (stdin), sealed / plain.
import collections, statistics, sys
d = collections.defaultdict(list)
for l in sys.stdin:
    p = l.split()
    if len(p) == 5 and p[0] == '@':
        d[(p[1], p[2], p[3])].append(float(p[4]))
for w, m in sorted(set((w, m) for (_, w, m) in d)):
    a, b = statistics.median(d[('plain', w, m)]), statistics.median(d[('sealed', w, m)])
    print(f"{w:8} {m:10} plain {a:12.1f}  sealed {b:12.1f}  sealed/plain {b / a:.3f}")
