// MSP Recapp UI: a small single-page app over the gateway's JSON API.
// No framework, no build step. Elements are built with h(), never from HTML
// strings, so nothing a user typed can become markup.
'use strict';

// ---------- DOM helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const $main = () => document.getElementById('main');

function show(...nodes) {
  const main = $main();
  main.replaceChildren(...nodes);
}

function flash(message, kind = 'ok') {
  const el = document.getElementById('flash');
  el.replaceChildren(h('p', { class: `flash-${kind}` }, message));
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => el.replaceChildren(), 6000);
}

function date(iso) {
  if (!iso) return '—';
  return new Date(iso).toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
}

function dateTime(iso) {
  if (!iso) return '—';
  return new Date(iso).toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
  });
}

const roleLabel = (role) => (role === 'tenant_admin' ? 'Admin' : 'User');

// ---------- API ----------

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `Request failed (${status})`);
    this.status = status;
    this.reason = e.reason || 'UNKNOWN';
  }
}

function csrfToken() {
  for (const part of document.cookie.split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === '__Host-recapp-csrf' || name === 'recapp-csrf') return rest.join('=');
  }
  return '';
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') {
    headers['X-CSRF-Token'] = csrfToken();
    if (body !== undefined) headers['Content-Type'] = 'application/json';
  }
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// Readable sentences for the services' stable reasons.
const MESSAGES = {
  INVALID_CREDENTIALS: 'That email and password do not match an account.',
  RATE_LIMITED: 'Too many attempts. Wait a moment and try again.',
  TOTP_INVALID: 'That code is not right. Check your authenticator app and try again.',
  RECOVERY_CODE_INVALID: 'That recovery code is not valid or was already used.',
  CHALLENGE_EXPIRED: 'The sign-in step expired. Sign in again.',
  CHALLENGE_INVALID: 'The sign-in step expired. Sign in again.',
  MFA_STEP_MISSING: 'Sign in with your password first.',
  EMAIL_TAKEN: 'An account with this email already exists. Sign in instead.',
  WEAK_PASSWORD: 'Choose a stronger password: a few unrelated words work well.',
  PASSWORD_TOO_SHORT: 'Use at least 8 characters for the password.',
  INVALID_EMAIL: 'Enter a valid email address.',
  LAST_ADMIN: 'A workspace must keep at least one active admin.',
  OWNER_PROTECTED: 'The workspace owner is always an active admin. Transfer ownership first.',
  SELF_ROLE_CHANGE: 'You cannot change your own role.',
  ALREADY_MEMBER: 'This person is already a member of the workspace.',
  INVITATION_PENDING: 'An invitation to this address is already pending. Resend it from the Pending tab.',
  MEMBER_DISABLED_REENABLE: 'This person is a disabled member: re-enable them from the Disabled tab instead.',
  RESEND_TOO_SOON: 'This invitation was just sent. Wait a minute before resending.',
  RESEND_LIMIT: 'Too many invitations were resent this hour. Try again later.',
  INVITATION_NOT_PENDING: 'This invitation is no longer pending.',
  PERMISSION_DENIED: 'Only Tenant Admins can do that.',
  MEMBER_DISABLED: 'Your access to this workspace has been disabled. Ask a Tenant Admin to re-enable you.',
  WORKSPACE_NOT_FOUND: 'This workspace does not exist, or you are not a member of it.',
  MFA_ENROLLMENT_REQUIRED: 'This workspace requires an authenticator app. Set one up to continue.',
  INVITATION_EMAIL_MISMATCH: 'This invitation was sent to a different email address.',
  CSRF_FAILED: 'Your page is out of date. Reload it and try again.',
  UNAVAILABLE: 'The service is unavailable right now. Try again in a moment.',
};

const explain = (error) => MESSAGES[error.reason] || error.message;

// ---------- routing ----------

function go(path, replace = false) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

document.addEventListener('click', (event) => {
  const link = event.target.closest('a[data-link]');
  if (!link || event.metaKey || event.ctrlKey || event.shiftKey) return;
  event.preventDefault();
  go(link.getAttribute('href'));
});
window.addEventListener('popstate', () => render());

let session = null; // { account, second_factor } or null
let workspaces = null;

async function loadSession() {
  try {
    session = await api('GET', '/session');
  } catch (e) {
    if (e.status !== 401) throw e;
    session = null;
  }
  return session;
}

function nextParam() {
  const next = new URLSearchParams(location.search).get('next');
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

function requireSignIn() {
  go(`/signin?next=${encodeURIComponent(location.pathname + location.search)}`, true);
}

async function render() {
  const path = location.pathname;
  try {
    await loadSession();
    renderAccountBar();
    let m;
    if (path === '/signin') return signInPage();
    if (path === '/signup') return signUpPage();
    if ((m = path.match(/^\/invite\/([^/]+)$/))) return invitationPage(decodeURIComponent(m[1]));
    if (!session) return requireSignIn();
    if (path === '/setup-mfa') return setupMfaPage();
    if ((m = path.match(/^\/w\/([^/]+)\/users$/))) return usersPage(m[1]);
    if ((m = path.match(/^\/w\/([^/]+)\/security$/))) return securityPage(m[1]);
    return homePage();
  } catch (e) {
    show(h('h1', {}, 'Something went wrong'), h('p', { role: 'alert', class: 'error' }, explain(e)));
  } finally {
    $main().focus({ preventScroll: true });
  }
}

function renderAccountBar(workspaceId) {
  const account = document.getElementById('account');
  const nav = document.getElementById('nav');
  nav.replaceChildren();
  if (!session) {
    account.replaceChildren();
    return;
  }
  if (workspaceId) {
    const here = location.pathname;
    const link = (href, label) =>
      h('a', { href, 'data-link': true, 'aria-current': here === href ? 'page' : null }, label);
    nav.append(link(`/w/${workspaceId}/users`, 'Users'), link(`/w/${workspaceId}/security`, 'Security'));
  }
  account.replaceChildren(
    h('span', { class: 'muted' }, session.account.email),
    h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'),
  );
}

async function signOut() {
  try {
    await api('DELETE', '/session');
  } finally {
    session = null;
    go('/signin');
  }
}

// ---------- forms ----------

function field(label, input) {
  const id = input.id || `f-${Math.random().toString(36).slice(2)}`;
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input);
}

function errorBox() {
  return h('p', { class: 'error', role: 'alert', hidden: true });
}

function showError(box, error) {
  box.hidden = false;
  box.textContent = typeof error === 'string' ? error : explain(error);
}

async function submitting(form, box, action) {
  const button = form.querySelector('button[type=submit]');
  box.hidden = true;
  if (button) button.disabled = true;
  try {
    await action();
  } catch (e) {
    showError(box, e);
  } finally {
    if (button) button.disabled = false;
  }
}

// ---------- sign in / sign up ----------

function signInPage() {
  if (session) return go(nextParam(), true);
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const box = errorBox();
  const form = h('form', { class: 'card narrow' },
    h('h1', {}, 'Sign in'),
    field('Email', email),
    field('Password', password),
    box,
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
    h('p', { class: 'muted' }, 'New here? ',
      h('a', { href: `/signup${location.search}`, 'data-link': true }, 'Create an account')),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, box, async () => {
      const result = await api('POST', '/session', { email: email.value, password: password.value });
      if (result.status === 'mfa_required') return mfaStep(result.mfa_methods);
      go(nextParam(), true);
    });
  });
  show(form);
  email.focus();
}

function mfaStep(methods) {
  let recovery = false;
  const code = h('input', {
    name: 'code', autocomplete: 'one-time-code', inputmode: 'numeric', required: true, maxlength: 32,
  });
  const label = h('label', { for: 'mfa-code' }, 'Authenticator code');
  code.id = 'mfa-code';
  const box = errorBox();
  const toggle = h('button', { type: 'button', class: 'link' }, 'Use a recovery code instead');
  toggle.addEventListener('click', () => {
    recovery = !recovery;
    label.textContent = recovery ? 'Recovery code' : 'Authenticator code';
    code.inputMode = recovery ? 'text' : 'numeric';
    toggle.textContent = recovery ? 'Use the authenticator app instead' : 'Use a recovery code instead';
    code.value = '';
    code.focus();
  });
  const form = h('form', { class: 'card narrow' },
    h('h1', {}, 'Two-step verification'),
    h('p', {}, 'Enter the 6-digit code from your authenticator app.'),
    h('div', { class: 'field' }, label, code),
    box,
    h('button', { type: 'submit', class: 'primary' }, 'Verify'),
    methods.includes('recovery_code') ? toggle : null,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, box, async () => {
      const body = recovery ? { recovery_code: code.value } : { totp_code: code.value };
      await api('POST', '/session/mfa', body);
      go(nextParam(), true);
    });
  });
  show(form);
  code.focus();
}

function signUpPage(prefill) {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true, value: prefill || '' });
  const name = h('input', { name: 'display_name', autocomplete: 'name', maxlength: 100 });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const box = errorBox();
  const form = h('form', { class: prefill ? 'stack' : 'card narrow' },
    h(prefill ? 'h2' : 'h1', {}, 'Create an account'),
    field('Email', email),
    field('Your name', name),
    field('Password', password),
    h('p', { class: 'hint' }, 'At least 8 characters; a few unrelated words make a strong password.'),
    box,
    h('button', { type: 'submit', class: 'primary' }, 'Create account'),
    prefill ? null : h('p', { class: 'muted' }, 'Already have an account? ',
      h('a', { href: `/signin${location.search}`, 'data-link': true }, 'Sign in')),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, box, async () => {
      await api('POST', '/accounts', { email: email.value, password: password.value, display_name: name.value });
      if (prefill) return render();
      go(nextParam(), true);
    });
  });
  if (prefill) return form;
  show(form);
  email.focus();
  return form;
}

// ---------- home: pick a workspace ----------

async function homePage() {
  workspaces = (await api('GET', '/workspaces')).workspaces;
  if (workspaces.length > 0) return go(`/w/${workspaces[0].id}/users`, true);
  const name = h('input', { name: 'name', required: true, maxlength: 100 });
  const box = errorBox();
  const form = h('form', { class: 'card narrow' },
    h('h1', {}, 'No workspace yet'),
    h('p', {}, 'You are not a member of any workspace. Open the invitation link from your email to join one, or create your own.'),
    field('Workspace name', name),
    box,
    h('button', { type: 'submit', class: 'primary' }, 'Create workspace'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, box, async () => {
      const w = await api('POST', '/workspaces', { name: name.value });
      go(`/w/${w.id}/users`);
    });
  });
  show(form);
}

// Loads the workspace and the caller's role, or shows why not.
async function enterWorkspace(id) {
  try {
    const [workspace, permissions] = await Promise.all([
      api('GET', `/workspaces/${encodeURIComponent(id)}`),
      api('GET', `/workspaces/${encodeURIComponent(id)}/permissions`),
    ]);
    if (!workspaces) workspaces = (await api('GET', '/workspaces')).workspaces;
    renderAccountBar(id);
    return { workspace, permissions, admin: permissions.role === 'tenant_admin' };
  } catch (e) {
    return workspaceBlocked(e);
  }
}

function workspaceBlocked(e) {
  if (e.reason === 'MFA_ENROLLMENT_REQUIRED') {
    go(`/setup-mfa?next=${encodeURIComponent(location.pathname + location.search)}`, true);
    return null;
  }
  if (e.reason === 'MFA_REQUIRED') {
    show(h('div', { class: 'card narrow' },
      h('h1', {}, 'Verify with your authenticator app'),
      h('p', {}, 'This workspace requires two-step verification. Sign in again and enter the code from your authenticator app.'),
      h('button', { type: 'button', class: 'primary', onclick: signOut }, 'Sign in again')));
    return null;
  }
  if (e.status === 401) {
    requireSignIn();
    return null;
  }
  show(h('div', { class: 'card narrow' },
    h('h1', {}, e.reason === 'MEMBER_DISABLED' ? 'Access disabled' : 'No access'),
    h('p', { role: 'alert', class: 'error' }, explain(e)),
    h('a', { href: '/', 'data-link': true }, 'Back to your workspaces')));
  return null;
}

function workspaceHeader(ctx, title, extra) {
  const switcher = workspaces && workspaces.length > 1
    ? h('select', {
      'aria-label': 'Workspace',
      onchange: (e) => go(`/w/${e.target.value}/${location.pathname.endsWith('/security') ? 'security' : 'users'}`),
    }, workspaces.map((w) => h('option', { value: w.id, selected: w.id === ctx.workspace.id }, w.name)))
    : h('span', { class: 'muted' }, ctx.workspace.name);
  return h('div', { class: 'page-head' },
    h('div', {}, h('h1', {}, title), switcher),
    extra || null);
}

// ---------- the Users page ----------

async function usersPage(id) {
  const ctx = await enterWorkspace(id);
  if (!ctx) return;
  const params = new URLSearchParams(location.search);
  const tabs = ctx.admin ? ['active', 'pending', 'disabled'] : ['active', 'disabled'];
  let tab = params.get('tab');
  if (!tabs.includes(tab)) tab = 'active';

  const inviteButton = ctx.admin
    ? h('button', { type: 'button', class: 'primary', onclick: () => inviteDialog(ctx) }, 'Invite User')
    : null;
  const tabList = h('div', { role: 'tablist', class: 'tabs', 'aria-label': 'Members' },
    tabs.map((name) => h('button', {
      type: 'button',
      role: 'tab',
      id: `tab-${name}`,
      'aria-selected': name === tab ? 'true' : 'false',
      'aria-controls': 'tab-panel',
      tabindex: name === tab ? '0' : '-1',
      onclick: () => go(`/w/${id}/users?tab=${name}`),
      onkeydown: (e) => {
        const i = tabs.indexOf(name);
        const to = e.key === 'ArrowRight' ? tabs[(i + 1) % tabs.length]
          : e.key === 'ArrowLeft' ? tabs[(i + tabs.length - 1) % tabs.length] : null;
        if (to) { go(`/w/${id}/users?tab=${to}`); }
      },
    }, name[0].toUpperCase() + name.slice(1))));
  const panel = h('section', { role: 'tabpanel', id: 'tab-panel', 'aria-labelledby': `tab-${tab}`, class: 'cards' },
    h('p', { class: 'muted' }, 'Loading…'));
  show(workspaceHeader(ctx, 'Users', inviteButton), tabList, panel);
  const selected = document.getElementById(`tab-${tab}`);
  if (selected && document.activeElement === document.body) selected.focus();

  try {
    if (tab === 'pending') await pendingTab(ctx, panel);
    else await membersTab(ctx, panel, tab);
  } catch (e) {
    if (workspaceBlocked(e) !== null) panel.replaceChildren(h('p', { class: 'error', role: 'alert' }, explain(e)));
  }
}

async function pages(load, panel, renderItem, empty) {
  panel.replaceChildren();
  let token = null;
  const more = h('button', { type: 'button', class: 'secondary' }, 'Load more');
  const next = async () => {
    const page = await load(token);
    more.remove();
    const items = page.members || page.invitations;
    for (const item of items) panel.append(renderItem(item));
    if (panel.children.length === 0) panel.append(h('p', { class: 'muted empty' }, empty));
    token = page.next_page_token;
    if (token) panel.append(more);
  };
  more.addEventListener('click', () => next().catch((e) => flash(explain(e), 'error')));
  await next();
}

async function membersTab(ctx, panel, status) {
  const base = `/workspaces/${encodeURIComponent(ctx.workspace.id)}/members?status=${status}`;
  let activeAdmins = null;
  if (status === 'active' && ctx.admin) {
    const all = await api('GET', `${base}&page_size=200`);
    activeAdmins = all.next_page_token ? null
      : all.members.filter((m) => m.role === 'tenant_admin').length;
  }
  await pages(
    (token) => api('GET', `${base}${token ? `&page_token=${encodeURIComponent(token)}` : ''}`),
    panel,
    (m) => memberCard(ctx, m, activeAdmins),
    status === 'active' ? 'No active members.' : 'No disabled members.',
  );
}

function badge(text, kind) {
  return h('span', { class: `badge ${kind || ''}` }, text);
}

function memberCard(ctx, m, activeAdmins) {
  const you = m.account_id === session.account.id;
  const lastAdmin = m.role === 'tenant_admin' && activeAdmins === 1 && m.status === 'active';
  const card = h('article', { class: 'card member', 'data-email': m.email },
    h('div', { class: 'who' },
      h('strong', {}, m.display_name || m.email),
      m.display_name ? h('span', { class: 'muted' }, m.email) : null),
    h('div', { class: 'meta' },
      badge(roleLabel(m.role), m.role === 'tenant_admin' ? 'admin' : ''),
      m.is_owner ? badge('Owner', 'owner') : null,
      you ? badge('You') : null,
      m.mfa_enrolled ? badge('MFA', 'ok') : badge('No MFA', 'warn'),
      h('span', { class: 'muted' }, `Joined ${date(m.joined_at)}`)),
  );
  if (!ctx.admin) return card;
  if (m.status === 'disabled') {
    card.append(h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'secondary', onclick: () => act(ctx, 'POST', m, 'enable', `${m.email} was re-enabled.`) }, 'Enable')));
    return card;
  }
  let why = null;
  if (m.is_owner) why = 'The workspace owner is always an active admin: transfer ownership to change this member.';
  else if (lastAdmin) why = 'This is the last admin: a workspace must keep at least one active admin.';
  else if (you) why = null;
  card.append(actionsMenu(ctx, m, why, you));
  if (why) card.append(h('p', { class: 'hint', id: `why-${m.account_id}` }, why));
  return card;
}

function actionsMenu(ctx, m, why, you) {
  const menuId = `menu-${m.account_id}`;
  const button = h('button', {
    type: 'button', class: 'icon', 'aria-haspopup': 'menu', 'aria-expanded': 'false',
    'aria-controls': menuId, 'aria-label': `Actions for ${m.email}`,
    'aria-describedby': why ? `why-${m.account_id}` : null,
  }, '⋯');
  const item = (label, onclick, disabled) => h('button', {
    type: 'button', role: 'menuitem', disabled: disabled || null, onclick: () => { close(); onclick(); },
  }, label);
  const blocked = Boolean(why);
  const menu = h('div', { role: 'menu', id: menuId, class: 'menu', hidden: true },
    item('Change Role', () => changeRoleDialog(ctx, m), blocked || you),
    item('Disable', () => confirmDialog({
      title: `Disable ${m.email}?`,
      text: 'They lose access to this workspace at once. You can re-enable them from the Disabled tab.',
      confirm: 'Disable',
      run: () => act(ctx, 'POST', m, 'disable', `${m.email} was disabled.`),
    }), blocked || you),
    item('Remove', () => confirmDialog({
      title: `Remove ${m.email}?`,
      text: 'This action cannot be undone. To restore access later you will need to send a new invitation.',
      confirm: 'Remove',
      danger: true,
      run: () => act(ctx, 'DELETE', m, null, `${m.email} was removed.`),
    }), blocked || you),
  );
  function close() {
    menu.hidden = true;
    button.setAttribute('aria-expanded', 'false');
  }
  button.addEventListener('click', () => {
    const open = menu.hidden;
    document.querySelectorAll('.menu').forEach((other) => { other.hidden = true; });
    menu.hidden = !open;
    button.setAttribute('aria-expanded', String(open));
    if (open) {
      const first = menu.querySelector('button:not([disabled])');
      if (first) first.focus();
    }
  });
  menu.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { close(); button.focus(); }
  });
  return h('div', { class: 'actions' }, button, menu);
}

async function act(ctx, method, m, verb, message) {
  const path = `/workspaces/${encodeURIComponent(ctx.workspace.id)}/members/${encodeURIComponent(m.account_id)}${verb ? `/${verb}` : ''}`;
  try {
    await api(method, path);
    flash(message);
    render();
  } catch (e) {
    flash(explain(e), 'error');
  }
}

function modal(title, body, buttons) {
  const dialog = h('dialog', { 'aria-labelledby': 'dialog-title' },
    h('h2', { id: 'dialog-title' }, title), body, buttons);
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

function confirmDialog({ title, text, confirm, danger, run }) {
  let dialog;
  const ok = h('button', { type: 'button', class: danger ? 'danger' : 'primary', onclick: async () => { dialog.close(); await run(); } }, confirm);
  dialog = modal(title, h('p', {}, text), h('div', { class: 'buttons' },
    h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close() }, 'Cancel'), ok));
  ok.focus();
}

function roleSelect(value) {
  return h('select', { name: 'role' },
    h('option', { value: 'tenant_admin', selected: value === 'tenant_admin' }, 'Admin'),
    h('option', { value: 'user', selected: value !== 'tenant_admin' }, 'User'));
}

function changeRoleDialog(ctx, m) {
  const role = roleSelect(m.role === 'tenant_admin' ? 'user' : 'tenant_admin');
  const box = errorBox();
  const form = h('form', { method: 'dialog' }, field('Role', role), box,
    h('div', { class: 'buttons' },
      h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close() }, 'Cancel'),
      h('button', { type: 'submit', class: 'primary' }, 'Change Role')));
  const dialog = modal(`Change the role of ${m.email}`, form, null);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, box, async () => {
      await api('PATCH', `/workspaces/${encodeURIComponent(ctx.workspace.id)}/members/${encodeURIComponent(m.account_id)}`, { role: role.value });
      dialog.close();
      flash(`${m.email} is now ${roleLabel(role.value) === 'Admin' ? 'an Admin' : 'a User'}.`);
      render();
    });
  });
  role.focus();
}

function inviteDialog(ctx) {
  const email = h('input', { type: 'email', name: 'email', required: true, autocomplete: 'off' });
  const role = roleSelect('user');
  const box = errorBox();
  const form = h('form', { method: 'dialog' },
    field('Email address', email), field('Role', role), box,
    h('div', { class: 'buttons' },
      h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close() }, 'Cancel'),
      h('button', { type: 'submit', class: 'primary' }, 'Send Invitation')));
  const dialog = modal('Invite a user', form, null);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, box, async () => {
      await api('POST', `/workspaces/${encodeURIComponent(ctx.workspace.id)}/invitations`, { email: email.value, role: role.value });
      dialog.close();
      flash(`Invitation sent to ${email.value}.`);
      go(`/w/${ctx.workspace.id}/users?tab=pending`);
    });
  });
  email.focus();
}

async function pendingTab(ctx, panel) {
  const base = `/workspaces/${encodeURIComponent(ctx.workspace.id)}/invitations`;
  await pages(
    (token) => api('GET', `${base}${token ? `?page_token=${encodeURIComponent(token)}` : ''}`),
    panel,
    (inv) => invitationCard(ctx, inv),
    'No pending invitations.',
  );
}

function invitationCard(ctx, inv) {
  const base = `/workspaces/${encodeURIComponent(ctx.workspace.id)}/invitations/${encodeURIComponent(inv.id)}`;
  const resend = h('button', {
    type: 'button', class: 'icon', title: 'Resend', 'aria-label': `Resend invitation to ${inv.email}`,
    onclick: async () => {
      try {
        await api('POST', `${base}/resend`);
        flash(`Invitation resent to ${inv.email}.`);
        render();
      } catch (e) { flash(explain(e), 'error'); }
    },
  }, '⟳');
  const cancel = h('button', {
    type: 'button', class: 'icon', title: 'Cancel', 'aria-label': `Cancel invitation to ${inv.email}`,
    onclick: () => confirmDialog({
      title: `Cancel the invitation to ${inv.email}?`,
      text: 'The link in the email stops working at once.',
      confirm: 'Cancel invitation',
      danger: true,
      run: async () => {
        try {
          await api('DELETE', base);
          flash(`Invitation to ${inv.email} was cancelled.`);
          render();
        } catch (e) { flash(explain(e), 'error'); }
      },
    }),
  }, '✕');
  return h('article', { class: 'card invitation', 'data-email': inv.email },
    h('div', { class: 'who' }, h('strong', {}, inv.email),
      h('span', { class: 'muted' }, `Invited by ${inv.invited_by_email || 'an admin'}`)),
    h('div', { class: 'meta' },
      badge(roleLabel(inv.role), inv.role === 'tenant_admin' ? 'admin' : ''),
      h('span', { class: 'muted' }, `Sent ${date(inv.sent_at)}`),
      h('span', { class: 'muted' }, `Expires ${date(inv.expires_at)}`)),
    h('div', { class: 'actions' }, resend, cancel));
}

// ---------- Security settings and the audit log ----------

async function securityPage(id) {
  const ctx = await enterWorkspace(id);
  if (!ctx) return;
  const sections = [workspaceHeader(ctx, 'Security')];
  if (ctx.admin) sections.push(settingsForm(ctx));
  sections.push(authenticatorSection());
  const audit = h('section', { class: 'card' }, h('h2', {}, 'Audit log'));
  if (ctx.admin) sections.push(audit);
  else sections.push(h('p', { class: 'muted' }, 'Only Tenant Admins can change workspace settings and read the audit log.'));
  show(...sections);
  if (ctx.admin) auditLog(ctx, audit);
}

function settingsForm(ctx) {
  const w = ctx.workspace;
  const mfa = h('input', { type: 'checkbox', role: 'switch', id: 'require-mfa', checked: w.require_mfa });
  const days = h('input', { type: 'number', id: 'lifetime', min: 1, max: 720, required: true, value: w.invitation_lifetime_hours });
  const box = errorBox();
  const form = h('form', { class: 'card' },
    h('h2', {}, 'Workspace settings'),
    h('div', { class: 'switch' }, mfa, h('label', { for: 'require-mfa' }, 'Require MFA for all users')),
    h('p', { class: 'hint' }, 'Every user must set up an authenticator app before they can use this workspace. Users without one are asked to set it up on their next sign-in.'),
    field('Invitation lifetime (hours)', days),
    h('p', { class: 'hint' }, 'From 1 hour to 30 days (720 hours). The expiry is shown on each pending invitation.'),
    box,
    h('button', { type: 'submit', class: 'primary' }, 'Save settings'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, box, async () => {
      ctx.workspace = await api('PATCH', `/workspaces/${encodeURIComponent(w.id)}/settings`, {
        require_mfa: mfa.checked,
        invitation_lifetime_hours: Number(days.value),
      });
      flash('Settings saved.');
      render();
    });
  });
  return form;
}

function authenticatorSection() {
  const enrolled = session.account.totp_enrolled;
  const section = h('section', { class: 'card' }, h('h2', {}, 'Your authenticator app'));
  if (!enrolled) {
    section.append(h('p', {}, 'No authenticator app is set up for your account.'),
      h('a', { class: 'button primary', href: `/setup-mfa?next=${encodeURIComponent(location.pathname)}`, 'data-link': true }, 'Set up authenticator app'));
    return section;
  }
  const code = h('input', { name: 'code', autocomplete: 'one-time-code', required: true, maxlength: 32 });
  const box = errorBox();
  const form = h('form', { class: 'inline' }, field('Code from the app, or a recovery code', code), box,
    h('button', { type: 'submit', class: 'danger' }, 'Remove authenticator app'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, box, async () => {
      const value = code.value.trim();
      const body = /^\d[\d ]*$/.test(value) ? { totp_code: value } : { recovery_code: value };
      await api('POST', '/account/totp/remove', body);
      flash('The authenticator app was removed.');
      render();
    });
  });
  section.append(h('p', {}, 'An authenticator app is set up for your account.'), form);
  return section;
}

async function auditLog(ctx, section) {
  const stack = [];
  let token = '';
  const table = h('table', {},
    h('caption', { class: 'visually-hidden' }, 'Audit log, newest first'),
    h('thead', {}, h('tr', {}, ['Time', 'Actor', 'Action', 'Target', 'Client address'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody'));
  const prev = h('button', { type: 'button', class: 'secondary' }, 'Previous');
  const next = h('button', { type: 'button', class: 'secondary' }, 'Next');
  const box = errorBox();
  let nextToken = '';
  async function load() {
    const q = token ? `?page_size=20&page_token=${encodeURIComponent(token)}` : '?page_size=20';
    try {
      const page = await api('GET', `/workspaces/${encodeURIComponent(ctx.workspace.id)}/audit-events${q}`);
      table.tBodies[0].replaceChildren(...page.events.map((e) => h('tr', {},
        h('td', {}, dateTime(e.time)), h('td', {}, e.actor_email || e.actor), h('td', {}, h('code', {}, e.action)),
        h('td', {}, e.target), h('td', {}, e.client_ip))));
      nextToken = page.next_page_token || '';
      next.disabled = !nextToken;
      prev.disabled = stack.length === 0;
    } catch (e) { showError(box, e); }
  }
  next.addEventListener('click', () => { stack.push(token); token = nextToken; load(); });
  prev.addEventListener('click', () => { token = stack.pop() || ''; load(); });
  section.append(h('div', { class: 'table-wrap' }, table), box, h('div', { class: 'buttons' }, prev, next));
  await load();
}

// ---------- Set up your authenticator app ----------

async function setupMfaPage() {
  const next = nextParam();
  let setup;
  try {
    setup = await api('POST', '/account/totp');
  } catch (e) {
    if (e.reason === 'TOTP_ALREADY_ENROLLED') {
      show(h('div', { class: 'card narrow' }, h('h1', {}, 'Authenticator app'),
        h('p', {}, 'An authenticator app is already set up for your account.'),
        h('a', { class: 'button primary', href: next, 'data-link': true }, 'Continue')));
      return;
    }
    throw e;
  }
  const code = h('input', { name: 'code', autocomplete: 'one-time-code', inputmode: 'numeric', required: true, maxlength: 8 });
  const box = errorBox();
  const form = h('form', { class: 'card narrow' },
    h('h1', {}, 'Set up your authenticator app'),
    h('p', {}, 'Scan this QR code with an authenticator app (Google Authenticator, 1Password, Authy…), then enter the 6-digit code it shows.'),
    h('img', { src: setup.qr_code, alt: 'QR code for your authenticator app', class: 'qr', width: 200, height: 200 }),
    h('p', {}, 'Can’t scan it? Enter this key: ', h('code', { id: 'totp-secret', class: 'secret' }, setup.secret)),
    field('Code from the app', code),
    box,
    h('button', { type: 'submit', class: 'primary' }, 'Confirm'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, box, async () => {
      const result = await api('POST', '/account/totp/confirm', { code: code.value });
      session.account.totp_enrolled = true;
      show(h('div', { class: 'card narrow' },
        h('h1', {}, 'Save your recovery codes'),
        h('p', {}, 'Each code signs you in once if you lose your phone. They are shown only now: store them somewhere safe.'),
        h('ul', { class: 'codes', id: 'recovery-codes' }, result.recovery_codes.map((c) => h('li', {}, h('code', {}, c)))),
        h('a', { class: 'button primary', href: next, 'data-link': true }, 'I have saved them — continue')));
    });
  });
  show(form);
  code.focus();
}

// ---------- Invitation page ----------

async function invitationPage(token) {
  let preview;
  try {
    preview = await api('GET', `/invitations/${encodeURIComponent(token)}`);
  } catch (e) {
    const pages = {
      INVITATION_EXPIRED: ['This invitation has expired', 'Ask the admin who invited you to send a new one.'],
      INVITATION_CANCELLED: ['This invitation was cancelled', 'It can no longer be used. Ask an admin of the workspace for a new invitation.'],
      INVITATION_USED: ['This invitation was already used', 'If it was you, sign in to open the workspace.'],
      INVITATION_INVALID: ['This invitation link is not valid', 'The link may be incomplete, or a newer invitation replaced it. Check the latest email you received.'],
    };
    const [title, text] = pages[e.reason] || ['This invitation cannot be opened', explain(e)];
    show(h('div', { class: 'card narrow' }, h('h1', {}, title), h('p', { role: 'alert' }, text),
      h('a', { href: '/', 'data-link': true }, 'Go to MSP Recapp')));
    return;
  }
  const details = h('dl', { class: 'details' },
    h('dt', {}, 'Workspace'), h('dd', {}, preview.workspace_name),
    h('dt', {}, 'Role'), h('dd', {}, roleLabel(preview.role)),
    h('dt', {}, 'Invited email'), h('dd', {}, preview.email),
    h('dt', {}, 'Invited by'), h('dd', {}, preview.invited_by_email || '—'),
    h('dt', {}, 'Expires'), h('dd', {}, dateTime(preview.expires_at)));
  const card = h('div', { class: 'card narrow' },
    h('h1', {}, `Join ${preview.workspace_name}`), details);
  if (!session) {
    const here = `/invite/${encodeURIComponent(token)}`;
    card.append(
      signUpPage(preview.email),
      h('p', { class: 'muted' }, 'Already have an account? ',
        h('a', { href: `/signin?next=${encodeURIComponent(here)}`, 'data-link': true }, 'Sign in to accept')));
    show(card);
    return;
  }
  if (session.account.email.toLowerCase() !== preview.email.toLowerCase()) {
    card.append(h('p', { role: 'alert', class: 'error' },
      `You are signed in as ${session.account.email}, but this invitation is for ${preview.email}.`),
    h('button', { type: 'button', class: 'secondary', onclick: signOut }, 'Sign out and use another account'));
    show(card);
    return;
  }
  const box = errorBox();
  const accept = h('button', { type: 'button', class: 'primary' }, 'Accept invitation');
  accept.addEventListener('click', async () => {
    accept.disabled = true;
    try {
      const result = await api('POST', `/invitations/${encodeURIComponent(token)}/accept`);
      workspaces = null;
      flash(`You joined ${result.workspace.name}.`);
      go(`/w/${result.workspace.id}/users`, true);
    } catch (e) {
      showError(box, e);
      accept.disabled = false;
    }
  });
  card.append(h('p', {}, `Signed in as ${session.account.email}.`), box, accept);
  show(card);
}

render();
