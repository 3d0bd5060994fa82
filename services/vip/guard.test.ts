// Proves the bash guard's timing protocol with a real bash (no root: the `ip addr del` it runs
// targets an interface that does not exist and fails quietly): a hold that is not refreshed in
// time expires and is reported once; holds refreshed faster than they run out never expire; a drop
// disarms; a clean stop after a drop reports nothing; an acquire is answered with ip's outcome.
import t from 'tap';
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { execFile, execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guardUnavailable, startGuard } from './guard.js';
import { faketimeLibrary } from '../../test/support/faketime.js';
import { which } from '../../lib/netns.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('hold, refresh, expiry, drop', async (t) => {
  const missing = guardUnavailable();
  if (missing !== null) { t.comment(`SKIPPED: ${missing}`); t.pass('skipped'); return; }
  let expired = 0, exited = 0, renewFailed = 0;
  const guard = startGuard('10.255.255.1/32', 'lhnosuchif0', { expired: () => { expired++; }, exited: () => { exited++; }, renewFailed: () => { renewFailed++; } });
  const until = async (check: () => boolean, ms: number): Promise<void> => {
    for (let waited = 0; waited < ms && !check(); waited += 20) await sleep(20);
  };
  try {
    // Generous holds: on a loaded machine a timer can be late by hundreds of ms.
    for (let i = 0; i < 10; i++) { guard.hold(3000); await sleep(30); }
    t.equal(expired, 0, 'holds refreshed long before they run out never expire');
    guard.hold(100);
    await until(() => expired > 0, 10_000);
    t.equal(expired, 1, 'a hold that was not refreshed expired');
    await sleep(300);
    t.equal(expired, 1, 'and was reported once');
    guard.hold(300);
    guard.drop();
    await sleep(1000);
    t.equal(expired, 1, 'a drop disarms');
    guard.hold(60_000);
    // Renewals and GARPs run in the guard while armed; against a missing interface `ip` fails: reported.
    t.equal(guard.renew(2), true, 'an armed guard takes a renewal');
    await until(() => renewFailed > 0, 10_000);
    t.equal(renewFailed, 1, 'and reports that it failed');
    t.equal(guard.garp(), true, 'and a GARP');
    // The acquiring `ip addr replace` too, answered in order with ip's own words.
    const first = guard.acquire(2), second = guard.acquire(2);
    t.not(first, null, 'an armed guard takes an acquire');
    const answers = await Promise.all([first, second]);
    t.same(answers.map((a) => a?.code), [1, 1], 'each acquire answered, as failed (no such interface)');
    t.match(answers[0]?.stderr ?? '', /lhnosuchif0/, 'with what ip said, on one line');
    guard.drop();
    t.equal(guard.renew(2), false, 'a disarmed guard renews nothing');
    t.equal(guard.garp(), false, 'and sends no GARP');
    t.equal(guard.acquire(2), null, 'and takes no acquire (the caller runs ip itself)');
    // Commands between holds do not stretch a hold: it still runs out on time.
    guard.hold(300);
    for (let i = 0; i < 8; i++) { guard.garp(); await sleep(100); }
    await until(() => expired > 1, 10_000);
    t.equal(expired, 2, 'a hold with GARPs sent after it still expired');
    guard.hold(60_000);
  } finally {
    await guard.stop();
  }
  t.equal(expired, 2, 'a clean stop disarms before it closes');
  t.equal(exited, 0, 'the guard never died on its own');
});

// Renewals go to one long-lived `ip -force -batch -` child of the guard instead of a fork and exec
// of `ip` each (twice a second on an idle leader); the batch is killed before every delete, so a
// renewal queued in it never lands after one. Against a missing interface each renewal still fails
// and is reported. The children are read from /proc.
t.test('renewals go to one long-lived ip batch, which is ended on a drop and before the delete of an expiry', async (t) => {
  const missing = guardUnavailable();
  if (missing !== null) { t.comment(`SKIPPED: ${missing}`); t.pass('skipped'); return; }
  let expired = 0, renewFailed = 0;
  const guard = startGuard('10.255.255.1/32', 'lhnosuchif0', { expired: () => { expired++; }, exited: () => undefined, renewFailed: () => { renewFailed++; } });
  const children = (): string[] => {
    const pid = guard.pid;
    let list: string[] = [];
    try { list = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter((c) => c !== ''); } catch { return []; }
    return list.map((c) => { try { return `${c} ${readFileSync(`/proc/${c}/cmdline`, 'utf8').split('\0').join(' ').trim()}`; } catch { return `${c} (gone)`; } });
  };
  const batches = (): string[] => children().filter((c) => c.endsWith('ip -force -batch -'));
  const until = async (check: () => boolean, ms: number): Promise<void> => {
    for (let waited = 0; waited < ms && !check(); waited += 20) await sleep(20);
  };
  try {
    guard.hold(60_000);
    const seen = new Set<string>();
    for (let i = 1; i <= 3; i++) {
      t.equal(guard.renew(2), true, `renewal ${i} taken`);
      await until(() => renewFailed >= i, 10_000);
      for (const b of batches()) seen.add(b);
    }
    t.equal(renewFailed, 3, 'each failed renewal reported once (ip batch: "Command failed")');
    t.equal(seen.size, 1, `one ip process took all three renewals (${[...seen].join('; ')})`);
    guard.drop();
    await until(() => batches().length === 0, 10_000);
    t.same(batches(), [], 'a drop ends the batch');
    guard.hold(300);
    guard.renew(2);
    await until(() => batches().length === 1 || renewFailed >= 4, 10_000);
    await until(() => expired > 0, 10_000);
    t.equal(expired, 1, 'the hold ran out');
    t.same(batches(), [], 'and the batch was ended before the delete');
  } finally {
    await guard.stop();
  }
});

/**
 * A guard for 10.255.255.1/32 on a missing interface whose PATH starts with stand-in programs (bash
 * bodies given the file they log to); `lines` reads that file.
 */
function guardWithStandIns(programs: Record<string, (ran: string) => string>, events: Parameters<typeof startGuard>[2]) {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-guard-standin-'));
  const ran = join(dir, 'ran');
  for (const [name, body] of Object.entries(programs)) writeFileSync(join(dir, name), `#!/bin/bash\n${body(ran)}\n`, { mode: 0o755 });
  const path = process.env['PATH'];
  process.env['PATH'] = `${dir}:${path ?? ''}`;
  const guard = startGuard('10.255.255.1/32', 'lhnosuchif0', events);
  process.env['PATH'] = path;
  const lines = (): string[] => { try { return readFileSync(ran, 'utf8').trim().split('\n').filter((l) => l !== ''); } catch { return []; } };
  return { guard, dir, lines };
}

t.test('a release runs in the guard: a renewal queued before it (stdin, the ip batch) never lands after its delete; answered', async (t) => {
  // A stand-in `ip` on the guard's PATH writes what it runs to a file; its batch takes each line
  // 0.3 s late (a loaded machine), so a renewal is still queued in it when the release comes.
  const missing = guardUnavailable();
  if (missing !== null) { t.comment(`SKIPPED: ${missing}`); t.pass('skipped'); return; }
  const { guard, dir, lines } = guardWithStandIns({
    ip: (ran) => `if [ "$1" = -force ]; then while read -r line; do sleep 0.3; echo "batch $line" >> '${ran}'; done; exit 0; fi
echo "$*" >> '${ran}'`,
  }, { expired: () => undefined, exited: () => undefined });
  try {
    guard.hold(60_000);
    t.equal(guard.renew(2), true, 'a renewal taken (into the batch, 0.3 s late)');
    const answer = await guard.release();
    t.same(answer, { code: 0, stderr: '' }, 'the release answered with ip\'s outcome');
    t.same(lines(), ['addr del 10.255.255.1/32 dev lhnosuchif0'], 'the delete ran, the queued renewal not before it');
    await sleep(800);
    t.same(lines(), ['addr del 10.255.255.1/32 dev lhnosuchif0'], 'nor after it: the batch was ended first');
    t.equal(guard.renew(2), false, 'a released guard is disarmed: no renewal');
    guard.hold(60_000);
    guard.renew(2);
    await sleep(500);
    t.match(lines().at(-1), /^batch address replace 10.255.255.1\/32 dev lhnosuchif0 valid_lft 2/, 'armed again by a hold: renewals run');
  } finally {
    await guard.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

t.test('a GARP forked just before a release is ended before the delete: it never announces the VIP after it is gone', async (t) => {
  // A stand-in `arping` that takes 0.4 s to send (a fork and exec on a loaded machine) and then
  // writes that it sent; a stand-in `ip` that writes what it runs. Before, the arping the `garp`
  // line forked went on in the background and sent after the release's delete.
  const missing = guardUnavailable();
  if (missing !== null) { t.comment(`SKIPPED: ${missing}`); t.pass('skipped'); return; }
  let expired = 0;
  const { guard, dir, lines } = guardWithStandIns({
    ip: (ran) => `echo "$*" >> '${ran}'`,
    arping: (ran) => `sleep 0.4\necho "arping sent $*" >> '${ran}'`,
  }, { expired: () => { expired++; }, exited: () => undefined });
  try {
    guard.hold(60_000);
    t.equal(guard.garp(), true, 'a GARP taken');
    t.same(await guard.release(), { code: 0, stderr: '' }, 'the release answered');
    await sleep(900);
    t.same(lines(), ['addr del 10.255.255.1/32 dev lhnosuchif0'], 'the delete ran, and no GARP went out after it');
    // The same for a hold that runs out (the daemon paused): the arping in flight ends before the delete.
    guard.hold(300);
    guard.garp();
    for (let waited = 0; waited < 10_000 && expired === 0; waited += 20) await sleep(20);
    await sleep(900);
    t.equal(expired, 1, 'the hold ran out');
    t.notOk(lines().some((l) => l.startsWith('arping sent')), `no GARP after an expiry's delete either: ${JSON.stringify(lines())}`);
    // A GARP left to run (no release) still goes out: only those in flight at a delete are ended.
    guard.hold(60_000);
    guard.garp();
    await sleep(900);
    t.match(lines().at(-1), /^arping sent -U -c 1 -I lhnosuchif0 10.255.255.1$/, 'a GARP with the VIP held is sent');
  } finally {
    await guard.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

// The guard's hold runs on monotonic time: a wall-clock step neither ends a hold early nor
// stretches one. libfaketime moves the clock of a bash whose parent runs under it too (started
// alone, bash kept the real time), so the guard is driven from a child node process under
// libfaketime, as in the fault lab where the daemon runs under it. Before, a step forward ended
// the hold at once (bash times `read -t` on the wall clock) and after a step back a hold that
// other commands woke ran for the size of the step (EPOCHREALTIME).
const DRIVER = `
import { writeFileSync } from 'node:fs';
const { startGuard } = await import(process.env.GUARD_MODULE);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let expired = 0;
let expiredAt = 0;
const guard = startGuard('10.255.255.1/32', 'lhnosuchif0', { expired: () => { expired++; expiredAt = performance.now(); }, exited: () => {} });
for (let i = 0; i < 150; i++) {
  guard.hold(1200);
  if (i === 30) writeFileSync(process.env.FAKETIME_TIMESTAMP_FILE, '+3600s\\n');
  await sleep(10);
}
const forward = expired;
// A 3 s hold, then the clock steps back and only other commands (GARPs) reach the guard.
guard.hold(3000);
const last = performance.now();
writeFileSync(process.env.FAKETIME_TIMESTAMP_FILE, '-3600s\\n');
while (expired === forward && performance.now() - last < 8000) { guard.garp(); await sleep(200); }
console.log(JSON.stringify({ forward, expiredAfterMs: expired > forward ? Math.round(expiredAt - last) : null }));
await guard.stop();
`;

t.test('a wall-clock step neither ends a hold nor stretches it', async (t) => {
  const missing = guardUnavailable();
  const lib = faketimeLibrary();
  if (missing !== null || lib === null) {
    const why = missing ?? 'libfaketime is not installed (Debian package faketime)';
    if (process.env['CI'] === 'true' && lib === null) t.fail(`CI: ${why}`);
    else { t.comment(`SKIPPED: ${why}`); t.pass('skipped'); }
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'lanha-guard-'));
  const offset = join(dir, 'faketime');
  writeFileSync(offset, '+0s\n');
  try {
    const out = await new Promise<string>((resolve) => {
      execFile(process.execPath, ['--input-type=module', '-e', DRIVER], {
        timeout: 30_000,
        env: {
          ...process.env, GUARD_MODULE: new URL('./guard.js', import.meta.url).href,
          LD_PRELOAD: lib, FAKETIME_TIMESTAMP_FILE: offset, FAKETIME_CACHE_DURATION: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1',
        },
      }, (_error, stdout) => resolve(stdout));
    });
    const r = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { forward?: number; expiredAfterMs?: number | null };
    t.equal(r.forward, 0, 'holds renewed every 10 ms never expire across a step of +1 h');
    t.ok(typeof r.expiredAfterMs === 'number' && r.expiredAfterMs >= 2900 && r.expiredAfterMs < 30_000, `a 3 s hold across a step of -1 h still runs out after about 3 s, not an hour (${r.expiredAfterMs} ms; the bound is a hang guard)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

t.test("the guard's bash reads no dotfiles: Node's pipes are sockets, and bash then sources ~/.bashrc as for rsh", async (t) => {
  const missing = guardUnavailable();
  if (missing !== null) { t.comment(`SKIPPED: ${missing}`); t.pass('skipped'); return; }
  // A root ~/.bashrc that waited on a stale pyenv lock held the first VIP of a new cluster 60 s.
  const home = mkdtempSync(join(tmpdir(), 'lanha-guard-home-'));
  const env = join(home, 'bash-env');
  writeFileSync(join(home, '.bashrc'), `touch ${join(home, 'bashrc-ran')}\n`);
  writeFileSync(env, `touch ${join(home, 'bash-env-ran')}\n`);
  const saved = { HOME: process.env['HOME'], BASH_ENV: process.env['BASH_ENV'], SHLVL: process.env['SHLVL'] };
  process.env['HOME'] = home;
  process.env['BASH_ENV'] = env;
  delete process.env['SHLVL']; // as under systemd: bash is then a top-level shell, the one that sources ~/.bashrc
  const guard = startGuard('10.255.255.1/32', 'lhnosuchif0', { expired: () => undefined, exited: () => undefined });
  for (const [k, v] of Object.entries(saved)) { if (v === undefined) delete process.env[k]; else process.env[k] = v; }
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  try {
    guard.hold(60_000);
    const r = await guard.acquire(2); // answered after bash started, so after any dotfile it ran
    t.equal(r?.code, 1, 'the guard answered (ip fails on the missing interface)');
    t.throws(() => readFileSync(join(home, 'bashrc-ran')), 'no ~/.bashrc');
    t.throws(() => readFileSync(join(home, 'bash-env-ran')), 'no $BASH_ENV');
  } finally {
    guard.drop();
    await guard.stop();
  }
});

t.test('a guard that cannot be started for want of descriptors is started again once they are free (a failed spawn has no exit)', async (t) => {
  const missing = guardUnavailable();
  if (missing !== null) { t.comment(`SKIPPED: ${missing}`); t.pass('skipped'); return; }
  if (!which('prlimit')) { process.stderr.write('\n*** SKIPPED guard descriptor test: no prlimit\n'); t.pass('SKIPPED: no prlimit'); return; }
  let exited = 0;
  const guard = startGuard('10.255.255.1/32', 'lhsnosuch0', { expired: () => undefined, exited: () => { exited++; } }, 100);
  t.teardown(() => guard.stop());
  for (let i = 0; i < 50 && guard.pid === undefined; i++) await sleep(20);
  const first = guard.pid;
  t.ok(first !== undefined, 'the guard runs');
  const [soft, hard] = execFileSync('prlimit', ['--pid', String(process.pid), '--nofile', '--noheadings', '--output=SOFT,HARD'], { encoding: 'utf8' }).trim().split(/\s+/);
  const held: number[] = [];
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${readdirSync('/proc/self/fd').length + 40}:${hard}`]);
    try { for (let i = 0; i < 100_000; i++) held.push(openSync('/dev/null', 'r')); } catch { /* EMFILE: every descriptor taken */ }
    process.kill(first!, 'SIGKILL');
    await sleep(600); // its restarts, every 100 ms, fail (EMFILE for the pipes)
    t.equal(guard.pid, undefined, 'no guard while descriptors are out');
  } finally {
    for (const fd of held) closeSync(fd);
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${soft}:${hard}`]);
  }
  for (let i = 0; i < 100 && guard.pid === undefined; i++) await sleep(50);
  t.ok(guard.pid !== undefined && guard.pid !== first, `the guard runs again once descriptors are free (pid ${guard.pid}; a failed spawn was never tried again)`);
  t.ok(exited >= 2, `each failed start is reported as the guard gone (${exited})`);
});

t.test('a guard that does not answer a release in time (an ip stuck in the kernel) is killed: the caller falls back, the guard starts again', async (t) => {
  const missing = guardUnavailable();
  if (missing !== null) { t.comment(`SKIPPED: ${missing}`); t.pass('skipped'); return; }
  // A stand-in `ip` whose `addr del` never returns (as under a held rtnl lock); it records its PID
  // so the test ends it (killing the guard leaves its child behind, as it would a real stuck ip).
  const dir = mkdtempSync(join(tmpdir(), 'lanha-guard-wedged-'));
  const pids = join(dir, 'pids');
  writeFileSync(join(dir, 'ip'), `#!/bin/bash
if [ "$1" = -force ]; then cat >/dev/null; exit 0; fi
if [ "$2" = del ]; then echo $$ >> '${pids}'; exec sleep 60; fi
exit 0
`, { mode: 0o755 });
  const path = process.env['PATH'];
  process.env['PATH'] = `${dir}:${path ?? ''}`;
  const wedged: string[] = [];
  let exited = 0;
  const guard = startGuard('10.255.255.1/32', 'lhnosuchif0', { expired: () => undefined, exited: () => { exited++; }, wedged: (command) => { wedged.push(command); } }, 100, 400);
  process.env['PATH'] = path;
  try {
    for (let i = 0; i < 50 && guard.pid === undefined; i++) await sleep(20);
    const first = guard.pid;
    guard.hold(60_000);
    const began = performance.now();
    const answer = await guard.release();
    const waited = performance.now() - began;
    t.equal(answer?.code, -1, 'the release comes back unanswered (the caller then runs ip itself)');
    t.ok(waited < 10_000, `it did not wait for the stuck ip (${Math.round(waited)} ms; it sleeps 60 s)`);
    t.same(wedged, ['release'], 'the wedged guard was said');
    for (let i = 0; i < 100 && (guard.pid === undefined || guard.pid === first); i++) await sleep(20);
    t.ok(guard.pid !== undefined && guard.pid !== first, 'a new guard runs');
    t.ok(exited >= 1, 'the old one was reported gone');
    guard.hold(60_000);
    const again = await guard.acquire(2);
    // Started again with the real ip (the stand-in was on the PATH of the first start only): it
    // answers with ip's outcome on the missing interface.
    t.ok(again !== null && again.code !== -1 && /lhnosuchif0/.test(again.stderr), `the new guard answers (${again?.stderr ?? 'no guard'})`);
  } finally {
    await guard.stop();
    for (const pid of readFileSync(pids, 'utf8').trim().split('\n').filter((l) => l !== '')) { try { process.kill(Number(pid), 'SIGKILL'); } catch { /* ended */ } }
    rmSync(dir, { recursive: true, force: true });
  }
});
