// bench: what one `lanctl` command costs to start and answer (bin/commands.ts loads only the command
// asked for). Starts a one-node daemon on loopback (DHCP, DNS, NTP, one compute node), then runs
// each command ROUNDS times, interleaved with the same command of another build's lanctl when BASE
// (a dist/ directory, e.g. of main before the change) is given: CPU (user+sys, bash `times`) and
// wall per run, and the modules each loads (one run with test/support/module-trace.ts). Prints the
// load average before and after: on 2 shared cores the figures move with it.
//   node dist/bench/lanctl-start.js [ROUNDS] [BASE_DIST]      (default 15 rounds)
//   RESULT lanctl-start <build> <command> modules=N (lanha L) cpuP50=..ms wallP50=..ms cpuP90=..ms
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { scratchConfig, serveDaemon } from '../test/support/daemon.js';
import { freePort, freeUdpPort } from '../test/support/ports.js';
import { median, percentile } from './stats.js';

const rounds = Number(process.argv[2] ?? 15);
const here = fileURLToPath(new URL('../', import.meta.url));
const builds: Array<[string, string]> = [['now', here]];
if (process.argv[3] !== undefined) builds.unshift(['base', resolve(process.argv[3])]);

const scratch = scratchConfig(`node: { name: bench, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock" }
dhcp:
  port: ${await freeUdpPort()}
  listen: 127.0.0.1
  subnets: [{ subnet: 127.0.0.0/8, pools: [127.0.70.10-127.0.70.20], domain: bench.lan }]
dns:
  port: ${await freePort()}
  zones: [{ name: bench.lan, leases: true }]
ntp: { port: ${await freeUdpPort()}, localStratum: 10 }
nodes: [{ name: rack1, mac: "52:54:00:00:07:01", ip: 127.0.70.50 }]
`);
const daemon = await serveDaemon(scratch.file, { timeoutMs: 60_000 });
const sock = join(scratch.dir, 's.sock');
const commands: Array<[string, string[]]> = [
  ['status', ['status', '--config', scratch.file]],
  ['leases', ['leases', '--socket', sock]],
  ['nodes', ['nodes', '--socket', sock]],
  ['--help', ['--help']],
  ['status(no daemon)', ['status', '--socket', join(scratch.dir, 'none.sock')]],
];

/** One run of the lanctl of `dist` ('': bare node): exit code, CPU and wall ms. */
function run(dist: string, args: readonly string[]): { code: number; cpuMs: number; wallMs: number } {
  const started = performance.now();
  const script = dist === '' ? [] : [join(dist, 'bin/lanctl.js')];
  const r = spawnSync('bash', ['-c', '"$@" >/dev/null 2>&1; echo $?; times', 'bench', process.execPath, ...script, ...args], { encoding: 'utf8' });
  const wallMs = performance.now() - started;
  const lines = r.stdout.trim().split('\n');
  // `times`: the shell's own line, then its children's: "0m0.123s 0m0.045s".
  const secs = (lines[2] ?? '').split(/\s+/).map((x) => { const m = /^(\d+)m([\d.]+)s$/.exec(x); return m === null ? NaN : Number(m[1]) * 60 + Number(m[2]); });
  return { code: Number(lines[0]), cpuMs: ((secs[0] ?? NaN) + (secs[1] ?? NaN)) * 1000, wallMs };
}

function modules(dist: string, args: readonly string[]): { all: number; lanha: number } {
  const file = join(scratch.dir, 'trace.txt');
  rmSync(file, { force: true });
  spawnSync(process.execPath, ['--import', join(here, 'test/support/module-trace.js'), join(dist, 'bin/lanctl.js'), ...args], { env: { ...process.env, LANHA_MODULE_TRACE: file }, stdio: 'ignore' });
  const urls = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '' && !l.includes('module-trace'));
  return { all: urls.length, lanha: urls.filter((u) => !u.includes('/node_modules/')).length };
}

try {
  console.log(`load average before: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const samples = new Map<string, Array<{ cpuMs: number; wallMs: number; code: number }>>();
  for (let i = 0; i < rounds; i++) {
    for (const [name, args] of commands) {
      for (const [build, dist] of i % 2 === 0 ? builds : [...builds].reverse()) {
        const key = `${build} ${name}`;
        if (!samples.has(key)) samples.set(key, []);
        samples.get(key)!.push(run(dist, args));
      }
    }
  }
  for (const [name, args] of commands) {
    for (const [build, dist] of builds) {
      const s = samples.get(`${build} ${name}`)!;
      const m = modules(dist, args);
      const cpu = s.map((x) => x.cpuMs);
      console.log(`RESULT lanctl-start ${build} ${name} exit=${s[0]!.code} modules=${m.all} (lanha ${m.lanha}) cpuP50=${median(cpu).toFixed(0)}ms wallP50=${median(s.map((x) => x.wallMs)).toFixed(0)}ms cpuP90=${percentile(cpu, 90).toFixed(0)}ms runs=${s.length}`);
    }
  }
  const bare = Array.from({ length: rounds }, () => run('', ['-e', '0']).cpuMs);
  console.log(`RESULT lanctl-start node-e-0 (no lanctl: Node's own start) cpuP50=${median(bare).toFixed(0)}ms runs=${rounds}`);
  console.log(`load average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
} finally {
  await daemon.stop();
  scratch.cleanup();
}
