// users.js - factumd's users (GET /api/users; $admins): create, disable and
// enable, reset a password, delete (confirmed by the user's name); and the
// signed-in user's own password (POST /api/user/change-password).
import { el, getJSON, send, start, showError } from '/ui/common.js';

let me = null;

function note(text) {
  const ok = document.getElementById('ok');
  ok.hidden = false;
  ok.textContent = text;
  showError(null);
}

// A dialog asking for text: the user's name to confirm (check), or a new
// password (check null: anything non-empty). The text, or null if cancelled.
function ask(text, label, check, secret) {
  const d = document.getElementById('confirm');
  const input = document.getElementById('confirm-input');
  const ok = document.getElementById('confirm-ok');
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-label').firstChild.textContent = label + ' ';
  input.type = secret ? 'password' : 'text';
  input.value = '';
  ok.disabled = true;
  input.oninput = () => { ok.disabled = check === null ? !input.value : input.value !== check; };
  d.showModal();
  return new Promise((resolve) => { d.onclose = () => resolve(d.returnValue === 'ok' && !ok.disabled ? input.value : null); });
}

async function act(method, path, text) {
  try {
    await send(method, path);
    note(text);
    await refresh();
  } catch (e) {
    showError(e);
  }
}

async function refresh() {
  const r = await getJSON('/api/users');
  document.querySelector('#users tbody').replaceChildren(...r.users.map((u) => {
    const q = `login=${encodeURIComponent(u.login)}`;
    return el('tr', { 'data-user': u.login },
      el('td', {}, u.login), el('td', {}, u.fullName), el('td', {}, u.groups.join(', ')),
      el('td', { class: 'state' }, u.disabled ? 'disabled' : 'enabled'),
      el('td', { class: 'actions' },
        el('button', { type: 'button', class: 'toggle', onclick: () =>
          act('POST', `/api/user/${u.disabled ? 'enable' : 'disable'}?${q}`, `${u.login} ${u.disabled ? 'enabled' : 'disabled'}.`) },
        u.disabled ? 'Enable' : 'Disable'),
        el('button', { type: 'button', class: 'reset', onclick: async () => {
          const pw = await ask(`A new password for ${u.login}:`, 'New password', null, true);
          if (pw !== null) {
            try {
              await send('POST', `/api/user/reset-password?${q}`, { password: pw });
              note(`${u.login}'s password was reset.`);
            } catch (e) { showError(e); }
          }
        } }, 'Reset password'),
        el('button', { type: 'button', class: 'delete', onclick: async () => {
          if ((await ask(`Delete the user ${u.login}?`, "Type the user's name to confirm", u.login, false)) !== null)
            act('DELETE', `/api/user?${q}`, `${u.login} deleted.`);
        } }, 'Delete')));
  }));
}

(async () => {
  const s = await start();
  if (!s) return;
  me = s.who;
  if (me.insecure) {
    document.getElementById('insecure').hidden = false;
    document.getElementById('mine').hidden = true;
    return;
  }
  document.getElementById('own').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await send('POST', `/api/user/change-password?login=${encodeURIComponent(me.login)}`,
        { current: document.getElementById('own-current').value, password: document.getElementById('own-new').value });
      document.getElementById('own').reset();
      note('Your password was changed: sign in again.');
    } catch (e) {
      showError(e);
    }
  });
  if (!me.admin) return;
  document.getElementById('admin').hidden = false;
  document.getElementById('create').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const groups = document.getElementById('u-groups').value.split(',').map((g) => g.trim()).filter(Boolean);
    try {
      await send('POST', '/api/users', {
        login: document.getElementById('u-login').value, fullName: document.getElementById('u-name').value,
        groups, password: document.getElementById('u-password').value,
      });
      note(`${document.getElementById('u-login').value} created.`);
      document.getElementById('create').reset();
      await refresh();
    } catch (e) {
      showError(e);
    }
  });
  try { await refresh(); } catch (e) { showError(e); }
})();
