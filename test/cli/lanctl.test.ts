import t from 'tap';
import { readFileSync } from 'node:fs';
import { runLanctl, scratchConfig, serveDaemon } from '../support/daemon.js';
import { repoPath } from '../support/paths.js';
import { freePort } from '../support/ports.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const minimal = `
node:
  name: t1
  stateDir: "{{dir}}/state"
  controlSocket: "{{dir}}/lanha.sock"
  logLevel: info
`;

t.test('--version and --help at every level', async (t) => {
  const v = await runLanctl(['--version']);
  t.equal(v.code, 0);
  t.match(v.stdout, /^lanctl \d+\.\d+\.\d+/);
  const h = await runLanctl(['--help']);
  t.equal(h.code, 0);
  for (const c of ['serve', 'config check', 'status']) t.match(h.stdout, c, `top help lists ${c}`);
  const summaryLines = h.stdout.split('\n').filter((l) => /^ {6}\S/.test(l));
  t.ok(summaryLines.length > 10 && summaryLines.every((l) => l.length <= 80), 'the top help puts summaries under their usage, wrapped at 80 columns');
  const ch = await runLanctl(['config', '--help']);
  t.equal(ch.code, 0);
  t.match(ch.stdout, 'config check FILE');
  const sh = await runLanctl(['status', '--help']);
  t.equal(sh.code, 0);
  t.match(sh.stdout, '--json');
  const unknown = await runLanctl(['frobnicate']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, 'unknown command "frobnicate"');
  const badFlag = await runLanctl(['status', '--jsn']);
  t.equal(badFlag.code, 2);
  t.match(badFlag.stderr, "Unknown option '--jsn'");
});

t.test('a stray argument or a group given options is a usage error naming it, not ignored', async (t) => {
  for (const argv of [['status', 'x'], ['failover', 'now'], ['ntp', 'status', 'x'], ['vip', 'status', 'x'], ['deploy', 'jobs', 'a', 'b']]) {
    const r = await runLanctl([...argv, '--socket', '/nonexistent/lanha.sock']);
    t.equal(r.code, 2, `${argv.join(' ')}: exit 2 (it ran as if the argument were not there)`);
    t.match(r.stderr, `unexpected argument "${argv[argv.length - 1]}"`, `${argv.join(' ')}: the argument named`);
  }
  const group = await runLanctl(['deploy', '--config', '/etc/lanha/lanha.yaml']);
  t.equal(group.code, 2);
  t.notMatch(group.stderr, 'unknown command', 'deploy is a command group, not unknown');
  t.match(group.stderr, 'give a command before --config: lanctl deploy rootfs, lanctl deploy push', 'it lists the commands the option can follow');
});

t.test('config check accepts the examples and refuses a bad file with the key path', async (t) => {
  for (const f of ['examples/single-node.yaml', 'examples/site.yaml', 'examples/site-etcd.yaml']) {
    const r = await runLanctl(['config', 'check', repoPath(f)]);
    t.equal(r.code, 0, `${f} accepted`);
    t.match(r.stdout, ': ok');
  }
  const site = await runLanctl(['config', 'check', repoPath('examples/site.yaml')]);
  t.match(site.stdout, 'timers (from failoverBudget 480 ms): heartbeat 40 ms, election timeout 250-370 ms, leader lease 190 ms; pauses up to 100 ms change nothing', 'the site example: its timers and the pauses they ride out');
  t.match(site.stdout, 'peer links: pinged after 250 ms idle, closed and redialled after 1000 ms silent', 'and when a silent Raft link is given up');
  const siteText = readFileSync(repoPath('examples/site.yaml'), 'utf8');
  const byHand = scratchConfig(siteText.replace(/^  failoverBudget: .*\n/m, '  heartbeat: 100ms\n  electionTimeout: 500ms\n'));
  t.teardown(byHand.cleanup);
  const h = await runLanctl(['config', 'check', byHand.file]);
  t.equal(h.code, 0, `timers by hand are accepted: ${h.stderr}`);
  t.match(h.stdout, 'timers: heartbeat 100 ms, election timeout 500-1000 ms, leader lease 450 ms; pauses up to 300 ms change nothing');
  const unset = scratchConfig(siteText.replace(/^  failoverBudget: .*\n/m, ''));
  t.teardown(unset.cleanup);
  const u = await runLanctl(['config', 'check', unset.file]);
  t.equal(u.code, 0, `no timer given: ${u.stderr}`);
  t.match(u.stdout, 'timers (default: from failoverBudget 480 ms, the least that rides out pauseTolerance 100 ms): heartbeat 40 ms, election timeout 250-370 ms, leader lease 190 ms; pauses up to 100 ms change nothing', 'the defaults, and where they come from');
  const s = scratchConfig(minimal + 'dhcp:\n  subnets:\n    - subnet: 10.0.0.0/24\n      pools: ["10.0.0.300-10.0.0.9"]\n');
  t.teardown(s.cleanup);
  const r = await runLanctl(['config', 'check', s.file]);
  t.equal(r.code, 2, 'exit code 2');
  t.match(r.stderr, 'dhcp.subnets[0].pools[0]: "10.0.0.300-10.0.0.9" is not an IPv4 range');
  const flag = await runLanctl(['config', 'check', '--config', repoPath('examples/single-node.yaml')]);
  t.equal(flag.code, 0, `--config FILE, as every other command takes it, is the file to check (it was "Unknown option"): ${flag.stderr}`);
  t.match(flag.stdout, 'single-node.yaml: ok');
  const missing = await runLanctl(['config', 'check', '/nonexistent/lanha.yaml']);
  t.equal(missing.code, 2);
  t.match(missing.stderr, 'cannot read the file (ENOENT: no such file); give the path of the config file');
});

t.test('config check: an alias bomb and two services on one port are bad configs (exit 2), not crashes', async (t) => {
  let bomb = minimal + 'x0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n';
  for (let i = 1; i < 9; i++) bomb += `x${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]\n`;
  const s = scratchConfig(bomb);
  t.teardown(s.cleanup);
  const r = await runLanctl(['config', 'check', s.file]);
  t.equal(r.code, 2, 'exit code 2, not 1 "unexpected error"');
  t.match(r.stderr, 'YAML aliases');
  const clash = scratchConfig(minimal + 'dns: { port: 5353, listen: [127.0.0.1] }\nntp: { port: 5353, listen: [127.0.0.1] }\n');
  t.teardown(clash.cleanup);
  const c = await runLanctl(['config', 'check', clash.file]);
  t.equal(c.code, 2);
  t.match(c.stderr, 'ntp.port: 5353 is also dns.port: both would bind udp 127.0.0.1:5353');
});

t.test('serve refuses a bad config and starts nothing', async (t) => {
  const s = scratchConfig(minimal + 'dns:\n  port: 99999\n');
  t.teardown(s.cleanup);
  const r = await runLanctl(['serve', '--config', s.file]);
  t.equal(r.code, 2);
  t.match(r.stderr, 'dns.port: 99999');
  t.match(r.stderr, 'Nothing was started');
});

t.test('serve on cluster.backend etcd with no etcd answering: exit 1, the endpoint named', async (t) => {
  const dead = `http://127.0.0.1:${await freePort()}`;
  const s = scratchConfig(minimal + `cluster:\n  id: c1\n  backend: etcd\n  members: [{ name: t1, address: 127.0.0.1 }]\n  etcd: { endpoints: ["${dead}"], dialTimeout: 300ms }\n`);
  t.teardown(s.cleanup);
  const r = await runLanctl(['serve', '--config', s.file]);
  t.equal(r.code, 1, 'start failed');
  t.match(r.stderr, `cannot read the state from etcd (${dead}, prefix /lanha/c1/): etcd ${dead}: ECONNREFUSED`);
});

t.test('status says the daemon is down, with exit code 3', async (t) => {
  const s = scratchConfig(minimal);
  t.teardown(s.cleanup);
  const r = await runLanctl(['status', '--config', s.file]);
  t.equal(r.code, 3);
  t.match(r.stderr, 'lanha is not running');
  t.match(r.stderr, 'lanctl serve --config FILE');
  for (const [path, what] of [[s.file, 'a regular file'], [s.dir, 'a directory']]) {
    const wrong = await runLanctl(['status', '--socket', path!]);
    t.equal(wrong.code, 3, `--socket ${what}: exit 3 as before`);
    t.match(wrong.stderr, `${path} is ${what}, not a control socket: give the daemon's socket`, `--socket ${what}: says so, not "lanha is not running"`);
  }
});

t.test('serve + status round trip, SIGTERM exits 0 promptly', async (t) => {
  const s = scratchConfig(minimal);
  t.teardown(s.cleanup);
  const daemon = await serveDaemon(s.file);
  t.teardown(async () => { await daemon.stop('SIGKILL'); });

  const json = await runLanctl(['status', '--json', '--config', s.file]);
  t.equal(json.code, 0, json.stderr);
  const body = JSON.parse(json.stdout) as { node: string; role: string; version: string; pid: number; services: object; cluster: { role: string } };
  t.equal(body.node, 't1');
  t.equal(body.role, 'server');
  t.equal(body.pid, daemon.child.pid, 'the status came from the daemon we started');
  t.same(body.services, {}, 'no services in this config');

  const table = await runLanctl(['status', '--socket', `${s.dir}/lanha.sock`]);
  t.equal(table.code, 0);
  t.match(table.stdout, /NODE\s+ROLE/);
  t.match(table.stdout, /t1\s+server/);

  const stopped = await daemon.stop('SIGTERM');
  t.equal(stopped.code, 0, 'exit code 0');
  // Promptly, as the daemon saw it: every step finished, none given up at its limit (the time a
  // loaded machine takes is no measure of that).
  t.match(daemon.logs(), '"event":"daemon.stopped"');
  t.notMatch(daemon.logs(), /"event":"daemon\.(stop_step_late|stop_timeout)"/, `no step given up at its limit (exited in ${Math.round(stopped.ms)} ms)`);
  const after = await runLanctl(['status', '--config', s.file]);
  t.equal(after.code, 3, 'socket removed on exit');
});

t.test('a client command reads the socket from a config the daemon runs, and names a config it cannot read', async (t) => {
  // Client commands take node.controlSocket from the YAML without validating the file (lib/config-peek.ts).
  const port = await freePort();
  const s = scratchConfig(minimal.replace('controlSocket: "{{dir}}/lanha.sock"', 'controlSocket: \'{{dir}}/lanha.sock\'   # quoted, commented')
    + `dns:\n  port: ${port}\n  listen: [127.0.0.1]\n  zones:\n    - name: t.lan\n      records: ["ns1 A 127.0.0.1"]\n`);
  t.teardown(s.cleanup);
  const daemon = await serveDaemon(s.file);
  t.teardown(async () => { await daemon.stop('SIGKILL'); });
  const status = await runLanctl(['status', '--json', '--config', s.file]);
  t.equal(status.code, 0, status.stderr);
  t.equal((JSON.parse(status.stdout) as { pid: number }).pid, daemon.child.pid, 'reached the daemon serving that config');
  t.equal(status.stderr, '', 'its own config: no note');
  // Another file naming the same socket (a copy for another node, edited in place) reached this daemon silently.
  const copy = join(s.dir, 'other.yaml');
  writeFileSync(copy, readFileSync(s.file, 'utf8').replace('name: t1', 'name: other'));
  const other = await runLanctl(['status', '--json', '--config', copy]);
  t.equal(other.code, 0, 'the daemon there is shown');
  JSON.parse(other.stdout);
  t.match(other.stderr, `note: the daemon at ${s.dir}/lanha.sock runs ${s.file} (node t1), not ${copy}`, 'and the client says it is another config\'s daemon');
  const bySocket = await runLanctl(['status', '--json', '--config', copy, '--socket', `${s.dir}/lanha.sock`]);
  t.equal(bySocket.stderr, '', 'no note when --socket, not the config, chose the daemon');

  const dir = await runLanctl(['status', '--config', s.dir]);
  t.equal(dir.code, 2, 'a file it cannot read: exit 2');
  t.match(dir.stderr, `cannot read the config ${s.dir} (EISDIR: a directory, not a file)`);
  t.match(dir.stderr, '--socket PATH');
  writeFileSync(join(s.dir, 'broken.yaml'), 'node: [unclosed\n');
  const broken = await runLanctl(['leases', '--config', join(s.dir, 'broken.yaml')]);
  t.equal(broken.code, 2, 'not YAML: exit 2');
  t.match(broken.stderr, `${join(s.dir, 'broken.yaml')}: is not valid YAML`);
  t.match(broken.stderr, 'lanctl config check');
});

t.test('a two-member cluster without a witness is flagged loudly', async (t) => {
  const s = scratchConfig(minimal + 'cluster:\n  id: r\n  members: [{ name: t1, address: 127.0.0.1 }, { name: t2, address: 127.0.0.2 }]\n');
  t.teardown(s.cleanup);
  const r = await runLanctl(['config', 'check', s.file]);
  t.equal(r.code, 0);
  const { configWarnings } = await import('../../config/warnings.js');
  const { loadConfig } = await import('../../config/index.js');
  const warnings = configWarnings(loadConfig(s.file));
  t.equal(warnings.length, 1);
  t.match(warnings[0], 'without a witness');
  t.match(r.stdout, /^WARNING: two-member cluster without a witness/m, 'config check prints it');
});

t.test('node.address other than this node\'s cluster member address is flagged; a host name there is not', async (t) => {
  const base = minimal.replace(/node:\n/, 'node:\n  address: 127.0.0.1\n');
  const moved = scratchConfig(base + 'cluster:\n  id: r\n  members: [{ name: t1, address: 127.0.0.9 }, { name: t2, address: 127.0.0.2 }, { name: w, address: 127.0.0.3, role: witness }]\n');
  const named = scratchConfig(base + 'cluster:\n  id: r\n  members: [{ name: t1, address: localhost }, { name: t2, address: 127.0.0.2 }, { name: w, address: 127.0.0.3, role: witness }]\n');
  t.teardown(() => { moved.cleanup(); named.cleanup(); });
  const r = await runLanctl(['config', 'check', moved.file]);
  t.equal(r.code, 0);
  t.match(r.stdout, /^WARNING: node\.address 127\.0\.0\.1 is not this node's cluster member address 127\.0\.0\.9 \(cluster\.members, t1\)/m);
  const n = await runLanctl(['config', 'check', named.file]);
  t.equal(n.code, 0, n.stderr);
  t.notMatch(n.stdout, /WARNING/);
});

t.test('a DHCP server id that is not the VIP is flagged: renewals would miss the leader after a failover', async (t) => {
  const vip = 'vip: { address: 127.0.0.100/8, interface: lo }\ndhcp:\n  subnets: [{ subnet: 127.0.0.0/8, pools: [127.0.9.10-127.0.9.20] }]\n';
  const node = scratchConfig(minimal + vip.replace('dhcp:\n', 'dhcp:\n  serverId: 127.0.0.1\n'));
  const unset = scratchConfig(minimal + vip);
  t.teardown(() => { node.cleanup(); unset.cleanup(); });
  const r = await runLanctl(['config', 'check', node.file]);
  t.equal(r.code, 0, 'valid: a warning, not an error');
  t.match(r.stdout, /^WARNING: dhcp\.serverId 127\.0\.0\.1 is not the VIP 127\.0\.0\.100: .*leave dhcp\.serverId unset \(it defaults to the VIP\)/m);
  const u = await runLanctl(['config', 'check', unset.file]);
  t.equal(u.code, 0);
  t.notMatch(u.stdout, /WARNING/, 'unset: the VIP is the server id, nothing to say');
});

t.test('output to a reader that went away ends the output, not the command with a stack trace (lanctl ... | head)', async (t) => {
  const { spawn } = await import('node:child_process');
  const { LANCTL_JS } = await import('../../lib/serve-daemon.js');
  for (const args of [['--help'], ['config', 'check', repoPath('examples/single-node.yaml')]]) {
    const child = spawn(process.execPath, [LANCTL_JS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // the reader is gone before the first line is written: every write is EPIPE
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    t.equal(code, 0, `lanctl ${args.join(' ')}: the exit code it would have had`);
    t.equal(stderr, '', `lanctl ${args.join(' ')}: nothing on stderr (no EPIPE stack trace)`);
  }
});
