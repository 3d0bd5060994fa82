// Proves a step of the wall clock under a running daemon is said once (daemon.clock_step, and
// `clock` in the status) and does not move its uptime, which is monotonic (a step back of three
// hours made it negative). The daemon runs on a clock whose wall part the test steps.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../config/index.js';
import { createLogger } from '../lib/log.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { startDaemon } from './daemon.js';

t.test('a wall-clock step of -3 h: logged once as daemon.clock_step, counted in status, uptime unmoved', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-clock-'));
  let offsetMs = 0;
  const clock: Clock = { monotonicMs: () => systemClock.monotonicMs(), wallMs: () => systemClock.wallMs() + offsetMs };
  const lines: Array<{ event?: string; stepMs?: number }> = [];
  const log = createLogger({ level: 'info', destination: { write: (line: string) => { lines.push(JSON.parse(line) as { event?: string }); } } });
  const config = parseConfig(`node: { name: solo, stateDir: "${dir}/state", controlSocket: "${dir}/lanha.sock", logLevel: info }\n`);
  const daemon = await startDaemon(config, { log, clock });
  t.teardown(async () => {
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  offsetMs = -3 * 3600_000;
  for (let i = 0; i < 50 && !lines.some((l) => l.event === 'daemon.clock_step'); i++) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 1100));
  const steps = lines.filter((l) => l.event === 'daemon.clock_step');
  t.equal(steps.length, 1, 'logged once');
  t.ok(Math.abs((steps[0]?.stepMs ?? 0) + 3 * 3600_000) < 1000, `with its size (${steps[0]?.stepMs} ms)`);
  const body = (await daemon.control.read('/v1/status', new URLSearchParams())).body as { uptimeSeconds: number; clock: { steps: number; last: { stepMs: number } | null } };
  t.ok(body.uptimeSeconds >= 0 && body.uptimeSeconds < 60, `uptime ${body.uptimeSeconds} s: monotonic, not moved by the step`);
  t.equal(body.clock.steps, 1, 'status counts the step');
  t.ok(Math.abs((body.clock.last?.stepMs ?? 0) + 3 * 3600_000) < 1000, 'and says how large it was');
});
