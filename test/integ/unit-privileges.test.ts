import t from 'tap';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { requireLab, withLab } from '../support/netns.js';
import { repoPath } from '../support/paths.js';
import { serveDaemon } from '../support/daemon.js';
import { callDaemonOk } from '../../lib/control-client.js';
import { lastEnv, recordingScript } from './dhcp-lab.js';
import type { NtpStatus } from '../../services/ntp/server.js';

// The daemon as systemd/lanha.service runs it: not root (here `nobody`), no_new_privs, and only the
// unit's ambient capabilities (read from the unit file, so a change there is tested here). Every
// service on its standard port in a lab namespace, each used by a real client: DNS on 53 (dig), TFTP
// on 69 (curl), NTP on 123 (sntp) with its kernel receive stamps from the tcpdump child (which runs
// with the daemon's user and capabilities: nothing in the repo gave it more), DHCP on 67 (udhcpc:
// broadcast in, reply out), and the VIP on the interface (CAP_NET_ADMIN). Everything a root test
// run would hide: a port bound only because root may, a capture that works only as root.

const NET = '10.126.0';
const SRV = `${NET}.1`, CLI = `${NET}.3`, VIP = `${NET}.100`;

/** `+net_raw,+net_admin` from a unit line's `CAP_NET_RAW CAP_NET_ADMIN`. */
function capsOf(unit: string, key: string): string {
  const line = unit.split('\n').map((l) => l.trim()).find((l) => l.startsWith(`${key}=`));
  if (line === undefined) throw new Error(`systemd/lanha.service has no ${key}= line`);
  return line.slice(key.length + 1).split(/\s+/).filter((c) => c !== '').map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`).join(',');
}

/** The bits of capabilities in /proc/<pid>/status's `CapEff:` line. */
function effectiveCaps(pid: number): bigint {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('CapEff:'));
  return BigInt(`0x${line?.split(/\s+/)[1] ?? '0'}`);
}

/**
 * dist/, package.json and the production dependencies copied where `nobody` can read them (the
 * checkout may sit below a 0700 home directory).
 */
function runtimeCopy(dir: string): string {
  cpSync(repoPath('dist'), join(dir, 'dist'), { recursive: true });
  cpSync(repoPath('package.json'), join(dir, 'package.json'));
  const pkg = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  const queue = Object.keys(pkg.dependencies ?? {});
  const seen = new Set<string>();
  while (queue.length > 0) {
    const name = queue.shift()!;
    if (seen.has(name)) continue;
    seen.add(name);
    const from = repoPath('node_modules', name);
    if (!existsSync(from)) continue; // nested below a package already copied, or an optional one absent here
    cpSync(from, join(dir, 'node_modules', name), { recursive: true, dereference: true });
    const dep = JSON.parse(readFileSync(join(from, 'package.json'), 'utf8')) as { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
    queue.push(...Object.keys(dep.dependencies ?? {}), ...Object.keys(dep.optionalDependencies ?? {}));
  }
  execFileSync('chmod', ['-R', 'a+rX', dir]);
  return join(dir, 'dist', 'bin', 'lanctl.js');
}

t.test('the daemon under the systemd unit\'s privileges serves DNS, TFTP, NTP with kernel stamps, DHCP and the VIP', async (t) => {
  if (!requireLab(t, ['setpriv', 'tcpdump', 'sntp', 'dig', 'curl', 'udhcpc'])) return;
  const unit = readFileSync(repoPath('systemd/lanha.service'), 'utf8');
  const ambient = capsOf(unit, 'AmbientCapabilities');
  const bounding = capsOf(unit, 'CapabilityBoundingSet');
  t.match(unit, /^NoNewPrivileges=yes$/m, 'the unit sets no_new_privs (so does this run)');
  const resolvConf = readFileSync('/etc/resolv.conf', 'utf8');
  const top = mkdtempSync(join(tmpdir(), 'lanha-unit-'));
  chmodSync(top, 0o755);
  try {
    const lanctl = runtimeCopy(join(top, 'app'));
    const run = join(top, 'run');
    const tftpRoot = join(top, 'tftp');
    mkdirSync(run);
    mkdirSync(tftpRoot);
    writeFileSync(join(tftpRoot, 'hello.txt'), 'hello from a daemon without root\n');
    execFileSync('chmod', ['-R', 'a+rX', tftpRoot]);
    // As StateDirectory= and RuntimeDirectory= do: the daemon's user owns its state and socket dirs.
    chownSync(run, 65534, 65534);
    await withLab(async (lab) => {
      const srv = await lab.addHost('srv', `${SRV}/24`);
      const cli = await lab.addHost('cli', `${CLI}/24`);
      const config = join(run, 'lanha.yaml');
      writeFileSync(config, [
        `node: { name: unit, address: ${SRV}, stateDir: ${run}/state, controlSocket: ${run}/lanha.sock, logLevel: debug }`,
        `vip: { address: ${VIP}/24, interface: ${srv.ifname} }`,
        `dns: { zones: [ { name: unit.lan, records: ["www A ${NET}.80"] } ] }`,
        'ntp: { localStratum: 10, kernelStamps: auto }',
        `tftp: { root: ${tftpRoot} }`,
        'dhcp:',
        '  subnets:',
        `    - { subnet: ${NET}.0/24, pools: [${NET}.50-${NET}.60], router: [${SRV}], dns: [${SRV}], leaseTime: 1h }`,
        '',
      ].join('\n'));
      const daemon = await serveDaemon(config, {
        command: ['ip', 'netns', 'exec', srv.ns, 'setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups',
          `--inh-caps=-all,${ambient}`, `--ambient-caps=-all,${ambient}`, `--bounding-set=-all,${bounding}`, '--no-new-privs',
          '--', process.execPath, lanctl],
        timeoutMs: 30_000,
      });
      try {
        const pid = daemon.child.pid!;
        t.equal(execFileSync('ps', ['-o', 'user=', '-p', String(pid)]).toString().trim(), 'nobody', 'the daemon runs as nobody');
        // CAP_NET_BIND_SERVICE (10), CAP_NET_ADMIN (12), CAP_NET_RAW (13): 0x3400 and nothing else.
        t.equal(effectiveCaps(pid).toString(16), '3400', 'with the unit\'s three capabilities only');

        const dig = await cli.exec('dig', ['+short', '+time=2', '+tries=2', `@${SRV}`, 'www.unit.lan', 'A'], { timeoutMs: 10_000 });
        t.equal(dig.stdout.trim(), `${NET}.80`, `dig on port 53: ${dig.stderr}`);

        const tftp = await cli.exec('curl', ['-sS', '--max-time', '10', `tftp://${SRV}/hello.txt`], { timeoutMs: 15_000 });
        t.equal(tftp.stdout, 'hello from a daemon without root\n', `curl tftp:// on port 69: ${tftp.stderr}`);

        const socket = join(run, 'lanha.sock');
        const status = async (): Promise<NtpStatus> => await callDaemonOk(socket, 'GET', '/v1/ntp') as NtpStatus;
        let ntp = await status();
        for (let i = 0; i < 50 && ntp.kernelStamps?.state !== 'running'; i++) {
          await new Promise((r) => setTimeout(r, 100));
          ntp = await status();
        }
        t.equal(ntp.kernelStamps?.state, 'running', `the tcpdump child runs under the daemon's privileges: ${ntp.kernelStamps?.problem ?? ''}`);
        const sntp = await cli.exec('sntp', [SRV], { timeoutMs: 15_000 });
        t.equal(sntp.code, 0, `sntp on port 123: ${sntp.stdout}${sntp.stderr}`);
        // A reply waits a bounded time for its kernel stamp from the capture child and otherwise goes
        // out with the estimate (estimate_timeout): on a loaded machine tcpdump's pipe can lag one
        // reply. Up to five more queries, until one was stamped by the kernel.
        const stamped = (n: NtpStatus): number => (n.kernelStamps?.used.kernel ?? 0) + (n.kernelStamps?.used.kernel_waited ?? 0);
        ntp = await status();
        for (let i = 0; i < 5 && stamped(ntp) === 0; i++) {
          await cli.exec('sntp', [SRV], { timeoutMs: 15_000 });
          ntp = await status();
        }
        const used = ntp.kernelStamps?.used ?? { kernel: 0, kernel_waited: 0, estimate_timeout: 0, estimate_busy: 0 };
        t.ok(stamped(ntp) > 0, `replies stamped by the kernel: ${JSON.stringify(used)}`);
        const capturePid = Number(execFileSync('pgrep', ['-P', String(pid), '-f', 'tcpdump']).toString().trim().split('\n')[0]);
        t.equal(execFileSync('ps', ['-o', 'user=', '-p', String(capturePid)]).toString().trim(), 'nobody', 'tcpdump runs as nobody too');

        const vip = await srv.exec('ip', ['-4', '-o', 'addr', 'show', 'dev', srv.ifname], { timeoutMs: 5000 });
        t.match(vip.stdout, new RegExp(`inet ${VIP.replaceAll('.', '\\.')}/24`), 'the VIP is on the interface');
        t.notMatch(daemon.logs(), /"event":"vip\.(guard_expired|released)"/, 'and stayed there (a single node has no guard to take it away on a stall)');

        const client = await lab.addHost('dhcp', null);
        const script = recordingScript(top, 'udhcpc');
        const udhcpc = await client.exec('udhcpc', ['-i', client.ifname, '-f', '-q', '-n', '-t', '5', '-T', '1', '-s', script], { timeoutMs: 20_000 });
        const bound = lastEnv(existsSync(join(top, 'udhcpc.env')) ? readFileSync(join(top, 'udhcpc.env'), 'utf8') : '', /^bound/);
        t.match(bound?.get('ip') ?? '', /^10\.126\.0\.(5\d|60)$/, `udhcpc got a lease on port 67: ${udhcpc.stdout}${udhcpc.stderr}`);
        t.equal(bound?.get('serverid'), VIP, 'the server id is the VIP (no dhcp.serverId set)');
      } finally {
        const stopped = await daemon.stop();
        t.equal(stopped.code, 0, `stops cleanly: ${daemon.logs().split('\n').filter((l) => l.includes('"level":50') || l.includes('"level":60')).join('\n')}`);
      }
    });
  } finally {
    rmSync(top, { recursive: true, force: true });
  }
  t.equal(readFileSync('/etc/resolv.conf', 'utf8'), resolvConf, 'the host\'s /etc/resolv.conf is unchanged');
});
