import t from 'tap';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { readHexPacket } from '../../test/support/hex.js';
import { repoPath } from '../../test/support/paths.js';
import { KernelCapture, type CaptureState } from './capture.js';
import type { CapturedDatagram } from './pcap.js';

// The capture child's shell, with stand-in programs in place of tcpdump (no root, no capture): a
// child that opens and writes a real tcpdump stream gives its request; one that writes garbage, or
// dies, is restarted with a backoff and never throws; a missing program is 'unavailable'; bypass
// stops the child and resume starts a new one; a service killed with SIGKILL takes its child along. The real tcpdump runs in
// test/integ/ntp-clients.test.ts.

const dir = mkdtempSync(join(tmpdir(), 'lanha-capture-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const stream = Buffer.from(readHexPacket(repoPath('test', 'golden', 'ntp', 'tcpdump-any-sll2-ns.hex')));

/** A stand-in capture program: prints `stderr`, writes `stdoutHex`, then sleeps or exits. */
function program(name: string, stderr: string, stdoutHex: string, exitCode: number | null): string {
  const path = join(dir, name);
  const body = `process.stderr.write(${JSON.stringify(stderr)}); process.stdout.write(Buffer.from(${JSON.stringify(stdoutHex)}, 'hex'));`
    + (exitCode === null ? ' setInterval(() => {}, 1000);' : ` process.stdout.end(() => process.exit(${exitCode}));`);
  writeFileSync(path, `#!${process.execPath}\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

function watch(command: string): { capture: KernelCapture; states: Array<[CaptureState, string]>; requests: CapturedDatagram[]; until: (s: CaptureState) => Promise<void> } {
  const states: Array<[CaptureState, string]> = [];
  const requests: CapturedDatagram[] = [];
  const waiting: Array<{ state: CaptureState; resolve: () => void }> = [];
  const capture = new KernelCapture({
    port: 123, command,
    onRequest: (r) => requests.push(r),
    onReply: () => {},
    isOwnAddress: () => false,
    onState: (state, detail) => {
      states.push([state, detail]);
      for (const w of waiting.filter((x) => x.state === state)) { waiting.splice(waiting.indexOf(w), 1); w.resolve(); }
    },
  });
  const until = (state: CaptureState): Promise<void> => (capture.state === state ? Promise.resolve() : new Promise((resolve) => waiting.push({ state, resolve })));
  return { capture, states, requests, until };
}

t.test('a child that opens and writes a capture gives its requests', async (t) => {
  const w = watch(program('good', 'tcpdump: listening on any, link-type LINUX_SLL2\n', stream.toString('hex'), null));
  w.capture.start();
  await w.until('running');
  t.ok(w.capture.active);
  while (w.requests.length === 0) await new Promise((r) => setTimeout(r, 20));
  t.match(w.requests, [{ address: '127.0.0.1', port: 52291, destinationPort: 123, kernelNs: 1796272348_875107820n }]);
  t.match(w.capture.commandLine().slice(1), ['-i', 'any', '-U', '--immediate-mode', '-w', '-'], 'tcpdump is asked for an unbuffered pcap stream');
  w.capture.bypass('a flood');
  t.equal(w.capture.state, 'bypassed');
  t.notOk(w.capture.active, 'no stamps asked for while bypassed');
  w.capture.resume('quiet again');
  await w.until('running');
  t.equal(w.capture.starts, 2, 'resume started a new child');
  w.capture.stop();
  t.equal(w.capture.state, 'stopped');
});

t.test('garbage on the pipe or a dying child: restarted with a backoff, never a throw', async (t) => {
  const w = watch(program('garbage', 'tcpdump: listening on any\n', Buffer.from('this is not pcap at all, sorry').toString('hex'), null));
  w.capture.start();
  await w.until('restarting');
  t.match(w.states.at(-1), ['restarting', /capture output unreadable: not a pcap stream.*again in 1 s/]);
  t.notOk(w.capture.active);
  w.capture.stop();

  const d = watch(program('dies', 'tcpdump: any: You don\'t have permission to capture on that device\n', '', 1));
  d.capture.start();
  await d.until('restarting');
  t.match(d.capture.problem, /exited \(code 1\): tcpdump: any: You don't have permission/);
  await new Promise<void>((resolve) => { const check = (): void => { if (d.capture.starts >= 2 && d.capture.state === 'restarting') resolve(); else setTimeout(check, 50); }; check(); });
  t.match(d.capture.problem, /again in 2 s/, 'the second failure waits twice as long');
  d.capture.stop();
  t.equal(d.capture.state, 'stopped');
});

t.test('no capture program: unavailable, not retried', async (t) => {
  const w = watch(join(dir, 'no-such-tcpdump'));
  w.capture.start();
  await w.until('unavailable');
  t.match(w.capture.problem, /not found/);
  t.equal(w.capture.starts, 1);
  w.capture.stop();
});

t.test('a service process killed with SIGKILL takes its capture child along', async (t) => {
  const good = program('sleeper', 'tcpdump: listening on any\n', stream.toString('hex'), null);
  const url = new URL('./capture.js', import.meta.url).href;
  const script = `const { KernelCapture } = await import(${JSON.stringify(url)});
    const c = new KernelCapture({ port: 123, command: ${JSON.stringify(good)}, onRequest() {}, onReply() {}, isOwnAddress: () => false,
      onState(s) { if (s === 'running') process.stdout.write(String(c.pid) + '\\n'); } });
    c.start(); setInterval(() => {}, 1000);`;
  const service = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const pid = await new Promise<number>((resolve, reject) => {
    service.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    service.once('exit', (code) => reject(new Error(`service exited ${code}`)));
  });
  const alive = (p: number): boolean => { try { process.kill(p, 0); return true; } catch { return false; } };
  t.ok(pid > 0 && alive(pid), `the capture child ${pid} runs`);
  service.kill('SIGKILL');
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  t.notOk(alive(pid), 'and is gone once the service is');
  if (alive(pid)) process.kill(pid, 'SIGKILL');
});
