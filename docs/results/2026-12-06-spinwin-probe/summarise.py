#!/usr/bin/env python3
"""Medians [min-max] per build of ab.sh's output: the insecure and TLS + auth
figures and their ratio. Usage: summarise.py ab-output.txt"""
import collections, re, statistics, sys

vals = collections.defaultdict(list)
build = None
for line in open(sys.argv[1]):
    m = re.match(r'== round \d+ build (\w+)', line)
    if m:
        build = m.group(1)
        continue
    cells = [c.strip() for c in line.strip().strip('|').split('|')]
    if build and len(cells) == 5 and cells[1] in ('ev_per_s', 'calls_per_s', 'p50_us'):
        w, fig, ins, tls, ratio = cells
        vals[(w, fig, build, 'insecure')].append(float(ins))
        vals[(w, fig, build, 'TLS')].append(float(tls))
        vals[(w, fig, build, 'TLS/insecure')].append(float(ratio))
for k in sorted(vals):
    v = vals[k]
    print('%-7s %-12s build %s %-13s median %10.3f  [%.3f-%.3f]  n=%d' % (k + (statistics.median(v), min(v), max(v), len(v))))
