import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync, chmodSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { requireLab, stopChild, withLab, type LabHost } from '../support/netns.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd.js';
import { LANCTL } from '../support/paths.js';
import { writeNsdUpstream } from '../support/dns-upstream.js';

// lanha's DNS with real clients in network namespaces (all names lh*): dig and kdig for every
// record type, TCP, EDNS/NSID, a truncated answer retried over TCP, NXDOMAIN vs NODATA, the glibc
// resolver (getent), forwarding to nsd in another namespace with caching, REFUSED for sources
// outside the LAN prefixes, and a udhcpc client's host name resolving forward and reverse right
// after its lease and vanishing after its release; on both state backends (Raft log, etcd).

const SRV = '10.77.0.1';
const OUTSIDE_SRV = '192.168.77.1';
const UPSTREAM = '10.77.0.53';

function waitFor(child: ChildProcess, text: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`"${text}" not seen within ${timeoutMs} ms:\n${out}`)), timeoutMs);
    const on = (d: Buffer): void => {
      out += d.toString();
      if (out.includes(text)) { clearTimeout(timer); resolve(out); }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`exited (${code}) before "${text}":\n${out}`)); });
  });
}

async function dig(host: LabHost, args: string[]): Promise<string> {
  const r = await host.exec('dig', ['+time=2', '+tries=1', ...args], { timeoutMs: 10_000 });
  return r.stdout + r.stderr;
}

async function eventually(what: () => Promise<boolean>, timeoutMs = 3000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await what()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return what();
}

// Once per state backend: the embedded Raft log, and cluster.backend etcd on a 3-member etcd in the
// server's namespace (lease names come from the replicated state either way).
for (const backend of ['raft', 'etcd'] as const) t.test(`dns with dig, kdig, getent, nsd upstream and a udhcpc client (${backend})`, async (t) => {
  if (!requireLab(t, ['dig', 'kdig', 'nsd', 'udhcpc', 'getent', ...(backend === 'etcd' ? ['etcd', 'curl'] : [])])) return;
  const dir = mkdtempSync(join(tmpdir(), 'lanha-dns-integ-'));
  let etcd: EtcdCluster | undefined;
  try {
    await withLab(async (lab) => {
      const srv = await lab.addHost('srv', `${SRV}/24`, [`${OUTSIDE_SRV}/24`]);
      if (backend === 'etcd') etcd = await startEtcdCluster(3, { host: srv });
      const cli = await lab.addHost('cli', '10.77.0.10/24');
      const up = await lab.addHost('up', `${UPSTREAM}/24`);
      const out = await lab.addHost('out', '192.168.77.5/24');
      const dh = await lab.addHost('dh', null);
      // DHCP replies go to 255.255.255.255, which needs a route in the server's namespace.
      await srv.exec('ip', ['route', 'add', 'default', 'dev', srv.ifname]);

      // Upstream: nsd with its own config and zone, in its own namespace.
      const nsdConf = writeNsdUpstream(dir, UPSTREAM, ['www IN A 192.0.2.1', 'www IN AAAA 2001:db8::1']);
      up.spawn('nsd', ['-d', '-c', nsdConf]);

      writeFileSync(join(dir, 'lanha.yaml'), `
node: { name: lan-a, role: server, address: ${SRV}, stateDir: ${dir}/state, controlSocket: ${dir}/lanha.sock, logLevel: info }
${etcd === undefined ? '' : `cluster: { id: dns-integ, backend: etcd, members: [{ name: lan-a, address: ${SRV} }], etcd: { endpoints: [${etcd.endpoints.map((e) => `"${e}"`).join(', ')}] } }`}
dhcp:
  offerTtl: 10s
  subnets:
    - subnet: 10.77.0.0/24
      pools: [10.77.0.100-10.77.0.150]
      dns: [${SRV}]
      domain: lan
      leaseTime: 10m
dns:
  listen: [${SRV}, ${OUTSIDE_SRV}]
  zones:
    - name: lan
      leases: true
      records:
        - "@ NS ns1"
        - "ns1 A ${SRV}"
        - "www A 10.77.0.80"
        - "www AAAA fd77::80"
        - "web CNAME www"
        - "@ MX 10 mail"
        - "mail A 10.77.0.25"
        - '@ TXT "lanha integration"'
        - "_ntp._udp SRV 0 0 123 ns1"
${Array.from({ length: 12 }, (_, i) => `        - 'big TXT "${String.fromCharCode(97 + i).repeat(200)}"'`).join('\n')}
  forward:
    upstreams: [${UPSTREAM}]
    allow: [10.77.0.0/24]
`);
      const daemon = srv.spawn(process.execPath, [LANCTL, 'serve', '--config', join(dir, 'lanha.yaml')]);
      let daemonLog = '';
      daemon.stdout?.on('data', (d: Buffer) => { daemonLog += d.toString(); });
      await waitFor(daemon, '"event":"daemon.ready"', 60_000); // etcd, DNS workers: slow on a loaded machine

      // Every record type.
      const short = async (args: string[]): Promise<string> => (await dig(cli, [`@${SRV}`, '+short', ...args])).trim();
      t.equal(await short(['www.lan', 'A']), '10.77.0.80');
      t.equal(await short(['www.lan', 'AAAA']), 'fd77::80');
      t.equal(await short(['web.lan', 'A']), 'www.lan.\n10.77.0.80', 'CNAME chased in-zone');
      t.equal(await short(['lan', 'MX']), '10 mail.lan.');
      t.equal(await short(['lan', 'TXT']), '"lanha integration"');
      t.equal(await short(['_ntp._udp.lan', 'SRV']), '0 0 123 ns1.lan.');
      t.equal(await short(['lan', 'NS']), 'ns1.lan.');
      t.match(await short(['lan', 'SOA']), /^ns1\.lan\. hostmaster\.lan\. \d+ 3600 600 86400 60$/);
      t.equal(await short(['-x', '10.77.0.80']), 'www.lan.', 'PTR from the automatic reverse zone');
      t.equal(await short(['+tcp', 'www.lan', 'A']), '10.77.0.80', 'over TCP');
      t.equal(await short(['WwW.LaN', 'A']), '10.77.0.80');
      const mixed = await dig(cli, [`@${SRV}`, 'WwW.LaN', 'A']);
      t.match(mixed, /WwW\.LaN\.\s+\d+\s+IN\s+A\s+10\.77\.0\.80/, 'case echoed');
      if (!/WwW\.LaN\.\s+\d+/.test(mixed)) t.comment(mixed);

      // Authoritative flags, NXDOMAIN vs NODATA with the SOA in authority.
      const nx = await dig(cli, [`@${SRV}`, '+norec', 'nope.lan', 'A']);
      t.match(nx, /status: NXDOMAIN/);
      t.match(nx, /flags: qr aa ra;/, 'AA; RA because this source may use forwarding');
      t.match(nx, /AUTHORITY: 1/);
      t.match(nx, /lan\.\s+60\s+IN\s+SOA/, 'negative TTL on the SOA');
      const nodata = await dig(cli, [`@${SRV}`, 'www.lan', 'TXT']);
      t.match(nodata, /status: NOERROR/);
      t.match(nodata, /ANSWER: 0, AUTHORITY: 1/);

      // EDNS, NSID, truncation and the retry over TCP.
      const k = await cli.exec('kdig', [`@${SRV}`, '+nsid', 'lan', 'SOA'], { timeoutMs: 10_000 });
      t.match(k.stdout, /UDP size: 1232 B/, 'kdig sees our 1232-byte EDNS size');
      t.match(k.stdout, /NSID: .*lan-a/, 'NSID names the node');
      const kt = await cli.exec('kdig', [`@${SRV}`, '+tcp', 'www.lan', 'AAAA'], { timeoutMs: 10_000 });
      t.match(kt.stdout, /TCP/);
      t.match(kt.stdout, /fd77::80/);
      const trunc = await dig(cli, [`@${SRV}`, '+ignore', 'big.lan', 'TXT']);
      t.match(trunc, /flags: qr aa tc/, 'TC set when the answer is over 1232 bytes');
      t.match(trunc, /OPT PSEUDOSECTION/, 'OPT kept in the truncated answer');
      const retried = await dig(cli, [`@${SRV}`, 'big.lan', 'TXT']);
      t.match(retried, /Truncated, retrying in TCP mode/);
      t.match(retried, /ANSWER: 12/, 'the whole RRset over TCP');
      t.match(await dig(cli, [`@${SRV}`, 'lan', 'ANY']), /ANSWER: 1,/, 'ANY answered with one record (RFC 8482)');

      // glibc resolver: the namespace's own resolv.conf points at lanha.
      writeFileSync(`/etc/netns/${cli.ns}/resolv.conf`, `nameserver ${SRV}\n`);
      const g = await cli.exec('getent', ['hosts', 'www.lan']);
      t.match(g.stdout, /^(10\.77\.0\.80|fd77::80)\s+www\.lan/, `getent hosts: ${g.stdout}${g.stderr}`);
      const g4 = await cli.exec('getent', ['ahostsv4', 'www.lan']);
      t.match(g4.stdout, /^10\.77\.0\.80\s/, `getent ahostsv4: ${g4.stdout}`);
      const g6 = await cli.exec('getent', ['ahostsv6', 'www.lan']);
      t.match(g6.stdout, /fd77::80/);

      // Forwarding to nsd, with the cache: the second query is not sent upstream.
      t.ok(await eventually(async () => (await short(['www.ext.test', 'A'])) === '192.0.2.1', 5000), 'forwarded to nsd');
      const f2 = await dig(cli, [`@${SRV}`, 'www.ext.test', 'A']);
      t.match(f2, /flags: qr rd ra;/, 'not authoritative, recursion available');
      t.match(f2, /www\.ext\.test\.\s+(\d+)\s+IN\s+A\s+192\.0\.2\.1/);
      const fnx = await dig(cli, [`@${SRV}`, 'missing.ext.test', 'A']);
      t.match(fnx, /status: NXDOMAIN/);
      await dig(cli, [`@${SRV}`, 'missing.ext.test', 'A']);
      // A hit answered by a UDP worker process reaches the daemon's counters with the worker's next
      // report (at most once a second): read until both hits are in, for a few seconds.
      let counters: Record<string, number> = {};
      await eventually(async () => {
        const status = await srv.exec(process.execPath, [LANCTL, 'status', '--json', '--socket', join(dir, 'lanha.sock')]);
        counters = (JSON.parse(status.stdout) as { services: { dns: { counters: Record<string, number> } } }).services.dns.counters;
        return (counters['dns.forward.cache_hit'] ?? 0) >= 2;
      }, 5000);
      t.ok((counters['dns.forward.cache_hit'] ?? 0) >= 2, `cache hits ${counters['dns.forward.cache_hit']}`);
      t.ok((counters['dns.forward.upstream_query'] ?? 0) <= 3, `upstream queries ${counters['dns.forward.upstream_query']} (one per distinct question)`);

      // Never an open resolver: a source outside the LAN prefixes is refused forwarding, still answered for our zones.
      const refused = await dig(out, [`@${OUTSIDE_SRV}`, 'www.ext.test', 'A']);
      t.match(refused, /status: REFUSED/);
      t.notMatch(refused, /192\.0\.2\.1/);
      t.equal((await dig(out, [`@${OUTSIDE_SRV}`, '+short', 'www.lan', 'A'])).trim(), '10.77.0.80', 'our zones still answered');
      t.notMatch(await dig(out, [`@${OUTSIDE_SRV}`, 'www.lan', 'A']), / ra[ ;]/, 'no RA for outsiders');

      // A DHCP client's host name: resolvable forward and reverse right after the lease, gone after release.
      // The hook writes the address beside the note and renames it into place: a reader polling the
      // note itself could find it created and still empty (the shell opens it before echo writes).
      const script = join(dir, 'udhcpc.sh');
      const leaseFile = join(dir, 'udhcpc.ip');
      writeFileSync(script, `#!/bin/sh\n# lab-only udhcpc hook: set the address, note it, never touch resolv.conf\ncase "$1" in bound|renew) ip addr replace "$ip/$subnet" dev "$interface"; echo "$ip" > ${leaseFile}.new; mv ${leaseFile}.new ${leaseFile};; esac\nexit 0\n`);
      chmodSync(script, 0o755);
      const serialOf = async (): Promise<number> => Number((await short(['lan', 'SOA'])).split(' ')[2]);
      const serialBefore = await serialOf();
      const client = dh.spawn('udhcpc', ['-i', dh.ifname, '-f', '-t', '5', '-T', '1', '-x', 'hostname:pi7', '-s', script]);
      const leased = await eventually(async () => existsSync(leaseFile), 15_000);
      t.ok(leased, 'udhcpc got a lease');
      if (!leased) t.comment(daemonLog);
      const ip = leased ? readFileSync(leaseFile, 'utf8').trim() : '0.0.0.0';
      t.match(ip, /^10\.77\.0\.1\d\d$/, `leased address ${ip}`);
      t.equal(await short(['pi7.lan', 'A']), ip, 'A right after the lease');
      t.equal(await short(['-x', ip]), 'pi7.lan.', 'PTR right after the lease');
      const serialLeased = await serialOf();
      t.ok(serialLeased > serialBefore, `SOA serial ${serialBefore} -> ${serialLeased} with the lease`);
      const records = await srv.exec(process.execPath, [LANCTL, 'records', '--json', '--socket', join(dir, 'lanha.sock')]);
      t.ok((JSON.parse(records.stdout) as { records: Array<{ name: string; source: string }> }).records.some((r) => r.name === 'pi7.lan' && r.source === 'lease'), 'lanctl records lists the lease name');
      const table = await srv.exec(process.execPath, [LANCTL, 'records', '--socket', join(dir, 'lanha.sock')]);
      t.match(table.stdout, /pi7\.lan\.\s+\d+\s+A\s+10\.77\.0\.\d+\s+lease/);
      client.kill('SIGUSR2'); // busybox udhcpc: send RELEASE now
      const gone = await eventually(async () => (await dig(cli, [`@${SRV}`, 'pi7.lan', 'A'])).includes('NXDOMAIN'), 5000);
      t.ok(gone, 'A gone after the client released its lease');
      t.match(await dig(cli, [`@${SRV}`, '-x', ip]), /NXDOMAIN/, 'PTR gone after release');
      t.ok((await serialOf()) > serialLeased, 'SOA serial up again with the release');
      await stopChild(client);

      t.ok(lab.resolvConfUnchanged(), 'host /etc/resolv.conf untouched');
    });
  } finally {
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
