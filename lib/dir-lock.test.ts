import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireDirLock, lockHolder, lockText, parseLock, releaseDirLock } from './dir-lock.js';

// The state directory's LOCK: a live owner keeps it, a dead one's is taken over, and a LOCK whose
// PID now belongs to another program (a reboot after a crash) is stale, not "in use" (the daemon
// refused to start until an operator removed it). Real processes: sleep children stand in for
// the programs that get a crashed daemon's PID, and eight node processes race for one directory.

function scratch(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-lock-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function sleeper(t: { teardown(fn: () => void): void }): ChildProcess {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.teardown(() => { child.kill('SIGKILL'); });
  return child;
}

const BOOT = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

t.test('a LOCK names this process by PID, start time and boot; close releases only our own', async (t) => {
  const dir = scratch(t);
  t.equal(acquireDirLock(dir), null);
  const owner = parseLock(readFileSync(join(dir, 'LOCK'), 'utf8'));
  t.equal(owner?.pid, process.pid);
  t.equal(owner?.bootId, BOOT);
  t.match(owner?.startTicks ?? '', /^\d+$/);
  t.equal(lockHolder(dir), process.pid);
  t.equal(acquireDirLock(dir), null, 'taken again by its holder');
  t.same(readdirSync(dir).sort(), ['LOCK'], 'no temporary files left');
  releaseDirLock(dir);
  t.equal(lockHolder(dir), undefined);
  const other = sleeper(t);
  writeFileSync(join(dir, 'LOCK'), lockText(other.pid!));
  releaseDirLock(dir);
  t.equal(lockHolder(dir), other.pid, 'another process\'s LOCK is not removed');
});

t.test('a live owner keeps the directory', async (t) => {
  const dir = scratch(t);
  const other = sleeper(t);
  writeFileSync(join(dir, 'LOCK'), lockText(other.pid!));
  t.equal(acquireDirLock(dir), other.pid);
  t.equal(lockHolder(dir), other.pid);
});

t.test('a PID that now belongs to another program (started later, or in another boot) is a stale LOCK', async (t) => {
  const dir = scratch(t);
  const other = sleeper(t);
  const real = parseLock(lockText(other.pid!))!;
  writeFileSync(join(dir, 'LOCK'), `${other.pid}\n1 ${BOOT}\n`);
  t.equal(lockHolder(dir), undefined, 'another start time');
  t.equal(acquireDirLock(dir), null, 'taken over');
  t.equal(lockHolder(dir), process.pid);
  writeFileSync(join(dir, 'LOCK'), `${other.pid}\n${real.startTicks} 00000000-0000-4000-8000-000000000000\n`);
  t.equal(lockHolder(dir), undefined, 'another boot');
  t.equal(acquireDirLock(dir), null);
  writeFileSync(join(dir, 'LOCK'), `${other.pid}\n`);
  t.equal(lockHolder(dir), other.pid, 'a PID alone (an older version\'s LOCK) is judged by the PID');
  writeFileSync(join(dir, 'LOCK'), '999999999\n');
  t.equal(acquireDirLock(dir), null, 'no such process: taken over');
  writeFileSync(join(dir, 'LOCK'), 'garbage');
  t.equal(acquireDirLock(dir), null, 'a LOCK naming no process: taken over');
  t.same(readdirSync(dir).sort(), ['LOCK']);
});

t.test('eight processes started at once on one directory: exactly one holds it', async (t) => {
  const dir = scratch(t);
  // A stale LOCK too, so the racers also race through the take-over.
  writeFileSync(join(dir, 'LOCK'), '999999999\n');
  const module = new URL('./dir-lock.js', import.meta.url).href;
  const script = `const { acquireDirLock } = await import(${JSON.stringify(module)});
    const r = acquireDirLock(${JSON.stringify(dir)}); process.stdout.write(r === null ? 'held\\n' : 'refused ' + r + '\\n');
    setTimeout(() => undefined, 3000);`;
  const children = Array.from({ length: 8 }, () => spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] }));
  t.teardown(() => { for (const c of children) c.kill('SIGKILL'); });
  const answers = await Promise.all(children.map((c) => new Promise<string>((resolve) => {
    let out = '';
    c.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('\n')) resolve(out.trim()); });
    c.once('exit', () => resolve(out.trim()));
  })));
  const held = answers.filter((a) => a === 'held');
  t.equal(held.length, 1, `one holder: ${answers.join(', ')}`);
  const holder = children[answers.indexOf('held')]!.pid;
  t.equal(lockHolder(dir), holder, 'the LOCK names it');
  t.ok(answers.every((a) => a === 'held' || a === `refused ${holder}`), 'the others are told its PID');
});
