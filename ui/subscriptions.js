// subscriptions.js - consumer groups and catch-up subscriptions (GET
// /api/subscriptions, every 2 s). A group in detail (GET /api/subscription):
// its consumers, its parked messages (read from its parked stream) replayed
// or truncated, its settings updated (POST); a group created (PUT) or
// deleted (DELETE, confirmed by its name). Below, the open catch-up
// subscriptions with their lag.
import { el, getJSON, send, start, showError, fmt, when, confirmName } from '/ui/common.js';

// A group's settings as KurrentDB's HTTP API names them: [key, label, kind].
const SETTINGS = [
  ['startFrom', 'Start from (-1 end, 0 start, or N)', 'int'],
  ['namedConsumerStrategy', 'Consumer strategy', ['RoundRobin', 'DispatchToSingle', 'Pinned', 'PinnedByCorrelation']],
  ['messageTimeoutMilliseconds', 'Message timeout (ms)', 'int'],
  ['maxRetryCount', 'Retries before parking', 'int'],
  ['maxSubscriberCount', 'Most consumers (0: no limit)', 'int'],
  ['liveBufferSize', 'Live buffer', 'int'],
  ['bufferSize', 'History buffer', 'int'],
  ['readBatchSize', 'Read batch', 'int'],
  ['checkPointAfterMilliseconds', 'Checkpoint after (ms)', 'int'],
  ['minCheckPointCount', 'Checkpoint at least every', 'int'],
  ['maxCheckPointCount', 'Checkpoint at most every', 'int'],
  ['resolveLinktos', 'Resolve links', 'bool'],
  ['extraStatistics', 'Extra statistics', 'bool'],
];
const DEFAULTS = {
  startFrom: -1, namedConsumerStrategy: 'RoundRobin', messageTimeoutMilliseconds: 30000, maxRetryCount: 10,
  maxSubscriberCount: 0, liveBufferSize: 500, bufferSize: 500, readBatchSize: 20, checkPointAfterMilliseconds: 2000,
  minCheckPointCount: 10, maxCheckPointCount: 1000, resolveLinktos: false, extraStatistics: false,
};

let selected = null; // { stream, group } shown in detail
let detail = null;   // its last GET /api/subscription

const q = (g) => `stream=${encodeURIComponent(g.stream)}&group=${encodeURIComponent(g.group)}`;

function note(text) {
  const ok = document.getElementById('ok');
  ok.hidden = false;
  ok.textContent = text;
  showError(null);
}

// Inputs for the settings into form (ids prefix + key), filled from config.
function settingsInputs(prefix, config) {
  return SETTINGS.map(([key, label, kind]) => {
    const id = `${prefix}${key}`;
    if (kind === 'bool') {
      return el('label', { class: 'check' }, el('input', { id, type: 'checkbox', checked: !!config[key] }), label);
    }
    if (Array.isArray(kind)) {
      return el('label', {}, label, el('select', { id },
        kind.map((v) => el('option', { value: v, selected: v === config[key] }, v))));
    }
    return el('label', {}, label, el('input', { id, type: 'number', step: 1, value: config[key], required: true }));
  });
}

function settingsRead(prefix) {
  const out = {};
  for (const [key, , kind] of SETTINGS) {
    const e = document.getElementById(`${prefix}${key}`);
    out[key] = kind === 'bool' ? e.checked : Array.isArray(kind) ? e.value : Number(e.value);
  }
  return out;
}

async function act(method, url, text) {
  try {
    await send(method, url);
    note(text);
    await refresh();
  } catch (e) {
    showError(e);
  }
}

function select(g) {
  selected = { stream: g.stream, group: g.group };
  detail = null;
  document.getElementById('create').hidden = true;
  refresh();
}

async function showGroup() {
  const sec = document.getElementById('group');
  if (!selected) {
    sec.hidden = true;
    return;
  }
  let d;
  try {
    d = await getJSON(`/api/subscription?${q(selected)}`);
  } catch (e) {
    selected = null;
    sec.hidden = true;
    throw e;
  }
  const first = !detail;
  detail = d;
  sec.hidden = false;
  sec.dataset.group = d.groupName;
  sec.dataset.stream = d.eventStreamId;
  document.getElementById('g-title').textContent = `${d.groupName} on ${d.eventStreamId}`;
  const status = [['Status', d.status], ['Lag', `${fmt(d.lagEvents)} events, ${fmt(d.lagSeconds, 1)} s`],
    ['Delivered', fmt(d.totalItemsProcessed)], ['Per second', fmt(d.averageItemsPerSecond)],
    ['In flight', fmt(d.totalInFlightMessages)], ['Waiting', fmt(d.outstandingMessagesCount)],
    ['Retry queue', fmt(d.retryBufferCount)], ['Parked', fmt(d.parkedMessageCount)],
    ['Last checkpoint', d.lastCheckpointedEventPosition || '–'], ['Last read', d.lastKnownEventPosition || '–']];
  if (d.config.filter) {
    const f = d.config.filter;
    status.push(['Filter', `${f.on === 'stream' ? 'stream name' : 'event type'} ${f.regex ? `/${f.regex}/` : (f.prefixes || []).join(', ')}`]);
  }
  document.getElementById('g-status').replaceChildren(...status.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { 'data-k': k }, v)]));
  document.querySelector('#members tbody').replaceChildren(...d.connections.map((c) =>
    el('tr', {}, el('td', {}, c.connectionName || '–'), el('td', {}, c.from), el('td', {}, c.username),
      el('td', { class: 'num' }, fmt(c.inFlightMessages)), el('td', { class: 'num' }, fmt(c.availableSlots)),
      el('td', { class: 'num' }, fmt(c.totalItemsProcessed)))));
  document.getElementById('no-members').hidden = d.connections.length > 0;
  const link = document.getElementById('g-parked-stream');
  link.href = `/ui/stream.html?name=${encodeURIComponent(d.parkedStream)}`;
  let parked = [];
  let why = 'No parked messages.';
  if (d.parkedMessageCount > 0) {
    // The parked stream holds links ($>) to the messages, the oldest first
    // after its truncate-before point; the newest 50 here. Reading it needs
    // read access to that system stream ($admins by default).
    try {
      parked = (await getJSON(`/api/stream?name=${encodeURIComponent(d.parkedStream)}&dir=backward&limit=50`)).events;
    } catch (e) {
      why = `${fmt(d.parkedMessageCount)} parked; they cannot be listed here: ${e.message}`;
    }
  }
  document.querySelector('#parked tbody').replaceChildren(...parked.map((p) => {
    const t = p.target;
    return el('tr', { 'data-version': p.version },
      el('td', { class: 'num' }, fmt(p.version)),
      el('td', {}, t ? el('a', { href: `/ui/stream.html?name=${encodeURIComponent(t.stream)}` }, `${t.version}@${t.stream}`)
        : '(gone)'),
      el('td', {}, t ? t.type : ''),
      el('td', {}, when(p.time)));
  }));
  document.getElementById('no-parked').hidden = parked.length > 0;
  document.getElementById('no-parked').textContent = why;
  document.getElementById('g-replay').disabled = d.parkedMessageCount === 0;
  document.getElementById('g-truncate').disabled = d.parkedMessageCount === 0;
  if (first) {
    const form = document.getElementById('settings');
    form.replaceChildren(...settingsInputs('s-', d.config),
      el('p', { class: 'bar' }, el('button', { type: 'submit', id: 's-save' }, 'Save settings')));
  }
}

async function refresh() {
  try {
    const r = await getJSON('/api/subscriptions');
    document.querySelector('#groups tbody').replaceChildren(...r.groups.map((g) =>
      el('tr', { 'data-group': g.group, 'data-stream': g.stream, onclick: () => select(g),
        class: selected && selected.group === g.group && selected.stream === g.stream ? 'sel' : null },
      el('td', {}, g.stream),
      el('td', {}, g.group),
      el('td', { class: 'num' }, fmt(g.consumers)),
      el('td', { class: 'num' }, fmt(g.lagEvents)),
      el('td', { class: 'num' }, fmt(g.lagSeconds, 1)),
      el('td', { class: 'num' }, fmt(g.inFlight)),
      el('td', { class: 'num parked' }, fmt(g.parked)),
      el('td', { class: 'actions' }, el('button', {
        type: 'button', class: 'replay', disabled: g.parked === 0, onclick: (ev) => {
          ev.stopPropagation();
          act('POST', `/api/subscriptions/replay?${q(g)}`, `Replaying the parked messages of ${g.group} on ${g.stream}.`);
        },
      }, 'Replay parked')))));
    document.getElementById('no-groups').hidden = r.groups.length > 0;
    document.querySelector('#live tbody').replaceChildren(...r.live.map((s) =>
      el('tr', { 'data-id': s.id, 'data-stream': s.stream },
        el('td', {}, s.stream + (s.filtered ? ' (filtered)' : '')), el('td', {}, s.user), el('td', {}, s.from),
        el('td', { class: `state ${s.live ? 'live' : ''}` }, s.live ? 'live' : 'catching up'),
        el('td', { class: 'num' }, fmt(s.delivered)), el('td', { class: 'num lag' }, fmt(s.lagEvents)),
        el('td', { class: 'num' }, fmt(s.lagSeconds, 1)), el('td', {}, when(s.startedNs / 1e6)))));
    document.getElementById('live-note').textContent = !r.liveSubscriptions ? 'No catch-up subscription is open.'
      : r.live.length < r.liveSubscriptions ? `${fmt(r.live.length)} of ${fmt(r.liveSubscriptions)} shown.` : '';
    await showGroup();
    showError(null);
  } catch (e) {
    showError(e);
  }
}

function wire() {
  document.getElementById('new-group').addEventListener('click', () => {
    document.getElementById('c-settings').replaceChildren(...settingsInputs('c-', DEFAULTS));
    document.getElementById('create').hidden = false;
    document.getElementById('c-stream').focus();
  });
  document.getElementById('c-cancel').addEventListener('click', () => { document.getElementById('create').hidden = true; });
  document.getElementById('c-stream').addEventListener('input', (ev) => {
    const all = ev.target.value === '$all';
    document.getElementById('c-filter-on-l').hidden = !all;
    document.getElementById('c-filter-l').hidden = !all;
  });
  document.getElementById('create-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const g = { stream: document.getElementById('c-stream').value, group: document.getElementById('c-group').value };
    const body = settingsRead('c-');
    const on = document.getElementById('c-filter-on').value;
    const f = document.getElementById('c-filter').value.trim();
    if (g.stream === '$all' && on) {
      body.filter = /^\/.*\/$/.test(f) ? { on, regex: f.slice(1, -1) }
        : { on, prefixes: f.split(',').map((s) => s.trim()).filter(Boolean) };
    }
    try {
      await send('PUT', `/api/subscription?${q(g)}`, body);
      document.getElementById('create').hidden = true;
      document.getElementById('create-form').reset();
      note(`Created ${g.group} on ${g.stream}.`);
      select(g);
    } catch (e) {
      showError(e);
    }
  });
  document.getElementById('settings').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await send('POST', `/api/subscription?${q(selected)}`, settingsRead('s-'));
      note(`Saved the settings of ${selected.group}: its consumers reconnect.`);
      detail = null; // the form shows what the server kept
      await refresh();
    } catch (e) {
      showError(e);
    }
  });
  document.getElementById('g-replay').addEventListener('click', () =>
    act('POST', `/api/subscriptions/replay?${q(selected)}`, `Replaying the parked messages of ${selected.group} on ${selected.stream}.`));
  document.getElementById('g-truncate').addEventListener('click', async () => {
    const g = selected;
    if (!(await confirmName(`Forget the ${fmt(detail.parkedMessageCount)} parked messages of ${g.group}? They are not delivered again.`, g.group, 'Truncate'))) return;
    act('POST', `/api/subscriptions/truncate?${q(g)}`, `Truncated the parked messages of ${g.group}.`);
  });
  document.getElementById('g-delete').addEventListener('click', async () => {
    const g = selected;
    if (!(await confirmName(`Delete the consumer group ${g.group} on ${g.stream}? Its consumers are disconnected and its position is lost.`, g.group, 'Delete'))) return;
    try {
      await send('DELETE', `/api/subscription?${q(g)}`);
      selected = null;
      detail = null;
      note(`Deleted ${g.group} on ${g.stream}.`);
      await refresh();
    } catch (e) {
      showError(e);
    }
  });
}

(async () => {
  if (!(await start())) return;
  wire();
  await refresh();
  setInterval(refresh, 2000);
})();
