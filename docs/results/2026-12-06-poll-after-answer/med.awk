# median per (system, figure) of ab.sh's lines: @ rN system workload figure value
{ k = $3 " " $4 " " $5; v[k] = v[k] " " $6 }
END {
  for (k in v) {
    n = split(substr(v[k], 2), a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    m = n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    printf "%s %.1f [%s .. %s]\n", k, m, a[1], a[n]
  }
}
