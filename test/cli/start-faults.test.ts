import t from 'tap';
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Resolver } from 'node:dns/promises';
import { join } from 'node:path';
import { childrenOf, runLanctl, scratchConfig, serveDaemon, SOLO_CONFIG } from '../support/daemon.js';
import { LANCTL } from '../support/paths.js';
import { freePorts } from '../support/ports.js';
import { bindError, findBindFailure } from '../../lib/bind-errors.js';
import { RaftStateLog, raftDir } from '../../cluster/raft-state-log.js';
import type { Command } from '../../cluster/commands.js';
import { systemClock } from '../../lib/clock.js';
import { seededRandom } from '../../lib/random.js';
import { silentLogger } from '../../lib/log.js';

// A daemon that cannot start says which service, which address and port, why and what to do, and
// exits 1 with nothing started: real `lanctl serve` processes against ports another program holds
// and an address this host does not have. Node's own words ("bind EADDRINUSE 127.0.0.1:53") named
// no service for DNS, TFTP and the boot listener, and no cure for any.

function holdUdp(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(port, '127.0.0.1', () => resolve(s));
  });
}

function holdTcp(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

const withDns = (port: number): string => `${SOLO_CONFIG}dns: { port: ${port}, listen: [127.0.0.1] }\n`;

t.test('a UDP port held by another program: the service, protocol, address, port and ss line', async (t) => {
  const [port] = await freePorts(1);
  const held = await holdUdp(port!);
  const sc = scratchConfig(withDns(port!));
  t.teardown(() => { held.close(); sc.cleanup(); });
  const r = await runLanctl(['serve', '--config', sc.file], { timeoutMs: 30_000 });
  t.equal(r.code, 1, 'exit status 1');
  t.match(r.stderr, `dns cannot listen on udp 127.0.0.1:${port}: another program already holds that port`);
  t.match(r.stderr, `ss -lunp 'sport = :${port}'`);
  t.match(r.stderr, /give dns: another port/);
});

t.test('a TCP port held by another program (DNS over TCP) is named as tcp', async (t) => {
  const [port] = await freePorts(1);
  const held = await holdTcp(port!);
  const sc = scratchConfig(withDns(port!));
  t.teardown(async () => { await new Promise((r) => held.close(r)); sc.cleanup(); });
  const r = await runLanctl(['serve', '--config', sc.file], { timeoutMs: 30_000 });
  t.equal(r.code, 1);
  t.match(r.stderr, `dns cannot listen on tcp 127.0.0.1:${port}: another program already holds that port`);
  t.match(r.stderr, `ss -ltnp 'sport = :${port}'`);
});

t.test('an address this host does not have (a moved node.address, an interface not up yet)', async (t) => {
  const [port] = await freePorts(1);
  // 192.0.2.0/24 is TEST-NET-1: documentation only, never on a real interface.
  const sc = scratchConfig(`${SOLO_CONFIG}dns: { port: ${port}, listen: [192.0.2.77] }\n`);
  t.teardown(() => sc.cleanup());
  const r = await runLanctl(['serve', '--config', sc.file], { timeoutMs: 30_000 });
  t.equal(r.code, 1);
  t.match(r.stderr, `dns cannot listen on udp 192.0.2.77:${port}: 192.0.2.77 is not an address of this host`);
  t.match(r.stderr, /ip -br addr/);
});

t.test('findBindFailure reads Node errors, causes and services\' wrapping messages; other errors pass', async (t) => {
  const [port] = await freePorts(1);
  const held = await holdUdp(port!);
  t.teardown(() => held.close());
  const real = await new Promise<Error>((resolve) => {
    const s = createSocket('udp4');
    s.once('error', (e) => { s.close(); resolve(e); });
    s.bind(port, '127.0.0.1');
  });
  t.same(findBindFailure(real), { code: 'EADDRINUSE', protocol: 'udp', address: '127.0.0.1', port });
  t.same(findBindFailure(new Error('wrapped', { cause: real })), { code: 'EADDRINUSE', protocol: 'udp', address: '127.0.0.1', port });
  t.same(findBindFailure(new Error('cannot bind DHCP to udp 10.0.0.1:67: bind EACCES 10.0.0.1:67')), { code: 'EACCES', protocol: 'udp', address: '10.0.0.1', port: 67 });
  t.same(findBindFailure(new Error('listen EADDRNOTAVAIL: address not available 10.254.77.1:8080')), { code: 'EADDRNOTAVAIL', protocol: 'tcp', address: '10.254.77.1', port: 8080 });
  t.match(bindError('ntp', 'ntp', new Error('bind EACCES 0.0.0.0:123'))?.message ?? '', /ntp cannot listen on udp 0\.0\.0\.0:123: ports below 1024 need CAP_NET_BIND_SERVICE/);
  t.equal(findBindFailure(new Error('EACCES: permission denied, open \'/srv/tftp/x\'')), null, 'a file error is not a bind failure');
  t.equal(findBindFailure('bind EADDRINUSE 1.2.3.4:5'), null, 'only errors are read');
  t.equal(bindError('dns', 'dns', new Error('something else')), null);
});

const asRoot = process.getuid?.() === 0;
const haveSetpriv = spawnSync('setpriv', ['--version']).status === 0;

// lanha run once as root (`sudo lanctl serve`) leaves root's files in the state directory; the
// service, as its own user, failed on the first of them with Node's bare EACCES. Now one message
// names the files, their owner and mode and the chown line, and nothing in the directory changes.
t.test('state files another user owns: named with owner and mode, the chown line, nothing changed', { skip: !(asRoot && haveSetpriv) && 'needs root and setpriv' }, async (t) => {
  const sc = scratchConfig(SOLO_CONFIG);
  t.teardown(() => sc.cleanup());
  const first = await serveDaemon(sc.file, { timeoutMs: 60_000 });
  await first.stop();
  chmodSync(sc.dir, 0o755);
  for (const d of ['state', 'state/raft', 'state/raft/wal']) chmodSync(join(sc.dir, d), 0o777);
  const hardstate = readFileSync(join(sc.dir, 'state/raft/hardstate'));
  const r = await runLanctlAs(65534, ['serve', '--config', sc.file]);
  t.equal(r.code, 1, r.stderr);
  t.match(r.stderr, `node.stateDir ${sc.dir}/state: this process (uid 65534) cannot write`);
  t.match(r.stderr, /raft\/hardstate \(owner uid 0, mode 0644\)/);
  t.match(r.stderr, /Was lanha run as root once/);
  t.match(r.stderr, `chown -R 65534:65534 ${sc.dir}/state`);
  t.same(readFileSync(join(sc.dir, 'state/raft/hardstate')), hardstate, 'the hard state is as it was');
});

// A daemon that STARTS on a full or read-only state file system (a small tmpfs, real ENOSPC and
// EROFS) starts fenced: DNS (and TFTP, NTP) serve what the log holds, no write is taken, status and
// doctor say STORAGE FULL / READ-ONLY, and it writes again by itself once space is back or the file
// system is writable. It used to exit 1 at every start, and systemd restarted it into the same
// failure, DNS, TFTP and NTP down for as long as the disk was.
for (const mode of ['read-only', 'full'] as const) {
  t.test(`a daemon started on a ${mode} state file system serves DNS fenced and writes again once it can`, { skip: !asRoot && 'needs root to mount' }, async (t) => {
    const [port] = await freePorts(1);
    const mnt = mkdtempSync(join(tmpdir(), 'lanha-startfs-'));
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', `lhdk-${mode}`, mnt]).status !== 0) { t.comment('tmpfs mount refused here: not checked'); rmSync(mnt, { recursive: true }); return; }
    t.teardown(() => { spawnSync('umount', [mnt]); rmSync(mnt, { recursive: true, force: true }); });
    const sc = scratchConfig(`${SOLO_CONFIG.replace('"{{dir}}/state"', `"${mnt}/state"`)}dns: { port: ${port}, listen: [127.0.0.1], zones: [{ name: t.lan }] }\n`);
    t.teardown(() => sc.cleanup());
    const resolver = new Resolver({ timeout: 1000, tries: 1 });
    resolver.setServers([`127.0.0.1:${port}`]);
    const first = await serveDaemon(sc.file);
    const set = await runLanctl(['records', 'set', 'web.t.lan', 'A', '10.1.2.3', '--config', sc.file]);
    t.equal(set.code, 0, `a record written to the log: ${set.stderr}`);
    t.equal((await first.stop()).code, 0);
    let filler = '';
    if (mode === 'read-only') t.equal(spawnSync('mount', ['-o', 'remount,ro', mnt]).status, 0, 'remounted read-only');
    else {
      filler = join(mnt, 'filler');
      try { writeFileSync(filler, Buffer.alloc(8 * 1048576)); } catch { /* ENOSPC: full, as meant */ }
    }
    const daemon = await serveDaemon(sc.file).catch((error: unknown) => { t.fail(`the daemon did not start: ${String(error)}`); return null; });
    if (daemon === null) return;
    t.teardown(async () => { await daemon.stop('SIGKILL'); });
    t.same(await resolver.resolve4('web.t.lan').catch((e: Error) => e.message), ['10.1.2.3'], 'DNS answers with the record from the log');
    const word = mode === 'read-only' ? 'READ-ONLY' : 'FULL';
    const status = await runLanctl(['status', '--config', sc.file]);
    t.match(status.stdout, `STORAGE ${word}: `, `status says STORAGE ${word}`);
    const doctor = await runLanctl(['doctor', '--config', sc.file]);
    t.match(doctor.stdout, mode === 'read-only' ? 'raft.storage-read-only' : 'raft.storage-full', 'doctor names it');
    t.match(daemon.logs(), mode === 'read-only' ? '"event":"raft.storage_read_only"' : '"event":"raft.storage_full"', 'the event of a disk that fails at run time');
    const refused = await runLanctl(['records', 'set', 'new.t.lan', 'A', '10.1.2.4', '--config', sc.file]);
    t.not(refused.code, 0, 'no write is taken while fenced');
    if (mode === 'read-only') t.equal(spawnSync('mount', ['-o', 'remount,rw', mnt]).status, 0, 'remounted read-write');
    else rmSync(filler);
    let again = { code: 1, stdout: '', stderr: '' };
    for (let i = 0; i < 50 && again.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      again = await runLanctl(['records', 'set', 'new.t.lan', 'A', '10.1.2.4', '--config', sc.file]);
    }
    t.equal(again.code, 0, `writes again without a restart: ${again.stderr}`);
    t.same(await resolver.resolve4('new.t.lan').catch((e: Error) => e.message), ['10.1.2.4'], 'and serves what it wrote');
    t.notMatch((await runLanctl(['status', '--config', sc.file])).stdout, 'STORAGE', 'status clear');
    t.equal((await daemon.stop()).code, 0, 'a clean stop');
  });
}

// A daemon that STARTS on a log whose tail holds an entry of a newer lanha (downgraded after such an
// entry committed, or restored from an older package) stays up as it does when handed that entry at
// run time: applying stops before it, fenced, DNS serving what was applied, APPLY STOPPED in status,
// doctor raft.entry-too-new. It used to exit 1, and systemd restarted it into the same entry.
t.test('a daemon started on a log holding an entry of a newer lanha serves DNS, fenced, APPLY STOPPED', async (t) => {
  const [port] = await freePorts(1);
  const sc = scratchConfig(`${SOLO_CONFIG}dns: { port: ${port}, listen: [127.0.0.1], zones: [{ name: t.lan }] }\n`);
  t.teardown(() => sc.cleanup());
  const first = await serveDaemon(sc.file);
  const set = await runLanctl(['records', 'set', 'web.t.lan', 'A', '10.1.2.3', '--config', sc.file]);
  t.equal(set.code, 0, `a record written to the log: ${set.stderr}`);
  t.equal((await first.stop()).code, 0);
  // What a newer leader would have committed: a type this build does not know.
  const log = await RaftStateLog.open({ id: 'solo', dir: raftDir(join(sc.dir, 'state')), conf: { voters: ['solo'], learners: [], witnesses: [] }, clock: systemClock, random: seededRandom(1), log: silentLogger });
  await t.rejects(log.propose({ type: 'dhcp.future' } as unknown as Command), /cannot be applied/);
  await log.close();
  const daemon = await serveDaemon(sc.file).catch((error: unknown) => { t.fail(`the daemon did not start: ${String(error)}`); return null; });
  if (daemon === null) return;
  t.teardown(async () => { await daemon.stop('SIGKILL'); });
  const resolver = new Resolver({ timeout: 1000, tries: 1 });
  resolver.setServers([`127.0.0.1:${port}`]);
  t.same(await resolver.resolve4('web.t.lan').catch((e: Error) => e.message), ['10.1.2.3'], 'DNS answers with the record applied before the entry');
  const status = await runLanctl(['status', '--config', sc.file]);
  t.match(status.stdout, /APPLY STOPPED: entry \d+ cannot be applied: a 'dhcp\.future' command/, 'status says APPLY STOPPED');
  const doctor = await runLanctl(['doctor', '--config', sc.file]);
  t.match(doctor.stdout, 'raft.entry-too-new', 'doctor names it');
  t.match(daemon.logs(), '"event":"raft.entry_too_new"', 'the event of an entry handed over at run time');
  const refused = await runLanctl(['records', 'set', 'new.t.lan', 'A', '10.1.2.4', '--config', sc.file]);
  t.not(refused.code, 0, 'no write is taken');
  t.equal((await daemon.stop()).code, 0, 'a clean stop');
});

t.test('a state directory that cannot even be made on a read-only file system is refused, exit 1', { skip: !asRoot && 'needs root to mount' }, async (t) => {
  const sc = scratchConfig(SOLO_CONFIG);
  t.teardown(() => sc.cleanup());
  const mnt = join(sc.dir, 'ro');
  mkdirSync(mnt);
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,ro', 'lhdk-ro', mnt]).status !== 0) { t.comment('tmpfs mount refused here: not checked'); return; }
  t.teardown(() => { spawnSync('umount', [mnt]); });
  writeFileSync(sc.file, SOLO_CONFIG.replaceAll('{{dir}}', sc.dir).replace(`${sc.dir}/state`, `${mnt}/state`));
  const r = await runLanctl(['serve', '--config', sc.file], { timeoutMs: 30_000 });
  t.equal(r.code, 1);
  t.match(r.stderr, `node.stateDir ${mnt}/state cannot be made (EROFS)`);
});

function runLanctlAs(uid: number, args: readonly string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, LANCTL, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code: code ?? 1, stderr }); });
  });
}

// A second daemon given the same node.controlSocket (another state directory, a copy of the config
// to try something) removed the first one's socket and bound its own: the first went on serving but
// no lanctl could reach it, for good once the second stopped and removed the socket file.
t.test('a control socket a live daemon answers on is refused; a dead daemon\'s is taken over', async (t) => {
  const sc = scratchConfig(SOLO_CONFIG);
  t.teardown(() => sc.cleanup());
  const first = await serveDaemon(sc.file, { timeoutMs: 60_000 });
  t.teardown(async () => { await first.stop(); });
  const second = join(sc.dir, 'second.yaml');
  writeFileSync(second, SOLO_CONFIG.replaceAll('{{dir}}', sc.dir).replace('name: solo', 'name: other').replace(`${sc.dir}/state`, `${sc.dir}/state2`));
  const r = await runLanctl(['serve', '--config', second], { timeoutMs: 30_000 });
  t.equal(r.code, 1);
  t.match(r.stderr, `control socket ${sc.dir}/lanha.sock is in use: another lanha daemon answers on it`);
  const status = await runLanctl(['status', '--json', '--config', sc.file]);
  t.equal(status.code, 0, 'the first daemon is still reachable');
  t.equal((JSON.parse(status.stdout) as { node: string }).node, 'solo');

  await first.stop('SIGKILL');
  const again = await serveDaemon(second, { timeoutMs: 60_000 });
  t.teardown(async () => { await again.stop(); });
  const now = await runLanctl(['status', '--json', '--config', sc.file]);
  t.equal((JSON.parse(now.stdout) as { node: string }).node, 'other', 'the socket a killed daemon left is taken over');
});

t.test('a missing tftp.root or cluster.keyFile: config check and serve name the key and value, exit 2, nothing started', async (t) => {
  const [port] = await freePorts(1);
  const noRoot = scratchConfig(`${SOLO_CONFIG}tftp: { port: ${port}, listen: [127.0.0.1], root: "{{dir}}/no-such-root" }\n`);
  const noKey = scratchConfig(`${SOLO_CONFIG}cluster:
  id: t
  keyFile: "{{dir}}/no-such.key"
  members:
    - { name: solo, address: 127.0.0.1, port: ${port} }
    - { name: b, address: 127.0.0.2, port: ${port} }
    - { name: w, address: 127.0.0.3, port: ${port}, role: witness }
`);
  t.teardown(() => { noRoot.cleanup(); noKey.cleanup(); });
  for (const [sc, said] of [[noRoot, /tftp\.root: ".*no-such-root" does not exist on this machine: create the directory TFTP serves/], [noKey, /cluster\.keyFile: ".*no-such\.key" does not exist on this machine: make it on one member with `lanctl init/]] as const) {
    const check = await runLanctl(['config', 'check', sc.file]);
    t.equal(check.code, 2, `config check exits 2: ${check.stdout}`);
    t.match(check.stderr, said, 'config check names the key, the value and what to do');
    const serve = await runLanctl(['serve', '--config', sc.file], { timeoutMs: 30_000 });
    t.equal(serve.code, 2, 'serve exits 2 (a bare ENOENT and exit 1 before): systemd does not restart into it');
    t.match(serve.stderr, said, 'serve says the same');
    t.match(serve.stderr, 'Nothing was started.');
    t.notMatch(serve.stderr, 'ENOENT', 'no bare errno');
  }
});

t.test('a config this user may not read: the user and the cure, not "give the path with --config FILE"', { skip: !(asRoot && haveSetpriv) && 'needs root and setpriv' }, async (t) => {
  const sc = scratchConfig(SOLO_CONFIG);
  t.teardown(() => sc.cleanup());
  chmodSync(sc.dir, 0o755);
  chmodSync(sc.file, 0o600);
  for (const argv of [['config', 'check', sc.file], ['serve', '--config', sc.file], ['status', '--config', sc.file]]) {
    const r = await runLanctlAs(65534, argv);
    t.equal(r.code, 2, `${argv[0]}: exit 2`);
    t.match(r.stderr, /\(EACCES: user \S+ may not read it; run as root \(sudo\), or give the file a group this user is in/, `${argv[0]}: who may not read it and what to do`);
    t.notMatch(r.stderr, 'give the path with --config FILE', `${argv[0]}: the path was right`);
  }
  const status = await runLanctlAs(65534, ['status', '--config', sc.file]);
  t.match(status.stderr, 'or give the daemon\'s control socket (node.controlSocket) with --socket PATH', 'a client can skip the config');
});

t.test('a stop signal that ends the config check before the daemon sees its own is a stop (exit 0), not a failed check', async (t) => {
  // systemd's stop and Ctrl-C signal the check's process too; its end can be seen first. Here the
  // check is ended 30 ms before the daemon gets its SIGTERM.
  const scratch = scratchConfig(SOLO_CONFIG);
  t.teardown(scratch.cleanup);
  const p = spawn(process.execPath, [LANCTL, 'serve', '--config', scratch.file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  p.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
  let checker: number | undefined;
  for (const deadline = Date.now() + 30_000; checker === undefined && Date.now() < deadline; await new Promise((r) => setTimeout(r, 5))) {
    checker = childrenOf(p.pid!)[0]?.pid;
  }
  t.ok(checker !== undefined, 'the config is checked in a child process');
  if (checker === undefined) { p.kill('SIGKILL'); return; }
  process.kill(checker, 'SIGTERM');
  await new Promise((r) => setTimeout(r, 30));
  p.kill('SIGTERM');
  t.equal(await exited, 0, 'exit 0: a stop while starting (systemd does not count it as a failure)');
  t.match(out, /received SIGTERM while starting; nothing was started/, 'says it was stopped while starting');
});
