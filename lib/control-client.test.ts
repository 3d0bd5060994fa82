import t from 'tap';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { permissionDenied } from './control-client.js';

// EACCES on the control socket says which group may use it, by name, and the command that joins it.

t.test('permission denied names the socket\'s group and how to join it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-ctl-'));
  try {
    const socket = join(dir, 'lanha.sock');
    writeFileSync(socket, '');
    const gid = statSync(socket).gid;
    const groups = join(dir, 'group');
    writeFileSync(groups, `wheel:x:${gid + 1}:\nlanha:x:${gid}:alice\n`);
    t.equal(permissionDenied(socket, groups),
      `permission denied on ${socket}: run lanctl as root (sudo), or as a member of group lanha (sudo usermod -aG lanha $USER, then log in again)`);
    writeFileSync(groups, 'other:x:99999:\n');
    t.match(permissionDenied(socket, groups), new RegExp(`member of group ${gid}$`), 'a gid with no name: the number');
    const hidden = join(dir, 'run', 'lanha.sock'); // its directory is what refused (or is gone): that directory's group
    t.match(permissionDenied(hidden, join(dir, 'none')), /member of the daemon's group$/, 'nothing to stat: says the daemon\'s group');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

t.test('a target that starts like a remote daemon but is not one: a usage error that says what to give, not a crash', async (t) => {
  const { callDaemon } = await import('./control-client.js');
  for (const target of ['https://[x', 'https://1.2.3.4:99999#x']) {
    await t.rejects(callDaemon(target, 'GET', '/v1/status'), { code: 'usage', message: /neither a control socket path nor a remote daemon: name a remote one with --remote/ }, target);
  }
});

t.test('no reply in time, or a daemon that closes while answering, is said as such (not "cannot talk", not the connection cap)', async (t) => {
  const { callDaemon } = await import('./control-client.js');
  const { createServer } = await import('node:net');
  const dir = mkdtempSync(join(tmpdir(), 'lanha-ctl-'));
  const held: Array<import('node:net').Socket> = [];
  const silent = createServer((s) => { held.push(s); });
  const closing = createServer((s) => { setTimeout(() => s.destroy(), 1500); });
  t.teardown(() => { for (const s of held) s.destroy(); silent.close(); closing.close(); rmSync(dir, { recursive: true, force: true }); });
  const a = join(dir, 'silent.sock');
  const b = join(dir, 'closing.sock');
  await new Promise<void>((resolve) => silent.listen(a, resolve));
  await new Promise<void>((resolve) => closing.listen(b, resolve));
  await t.rejects(callDaemon(a, 'POST', '/v1/nodes/power', {}, 300), { message: `the daemon at ${a} sent no reply within 0.3 s: it may still be at work on the request, or be stuck (its log says which)` });
  await t.rejects(callDaemon(b, 'POST', '/v1/nodes/power', {}, 10_000), { message: /closed the connection while answering .*did it stop or restart\?/ });
});
