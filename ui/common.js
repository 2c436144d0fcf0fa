// common.js - what every page of factumd's admin UI shares (ADR 0029): the
// header, the --insecure banner, JSON and metrics fetches, and el(), which
// builds DOM nodes with text always set as text (never parsed as HTML).

export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export async function getJSON(url) {
  const r = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  if (!r.ok) throw new Error(`${url}: ${r.status} ${(await r.text()).trim()}`);
  return r.json();
}

// Prometheus text (GET /metrics) into { name: value } for samples without
// labels, and { name: [[labels, value], ...] } under name + '{}' for those with.
export async function getMetrics() {
  const r = await fetch('/metrics', { credentials: 'same-origin' });
  if (!r.ok) throw new Error(`/metrics: ${r.status}`);
  const out = {};
  for (const line of (await r.text()).split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (m[2]) (out[m[1] + '{}'] ||= []).push([m[2], v]);
    else out[m[1]] = v;
  }
  return out;
}

const PAGES = [['/ui/', 'Dashboard']];

// The header and, in --insecure mode, the banner. info: GET /info.
export function header(info) {
  const top = document.getElementById('top');
  const here = location.pathname;
  top.replaceChildren(
    el('a', { class: 'brand', href: '/ui/' }, 'factum'),
    el('nav', {}, PAGES.map(([href, name]) => el('a', { href, class: href === here ? 'here' : null }, name))),
    el('span', { class: 'version' }, info ? `factumd ${info.factumVersion}` : ''));
  if (info && info.authentication && info.authentication.type === 'insecure') {
    top.after(el('p', { class: 'banner', role: 'alert' },
      'Insecure mode: no TLS and no authentication — anyone who reaches this port is an administrator.'));
  }
}

export function showError(e) {
  const p = document.getElementById('error');
  if (!p) return;
  p.hidden = !e;
  p.textContent = e ? String(e.message || e) : '';
}

export function fmt(n, digits = 0) {
  if (n === undefined || n === null || Number.isNaN(n)) return '–';
  return n.toLocaleString('en-US', { maximumFractionDigits: digits });
}

export function bytes(n) {
  if (n === undefined || n === null) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${fmt(n, i ? 1 : 0)} ${u[i]}`;
}
