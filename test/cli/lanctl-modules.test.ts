// What a `lanctl` command loads (bin/commands.ts). A client command is a one-shot process, so
// module loading was most of its cost: every command module was imported at start, with them the
// config schemas (zod, ~95 files) through cluster/power.ts, 146 files for `lanctl status`
// (0.25-0.35 s of CPU here, seconds on a Raspberry Pi at load). Each command now loads its own
// module when it runs. This test runs the read-only commands against a daemon with a module trace
// (test/support/module-trace.ts) and holds each to its own command module and away from the
// daemon's: no schemas, no daemon, no service servers, no Raft log. Not a timing: the list.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { scratchConfig, serveDaemon, type CliRun } from '../support/daemon.js';
import { LANCTL } from '../support/paths.js';
import { freePort, freeUdpPort } from '../support/ports.js';

t.setTimeout(240_000);

const TRACE = fileURLToPath(new URL('../support/module-trace.js', import.meta.url));
const DIST = fileURLToPath(new URL('../../', import.meta.url));

/** Runs lanctl with the module trace: its result and the modules it loaded (paths under dist/, or node_modules/PKG/...). */
function tracedLanctl(args: readonly string[], traceFile: string): Promise<CliRun & { modules: string[] }> {
  rmSync(traceFile, { force: true });
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', TRACE, LANCTL, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LANHA_MODULE_TRACE: traceFile } });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let lines: string[] = [];
      try { lines = readFileSync(traceFile, 'utf8').split('\n').filter((l) => l !== ''); } catch { /* loaded nothing traced */ }
      const modules = lines.map((u) => fileURLToPath(u)).filter((p) => p !== TRACE && !p.endsWith('module-trace-hooks.js'))
        .map((p) => (p.includes('/node_modules/') ? `node_modules/${p.split('/node_modules/').pop()}` : p.startsWith(DIST) ? p.slice(DIST.length) : p));
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr, modules });
    });
  });
}

/** Modules no read-only command needs: the config schemas, the daemon and its services' sockets, the Raft log. */
const DAEMON_SIDE = [
  /^node_modules\/zod\//, /^config\//, /^lib\/schema\.js$/, /^bin\/daemon\.js$/, /^bin\/demo/, /^services\/[^/]+\/(server|config)\.js$/,
  /^cluster\/raft\/(node|wal|host|transport|storage)\.js$/, /^cluster\/(fsm|config)\.js$/,
];
/** The old start loaded 51 lanha modules and 95 of zod for any command; the largest read-only command (status) now loads 24. */
const LANHA_MODULES_MAX = 32;

t.test('read-only commands load their own command module and none of the daemon', async (t) => {
  const scratch = scratchConfig(`node: { name: mods, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock" }
dhcp:
  port: ${await freeUdpPort()}
  listen: 127.0.0.1
  subnets: [{ subnet: 127.0.0.0/8, pools: [127.0.60.10-127.0.60.20], domain: mods.lan }]
dns:
  port: ${await freePort()}
  zones: [{ name: mods.lan, leases: true, records: ["www A 127.0.0.80"] }]
ntp: { port: ${await freeUdpPort()}, localStratum: 10 }
nodes: [{ name: rack1, mac: "52:54:00:00:06:01", ip: 127.0.60.50 }]
`);
  t.teardown(scratch.cleanup);
  const daemon = await serveDaemon(scratch.file, { timeoutMs: 60_000 });
  t.teardown(() => daemon.stop());
  const sock = ['--socket', join(scratch.dir, 's.sock')];
  const trace = join(scratch.dir, 'modules.txt');
  const cases: Array<{ args: string[]; code: number; module: string | null }> = [
    { args: ['status', ...sock], code: 0, module: 'bin/commands-core.js' },
    { args: ['status', '--config', scratch.file], code: 0, module: 'bin/commands-core.js' },
    { args: ['leases', ...sock], code: 0, module: 'bin/commands-dhcp.js' },
    { args: ['nodes', ...sock], code: 0, module: 'bin/commands-nodes.js' },
    { args: ['ntp', 'status', ...sock], code: 0, module: 'bin/commands-ntp.js' },
    { args: ['records', ...sock], code: 0, module: 'bin/commands-dns.js' },
    // No vip: block: exit 1, after asking the daemon.
    { args: ['vip', 'status', ...sock], code: 1, module: 'bin/commands-vip.js' },
    { args: ['doctor', ...sock], code: 0, module: 'bin/commands-ops.js' },
    // No daemon there: the failing path loads no more.
    { args: ['status', '--socket', join(scratch.dir, 'none.sock')], code: 3, module: 'bin/commands-core.js' },
    // Help and usage errors need the table only.
    { args: ['--help'], code: 0, module: null },
    { args: ['leases', '--help'], code: 0, module: null },
    { args: ['status', '--frob'], code: 2, module: null },
    { args: ['frobnicate'], code: 2, module: null },
  ];
  for (const c of cases) {
    const r = await tracedLanctl(c.args, trace);
    const name = `lanctl ${c.args.filter((a) => !a.startsWith('/')).join(' ')}`;
    t.equal(r.code, c.code, `${name}: exit ${c.code}`, { stderr: r.stderr });
    t.ok(r.modules.includes('bin/lanctl.js'), `${name}: the trace saw the start`);
    t.same(r.modules.filter((m) => /^bin\/commands-/.test(m)), c.module === null ? [] : [c.module], `${name}: ${c.module ?? 'no command module'} and no other`);
    t.same(r.modules.filter((m) => DAEMON_SIDE.some((x) => x.test(m))), [], `${name}: no schema, daemon, service server or Raft log module`);
    const lanha = r.modules.filter((m) => !m.startsWith('node_modules/'));
    t.ok(lanha.length <= LANHA_MODULES_MAX, `${name}: ${lanha.length} lanha modules (at most ${LANHA_MODULES_MAX})`, { modules: lanha });
  }
});
