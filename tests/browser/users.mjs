// The Users page in real headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core; nothing is downloaded).
//
// Started by the Rust e2e test `gateway::browser`, which runs the services
// and the gateway and passes:
//   BASE_URL       http://localhost:<port> of the gateway
//   ADMIN_EMAIL    the workspace owner (already signed up), PASSWORD its password
//   LINKS_FILE     a file the Rust side appends each delivered invitation link to
//   ARTIFACTS      where screenshots go
// Exits non-zero, with the failing step, on the first failed expectation.

import { createHmac } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.BASE_URL;
const ADMIN = process.env.ADMIN_EMAIL;
const PASSWORD = process.env.PASSWORD;
const LINKS = process.env.LINKS_FILE;
const ARTIFACTS = process.env.ARTIFACTS;
const TIMEOUT = 15000;
mkdirSync(ARTIFACTS, { recursive: true });
const LOG = join(ARTIFACTS, 'steps.log');

let step = 'start';
function log(text) {
  step = text;
  appendFileSync(LOG, `${new Date().toISOString()} ${text}\n`);
  console.log(`step: ${text}`);
}

function check(condition, message) {
  if (!condition) throw new Error(`expectation failed: ${message}`);
}

// RFC 6238 TOTP (SHA-1, 6 digits, 30 s) from a base32 secret.
function totp(secretBase32, now = Date.now()) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secretBase32.replace(/=+$/, '').toUpperCase()) {
    const v = alphabet.indexOf(c);
    if (v < 0) continue;
    bits += v.toString(2).padStart(5, '0');
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(now / 1000 / 30)));
  const mac = createHmac('sha1', Buffer.from(bytes)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1000000;
  return String(code).padStart(6, '0');
}

async function waitForLink(email, known) {
  const deadline = Date.now() + TIMEOUT;
  while (Date.now() < deadline) {
    let lines = [];
    try { lines = readFileSync(LINKS, 'utf8').split('\n').filter(Boolean); } catch { /* not yet */ }
    const found = lines.map((l) => l.split(' ')).filter(([to, link]) => to === email && !known.has(link));
    if (found.length > 0) {
      const link = found[found.length - 1][1];
      known.add(link);
      // The email's links use the public base URL; open the same path here.
      return BASE + new URL(link).pathname;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no invitation email for ${email}`);
}

async function signIn(page, email) {
  await page.goto(`${BASE}/signin`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

const card = (page, email) => page.locator(`article[data-email="${email}"]`);

async function openTab(page, name) {
  await page.getByRole('tab', { name }).click();
  await page.getByRole('tab', { name, selected: true }).waitFor();
  await page.locator('[role=tabpanel] p.muted:text("Loading…")').waitFor({ state: 'detached' });
}

async function memberAction(page, email, action) {
  await card(page, email).getByRole('button', { name: `Actions for ${email}` }).click();
  await card(page, email).getByRole('menuitem', { name: action }).click();
}

async function acceptAsNewAccount(context, link, email) {
  const page = await context.newPage();
  await page.goto(link);
  await page.getByRole('heading', { name: /^Join / }).waitFor();
  const text = await page.locator('dl.details').innerText();
  check(text.includes(email), `the invitation page shows ${email}`);
  check(text.includes('User') || text.includes('Admin'), 'the invitation page shows the role');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Your name').fill('New Person');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('button', { name: 'Accept invitation' }).click();
  await page.waitForURL(/\/w\/[^/]+\/users/);
  await page.getByRole('heading', { name: 'Users' }).waitFor();
  return page;
}

async function enrollAuthenticator(page) {
  await page.getByRole('heading', { name: 'Set up your authenticator app' }).waitFor();
  check(await page.getByRole('img', { name: /QR code/ }).isVisible(), 'the QR code is shown');
  const secret = (await page.locator('#totp-secret').innerText()).trim();
  await page.getByLabel('Code from the app').fill(totp(secret));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.getByRole('heading', { name: 'Save your recovery codes' }).waitFor();
  const codes = await page.locator('#recovery-codes li').count();
  check(codes === 10, `10 recovery codes are shown once (saw ${codes})`);
  await page.getByRole('link', { name: /I have saved them/ }).click();
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const known = new Set();
let admin;
try {
  const adminContext = await browser.newContext();
  adminContext.setDefaultTimeout(TIMEOUT);
  admin = await adminContext.newPage();
  const consoleErrors = [];
  admin.on('console', (m) => { if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) consoleErrors.push(m.text()); });
  admin.on('pageerror', (e) => consoleErrors.push(String(e)));

  log('admin signs in and opens Users');
  await signIn(admin, ADMIN);
  await admin.waitForURL(/\/w\/[^/]+\/users/);
  await admin.getByRole('navigation', { name: 'Main navigation' }).getByRole('link', { name: 'Users' }).click();
  await admin.getByRole('heading', { name: 'Users' }).waitFor();
  await card(admin, ADMIN).waitFor();
  const usersUrl = admin.url().split('?')[0];

  log('admin invites new@example.com as User');
  await admin.getByRole('button', { name: 'Invite User' }).click();
  const dialog = admin.getByRole('dialog');
  await dialog.getByLabel('Email address').fill('new@example.com');
  await dialog.getByLabel('Role').selectOption('user');
  await dialog.getByRole('button', { name: 'Send Invitation' }).click();
  await admin.getByRole('tab', { name: 'Pending', selected: true }).waitFor();
  const pending = card(admin, 'new@example.com');
  await pending.waitFor();
  const pendingText = await pending.innerText();
  check(/Sent /.test(pendingText) && /Expires /.test(pendingText), 'the pending card shows sent and expiry dates');
  check(pendingText.includes('User'), 'the pending card shows the role');
  check(await pending.getByRole('button', { name: 'Resend invitation to new@example.com' }).isVisible(), 'resend icon');
  check(await pending.getByRole('button', { name: 'Cancel invitation to new@example.com' }).isVisible(), 'cancel icon');
  await admin.screenshot({ path: join(ARTIFACTS, 'users-pending.png'), fullPage: true });

  log('the invitee opens the emailed link in a second browser, signs up and accepts');
  const link = await waitForLink('new@example.com', known);
  const memberContext = await browser.newContext();
  memberContext.setDefaultTimeout(TIMEOUT);
  const member = await acceptAsNewAccount(memberContext, link, 'new@example.com');
  check(!(await member.getByRole('button', { name: 'Invite User' }).count()), 'a User sees no Invite button');
  check(!(await member.getByRole('tab', { name: 'Pending' }).count()), 'a User sees no Pending tab');
  check(!(await member.getByRole('button', { name: /^Actions for/ }).count()), 'a User sees no admin actions');

  log('the admin sees the member under Active');
  await admin.goto(`${usersUrl}?tab=active`);
  await card(admin, 'new@example.com').waitFor();
  check((await card(admin, ADMIN).innerText()).includes('Owner'), 'the owner card says Owner');
  check(await card(admin, ADMIN).getByRole('menuitem', { name: 'Disable', includeHidden: true }).isDisabled(),
    'the owner cannot be disabled');
  await admin.screenshot({ path: join(ARTIFACTS, 'users-active.png'), fullPage: true });

  log('the admin changes the role to Admin');
  await memberAction(admin, 'new@example.com', 'Change Role');
  await admin.getByRole('dialog').getByLabel('Role').selectOption('tenant_admin');
  await admin.getByRole('dialog').getByRole('button', { name: 'Change Role' }).click();
  await card(admin, 'new@example.com').locator('.badge.admin').waitFor();
  await memberAction(admin, 'new@example.com', 'Change Role');
  await admin.getByRole('dialog').getByLabel('Role').selectOption('user');
  await admin.getByRole('dialog').getByRole('button', { name: 'Change Role' }).click();
  await card(admin, 'new@example.com').locator('.badge.admin').waitFor({ state: 'detached' });

  log('the admin disables the member: they move to Disabled and are refused');
  await memberAction(admin, 'new@example.com', 'Disable');
  await admin.getByRole('dialog').getByRole('button', { name: 'Disable' }).click();
  await card(admin, 'new@example.com').waitFor({ state: 'detached' });
  await openTab(admin, 'Disabled');
  await card(admin, 'new@example.com').waitFor();
  await admin.screenshot({ path: join(ARTIFACTS, 'users-disabled.png'), fullPage: true });
  await member.reload();
  await member.getByRole('heading', { name: 'Access disabled' }).waitFor();

  log('the admin re-enables the member');
  await card(admin, 'new@example.com').getByRole('button', { name: 'Enable' }).click();
  await card(admin, 'new@example.com').waitFor({ state: 'detached' });
  await member.reload();
  await member.getByRole('heading', { name: 'Users' }).waitFor();

  log('the admin removes the member, confirming it cannot be undone');
  await openTab(admin, 'Active');
  await memberAction(admin, 'new@example.com', 'Remove');
  const confirm = admin.getByRole('dialog');
  check((await confirm.innerText()).includes('cannot be undone'), 'the confirmation says it cannot be undone');
  await confirm.getByRole('button', { name: 'Remove' }).click();
  await card(admin, 'new@example.com').waitFor({ state: 'detached' });
  await member.reload();
  await member.getByRole('heading', { name: 'No access' }).waitFor();

  log('a second person joins for the MFA requirement');
  await admin.getByRole('button', { name: 'Invite User' }).click();
  await admin.getByRole('dialog').getByLabel('Email address').fill('second@example.com');
  await admin.getByRole('dialog').getByRole('button', { name: 'Send Invitation' }).click();
  await card(admin, 'second@example.com').waitFor();
  const secondLink = await waitForLink('second@example.com', known);
  const secondContext = await browser.newContext();
  secondContext.setDefaultTimeout(TIMEOUT);
  const second = await acceptAsNewAccount(secondContext, secondLink, 'second@example.com');

  log('the admin sets up an authenticator app and turns on Require MFA');
  await admin.getByRole('navigation', { name: 'Main navigation' }).getByRole('link', { name: 'Security' }).click();
  await admin.getByRole('heading', { name: 'Security' }).waitFor();
  await admin.getByRole('link', { name: 'Set up authenticator app' }).click();
  await enrollAuthenticator(admin);
  await admin.getByRole('heading', { name: 'Security' }).waitFor();
  await admin.getByRole('switch', { name: 'Require MFA for all users' }).check();
  await admin.getByRole('button', { name: 'Save settings' }).click();
  await admin.getByText('Settings saved.').waitFor();
  await admin.getByRole('table').getByText('workspace.settings_changed').first().waitFor();
  await admin.screenshot({ path: join(ARTIFACTS, 'security.png'), fullPage: true });

  log('the member without MFA is sent to the set-up page, enrolls and gets in');
  await second.reload();
  await second.waitForURL(/\/setup-mfa/);
  await enrollAuthenticator(second);
  await second.waitForURL(/\/w\/[^/]+\/users/);
  await second.getByRole('heading', { name: 'Users' }).waitFor();
  await card(second, 'second@example.com').waitFor();

  check(consoleErrors.length === 0, `no script errors in the admin page: ${consoleErrors.join(' | ')}`);
  log('done');
  await browser.close();
} catch (error) {
  console.error(`FAILED at step "${step}": ${error.message}`);
  if (admin) await admin.screenshot({ path: join(ARTIFACTS, 'failure-admin.png'), fullPage: true }).catch(() => {});
  await browser.close();
  process.exit(1);
}
