import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OUTPUT_MAX, PowerRunner, missingPowerPrograms, runPower, runPowerCommand } from './power-run.js';
import type { PowerPlan } from './power.js';
import { powerConfig } from './power-config.js';

// Running power commands for real (/bin/sh): results, output, timeouts that end the whole process
// group, programs that do not exist, and the cap on commands at once.

const dir = mkdtempSync(join(tmpdir(), 'lanha-power-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const sh = (node: string, script: string): PowerPlan => ({ node, ok: true, argv: ['/bin/sh', '-c', script], env: { LANHA_NAME: node } });
const opts = { timeoutMs: 20_000, parallel: 4 };

t.test('exit 0 is ok with its output; another exit is failed with stderr; the plan\'s variables are in the environment', async (t) => {
  const ok = await runPowerCommand(sh('n1', 'echo "power is on for $LANHA_NAME"'), opts);
  t.match(ok, { node: 'n1', result: 'ok', exitCode: 0, output: 'power is on for n1', error: '' });
  const bad = await runPowerCommand(sh('n2', 'echo "BMC n2 unreachable" >&2; exit 3'), opts);
  t.match(bad, { node: 'n2', result: 'failed', exitCode: 3, error: 'BMC n2 unreachable' });
  const missing = await runPowerCommand({ node: 'n3', ok: true, argv: [join(dir, 'no-such-pdu'), 'on'], env: {} }, opts);
  t.match(missing, { node: 'n3', result: 'failed', exitCode: null, error: /could not run .*no-such-pdu: spawn .* ENOENT/ });
  const unplanned = await runPowerCommand({ node: 'n4', ok: false, error: 'no power command for "on"' }, opts);
  t.match(unplanned, { node: 'n4', result: 'failed', error: 'no power command for "on"' });
});

t.test('output is kept up to OUTPUT_MAX bytes', async (t) => {
  const big = await runPowerCommand(sh('n1', 'head -c 100000 /dev/zero | tr "\\0" x'), opts);
  t.equal(big.result, 'ok');
  t.equal(big.output.length, OUTPUT_MAX);
});

t.test('a timeout ends the command and what it started', async (t) => {
  const pidFile = join(dir, 'grandchild.pid');
  // The command starts a background sleeper holding its stdout, then hangs itself.
  const r = await runPowerCommand(sh('slow', `sleep 600 & echo $! > ${pidFile}; sleep 600`), { timeoutMs: 300, parallel: 1 });
  t.match(r, { node: 'slow', result: 'timeout', error: /ended after 300 ms \(power\.timeout\)/ });
  const pid = Number(readFileSync(pidFile, 'utf8'));
  t.ok(pid > 0, `the background sleeper was ${pid}`);
  let alive = true;
  for (let i = 0; i < 50 && alive; i++) {
    try { process.kill(pid, 0); await new Promise((r) => setTimeout(r, 100)); } catch { alive = false; }
  }
  t.notOk(alive, 'the background sleeper was ended with the command');
});

t.test('at most `parallel` commands at once, every one run, results in order', async (t) => {
  const running = join(dir, 'running');
  const log = join(dir, 'seen');
  writeFileSync(log, '');
  // Each command marks itself running, records how many are running, waits, unmarks.
  const script = (n: number): string => `mkdir -p ${running}; touch ${running}/${n}; ls ${running} | wc -l >> ${log}; sleep 0.2; rm ${running}/${n}`;
  const plans = Array.from({ length: 6 }, (_, n) => sh(`n${n}`, script(n)));
  const results = await runPower(plans, { timeoutMs: 20_000, parallel: 2 });
  t.same(results.map((r) => [r.node, r.result]), plans.map((p) => [p.node, 'ok']));
  const seen = readFileSync(log, 'utf8').trim().split('\n').map(Number);
  t.equal(seen.length, 6, 'six commands ran');
  t.ok(Math.max(...seen) <= 2, `never more than 2 at once (seen ${seen.join(', ')})`);
  t.ok(existsSync(running) && readdirSync(running).length === 0, 'every command finished');
});

t.test('programs this machine could not start are named, each once, with where the config names them', async (t) => {
  const script = join(dir, 'pdu');
  writeFileSync(script, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  const notExec = join(dir, 'pdu-noexec');
  writeFileSync(notExec, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
  const config = powerConfig.parse({
    command: [script, '{{action}}'], status: ['sh', '-c', 'true'], off: [notExec],
    groups: { r2: { command: ['no-such-ipmitool', '{{name}}'], cycle: [join(dir, 'missing')] }, r3: { on: ['no-such-ipmitool'] } },
  });
  t.same(missingPowerPrograms(config, `/usr/bin:/bin`), [
    `power.off: ${notExec} is not an executable file here: lanctl nodes power would fail for the nodes it serves`,
    'power.groups.r2.command, power.groups.r3.on: no-such-ipmitool is not found in PATH here: lanctl nodes power would fail for the nodes it serves',
    `power.groups.r2.cycle: ${join(dir, 'missing')} is not an executable file here: lanctl nodes power would fail for the nodes it serves`,
  ]);
  t.same(missingPowerPrograms(powerConfig.parse({ command: ['pdu'] }), dir), [], 'a name found in PATH');
});

/** Waits up to `ms` for `work`; a hang is a failed assertion, not a test that never ends. */
async function within<T>(ms: number, work: Promise<T>): Promise<T | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => { timer = setTimeout(() => resolve('hung'), ms); });
  try { return await Promise.race([work, hung]); } finally { clearTimeout(timer); }
}

const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true; } catch { return false; } };

t.test('a command that exits at once is done at once, though it left a background process holding its output', async (t) => {
  const pidFile = join(dir, 'bg.pid');
  // The power timeout is far past the hang guard: a result that waited for the sleeper (600 s)
  // never comes within it, however loaded the machine; one that did not is `ok`.
  const r = await within(30_000, runPowerCommand(sh('bg', `sleep 600 & echo $! > ${pidFile}; echo switched`), { timeoutMs: 120_000, parallel: 1 }));
  t.not(r, 'hung', 'a result came without waiting for the background sleeper');
  if (r === 'hung') return;
  t.match(r, { result: 'ok', exitCode: 0, output: 'switched' }, `ok, not a timeout (the old code waited for the background sleep and said timeout), in ${r.ms} ms`);
  const pid = Number(readFileSync(pidFile, 'utf8'));
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((res) => setTimeout(res, 100));
  t.notOk(alive(pid), 'the background sleeper in its group was ended with it');
});

t.test('a process the command moved out of its group (setsid) holding the output does not hang the result, nor a timeout', async (t) => {
  const pids: number[] = [];
  t.teardown(() => { for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } } });
  for (const [i, tail] of [['ok', 'echo started'], ['hung', 'sleep 600']] as const) {
    const pidFile = join(dir, `setsid-${i}.pid`);
    // The escaped process ignores SIGTERM and is in a session of its own: no group signal reaches it.
    const script = `setsid sh -c 'trap "" TERM; echo $$ > ${pidFile}; exec sleep 600' & while [ ! -s ${pidFile} ]; do sleep 0.05; done; ${tail}`;
    // The `ok` one has a timeout past the hang guard, so only an answer that did not wait for the
    // escaped process comes in time; the `hung` one's 1.5 s is what it checks.
    const r = await within(30_000, runPowerCommand(sh(i, script), { timeoutMs: i === 'ok' ? 120_000 : 1500, parallel: 1 }));
    pids.push(Number(readFileSync(pidFile, 'utf8')));
    t.not(r, 'hung', `${i}: a result came (the old code waited for the escaped process, for ever)`);
    if (r === 'hung') continue;
    if (i === 'ok') t.match(r, { result: 'ok', exitCode: 0, output: 'started', error: /still held open by a process it started outside its process group/ });
    else t.match(r, { result: 'timeout', error: /ended after 1500 ms/ });
  }
});

t.test('a runner keeps `parallel` over every request at once, and stop() ends the commands still running', async (t) => {
  const running = join(dir, 'shared');
  const log = join(dir, 'shared-seen');
  writeFileSync(log, '');
  const script = (n: string): string => `mkdir -p ${running}; touch ${running}/${n}; ls ${running} | wc -l >> ${log}; sleep 0.2; rm ${running}/${n}`;
  const runner = new PowerRunner(2);
  const a = Array.from({ length: 4 }, (_, n) => sh(`a${n}`, script(`a${n}`)));
  const b = Array.from({ length: 4 }, (_, n) => sh(`b${n}`, script(`b${n}`)));
  const [ra, rb] = await Promise.all([runner.run(a, { timeoutMs: 20_000 }), runner.run(b, { timeoutMs: 20_000 })]);
  t.same([...ra!, ...rb!].map((r) => r.result), Array(8).fill('ok'));
  const seen = readFileSync(log, 'utf8').trim().split('\n').map(Number);
  t.equal(seen.length, 8);
  t.ok(Math.max(...seen) <= 2, `never more than 2 at once over both requests (seen ${seen.join(', ')})`);
  const pidFile = join(dir, 'stopped.pid');
  const hanging = runner.run([sh('h', `sleep 600 & echo $! > ${pidFile}; sleep 600`)], { timeoutMs: 60_000 });
  while (!existsSync(pidFile) || readFileSync(pidFile, 'utf8') === '') await new Promise((res) => setTimeout(res, 50));
  t.equal(runner.stop(), 1, 'one command was running');
  const [r] = await within(5000, hanging) as Awaited<typeof hanging>;
  t.match(r, { result: 'failed', signal: 'SIGKILL' });
  const pid = Number(readFileSync(pidFile, 'utf8'));
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((res) => setTimeout(res, 100));
  t.notOk(alive(pid), 'what it started went with it');
});

t.test('a power command does not inherit systemd\'s notify socket or watchdog (NotifyAccess=all: it could ping for a hung daemon)', async (t) => {
  const env = { PATH: process.env['PATH'], NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '5000000', WATCHDOG_PID: '1', LISTEN_FDS: '1', KEEP: 'yes' };
  const r = await runPowerCommand(sh('n1', 'echo "${NOTIFY_SOCKET-none} ${WATCHDOG_USEC-none} ${WATCHDOG_PID-none} ${LISTEN_FDS-none} $KEEP $LANHA_NAME"'), { ...opts, env });
  t.equal(r.output, 'none none none none yes n1');
});

t.test('control characters in a command\'s output (a BMC\'s answer) reach no terminal: "?" but line breaks and tabs', async (t) => {
  const r = await runPowerCommand(sh('n1', 'printf "\\033]0;owned\\007\\033[2J power: on\\tok\\nline2\\r\\n"; printf "err\\033[31m red\\n" >&2; exit 1'), opts);
  t.equal(r.output, '?]0;owned??[2J power: on\tok\nline2?');
  t.equal(r.error, 'err?[31m red');
});
