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

// Every request says X-Requested-With, so that a 401 opens no browser dialog
// (the page signs in itself); a change carries the session's CSRF token.
let csrf = null;

async function call(url, opts = {}) {
  const headers = { 'X-Requested-With': 'factum-ui', ...(opts.headers || {}) };
  if (opts.method && opts.method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  const r = await fetch(url, { credentials: 'same-origin', ...opts, headers });
  if (r.status === 401) {
    location.assign(`/ui/login.html?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new Error('not signed in');
  }
  if (!r.ok) throw new Error(`${url}: ${r.status} ${(await r.text()).trim()}`);
  return r;
}

export async function getJSON(url) {
  return (await call(url, { headers: { Accept: 'application/json' } })).json();
}

export async function send(method, url, body) {
  const opts = { method };
  if (body !== undefined) {
    opts.body = typeof body === 'string' ? body : JSON.stringify(body);
    opts.headers = { 'Content-Type': 'application/json' };
  }
  return call(url, opts);
}

// Who is signed in (GET /ui/api/session; the sign-in page if nobody), and the
// session's CSRF token for the changes this page makes.
export async function session() {
  const s = await getJSON('/ui/api/session');
  csrf = s.csrf || null;
  return s;
}

// Prometheus text (GET /metrics) into { name: value } for samples without
// labels, and { name: [[labels, value], ...] } under name + '{}' for those with.
export async function getMetrics() {
  const r = await call('/metrics');
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

const PAGES = [['/ui/', 'Dashboard'], ['/ui/streams.html', 'Streams'], ['/ui/subscriptions.html', 'Subscriptions'], ['/ui/readmodels.html', 'Read models'], ['/ui/projections.html', 'Projections'], ['/ui/operations.html', 'Operations'], ['/ui/users.html', 'Users']];

// The header (the user, sign out) and, in --insecure mode, the banner.
// info: GET /info; who: session().
export function header(info, who) {
  const top = document.getElementById('top');
  const here = location.pathname;
  const out = async () => {
    try { await send('POST', '/ui/api/logout'); } catch (e) { /* signed out anyway */ }
    location.assign('/ui/login.html');
  };
  top.replaceChildren(
    el('a', { class: 'brand', href: '/ui/' }, 'factum'),
    el('nav', {}, PAGES.map(([href, name]) => el('a', { href, class: href === here ? 'here' : null }, name))),
    el('span', { class: 'version' }, info ? `factumd ${info.factumVersion}` : ''),
    ...(who && !who.insecure ? [el('span', { class: 'who' }, el('span', { id: 'who' }, who.login),
      el('button', { id: 'signout', type: 'button', onclick: out }, 'Sign out'))] : []));
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

// A page's common start: who is signed in (or the sign-in page), the node's
// info, the header. Returns { who, info }, or null after showing the error.
export async function start() {
  try {
    const who = await session();
    const info = await getJSON('/info');
    header(info, who);
    return { who, info };
  } catch (e) {
    showError(e);
    return null;
  }
}

export function when(ms) {
  return ms ? new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : '–';
}

// An event's data or metadata as the API gives it (a JSON value, or
// {base64}) into text: JSON pretty-printed, binary as hex.
export function pretty(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object' && v !== null && Object.keys(v).length === 1 && typeof v.base64 === 'string') {
    const bin = atob(v.base64);
    let hex = '';
    for (let i = 0; i < bin.length; i++) {
      hex += bin.charCodeAt(i).toString(16).padStart(2, '0') + ((i + 1) % 16 ? ' ' : '\n');
    }
    return hex.trimEnd();
  }
  return JSON.stringify(v, null, 2);
}

// Before a destructive change: the page's <dialog id="confirm"> asks for a
// name (its #confirm-name input; #confirm-ok, labelled action if given, stays
// disabled until the name is typed exactly). True to go on.
export function confirmName(text, name, action) {
  const d = document.getElementById('confirm');
  const input = document.getElementById('confirm-name');
  const ok = document.getElementById('confirm-ok');
  document.getElementById('confirm-text').textContent = text;
  if (action) ok.textContent = action;
  input.value = '';
  ok.disabled = true;
  input.oninput = () => { ok.disabled = input.value !== name; };
  d.showModal();
  return new Promise((resolve) => { d.onclose = () => resolve(d.returnValue === 'ok' && input.value === name); });
}
