import t from 'tap';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireLab, stopChild, withLab, type LabHost } from '../support/netns.js';
import { LANCTL } from '../support/paths.js';
import { serveDaemon, type ServedDaemon } from '../support/daemon.js';
import { writeNsdUpstream } from '../support/dns-upstream.js';

// The stub resolvers applications use, against lanha in lab namespaces (prefix lh), each client
// namespace with its own /etc/netns/<ns>/resolv.conf (the host's is checked unchanged at the end):
// glibc through getent and python3's socket.getaddrinfo with resolv.conf variants (parallel A+AAAA
// on one socket, single-request, edns0, trust-ad, use-vc with UDP blocked, search and ndots, a dead
// first nameserver), answers past 512 bytes (TC, then TCP), reverse lookups, a udhcpc client's
// lease name, forwarding to nsd, the asker's case; and bind's host and nslookup, ldns's drill and
// busybox nslookup. Every assertion quotes the client's own output.

const NET = '10.76.0';
const SRV = `${NET}.1`, UPSTREAM = `${NET}.53`, DEAD = `${NET}.99`;
const PY = '/usr/bin/python3';

const MANY = 40; // 40 A records: 666 bytes, over 512 without EDNS, under glibc's EDNS size
const HUGE = 90; // 90 A records: 1466 bytes, over the 1232 we allow on UDP even with EDNS


function lanhaConfig(dir: string): string {
  const records = [
    '"www A 10.76.0.80"', '"v4only A 10.76.0.81"', '"v6only AAAA fd76::82"', '"both A 10.76.0.83"', '"both AAAA fd76::83"', '"MiXeD A 10.76.0.84"', '"web CNAME www"', '"cdn CNAME www.ext.test."',
    ...Array.from({ length: MANY }, (_, i) => `"many A 10.76.1.${i + 1}"`),
    ...Array.from({ length: HUGE }, (_, i) => `"huge A 10.76.2.${i + 1}"`),
  ];
  return `
node: { name: lan-a, role: server, address: ${SRV}, stateDir: ${dir}/state, controlSocket: ${dir}/lanha.sock, logLevel: info }
dhcp:
  subnets:
    - subnet: ${NET}.0/24
      pools: [${NET}.100-${NET}.150]
      dns: [${SRV}]
      domain: lan
      leaseTime: 10m
dns:
  listen: [${SRV}]
  zones:
    - name: lan
      leases: true
      records:
${records.map((r) => `        - ${r}`).join('\n')}
  forward:
    upstreams: [${UPSTREAM}]
    allow: [${NET}.0/24]
`;
}

/** lanha in `srv`, stopped by the test at the end (the lab kills what is left). */
async function startLanha(srv: LabHost, dir: string): Promise<ServedDaemon> {
  writeFileSync(join(dir, 'lanha.yaml'), lanhaConfig(dir));
  return serveDaemon(join(dir, 'lanha.yaml'), { command: ['ip', 'netns', 'exec', srv.ns, process.execPath, LANCTL] });
}

/** A client namespace whose resolver file is `conf`; `run` executes a client there, output merged. */
function client(host: LabHost) {
  return {
    resolv(conf: string): void { writeFileSync(`/etc/netns/${host.ns}/resolv.conf`, conf); },
    async run(command: string, args: readonly string[]): Promise<{ code: number; out: string; ms: number }> {
      const start = Date.now();
      const r = await host.exec(command, args, { timeoutMs: 20_000 });
      return { code: r.code, out: r.stdout + r.stderr, ms: Date.now() - start };
    },
  };
}

/** `getent ahosts*` output: the distinct addresses (first column), in order. */
function addresses(out: string): string[] {
  return [...new Set(out.split('\n').filter((l) => l.trim() !== '').map((l) => l.split(/\s+/)[0]!))];
}

/** python3's getaddrinfo with AI_CANONNAME: prints `canonname family address` lines, or `ERR <errno>`. */
const GETADDRINFO = `
import socket, sys
try:
    rs = socket.getaddrinfo(sys.argv[1], None, 0, socket.SOCK_STREAM, 0, socket.AI_CANONNAME)
except socket.gaierror as e:
    print('ERR', e.errno); sys.exit(2)
for r in rs: print(r[3] or '-', r[0].name, r[4][0])`;

t.test('glibc, python3, host, nslookup, drill and busybox nslookup against lanha', async (t) => {
  if (!requireLab(t, ['getent', PY, 'host', 'nslookup', 'drill', 'busybox', 'nsd', 'udhcpc', 'nft'])) return;
  const dir = mkdtempSync(join(tmpdir(), 'lanha-stub-'));
  try {
    await withLab(async (lab) => {
      const srv = await lab.addHost('srv', `${SRV}/24`);
      const up = await lab.addHost('up', `${UPSTREAM}/24`);
      const cliHost = await lab.addHost('cli', `${NET}.10/24`);
      const vcHost = await lab.addHost('vc', `${NET}.11/24`);
      const dh = await lab.addHost('dh', null);
      await srv.exec('ip', ['route', 'add', 'default', 'dev', srv.ifname]); // DHCP replies to 255.255.255.255
      const nsdConf = writeNsdUpstream(dir, UPSTREAM, ['www IN A 192.0.2.1', 'www IN AAAA 2001:db8::1', 'v4 IN A 192.0.2.4', ...Array.from({ length: MANY }, (_, i) => `many IN A 192.0.2.${100 + i}`)]);
      lab.track(up.spawn('nsd', ['-d', '-c', nsdConf]));
      const lanha = await startLanha(srv, dir);
      lab.track(lanha.child); // stopped with the lab if the test fails first
      const cli = client(cliHost);
      const base = `nameserver ${SRV}\n`;

      // The default (A and AAAA in parallel from one socket) and each option that changes how glibc asks.
      // A name with only an A record must come back as that A alone: an AAAA answered NXDOMAIN (instead
      // of NODATA) or left unanswered makes glibc fail the whole lookup or wait out its timeout.
      const variants: Array<[string, string]> = [
        ['default', base], ['single-request', `${base}options single-request\n`], ['edns0', `${base}options edns0\n`],
        ['trust-ad', `${base}options trust-ad\n`], ['single-request-reopen', `${base}options single-request-reopen\n`],
      ];
      for (const [label, conf] of variants) {
        cli.resolv(conf);
        const v4 = await cli.run('getent', ['ahosts', 'v4only.lan']);
        t.same([v4.code, addresses(v4.out)], [0, [`${NET}.81`]], `${label}: getent ahosts v4only.lan prints "${NET}.81 STREAM v4only.lan" alone: ${v4.out}`);
        t.match(v4.out, new RegExp(`^${NET}\\.81\\s+STREAM v4only\\.lan$`, 'm'));
        const v6 = await cli.run('getent', ['ahosts', 'v6only.lan']);
        t.same([v6.code, addresses(v6.out)], [0, ['fd76::82']], `${label}: getent ahosts v6only.lan prints fd76::82 alone: ${v6.out}`);
        const both = await cli.run('getent', ['ahosts', 'both.lan']);
        t.same([both.code, addresses(both.out)], [0, [`${NET}.83`, 'fd76::83']], `${label}: getent ahosts both.lan prints both: ${both.out}`);
        const nx = await cli.run('getent', ['ahosts', 'nope.lan']);
        t.same([nx.code, nx.out], [2, ''], `${label}: getent ahosts nope.lan exits 2 (not found), silent`);
        const fwd = await cli.run('getent', ['ahosts', 'www.ext.test']);
        t.same([fwd.code, addresses(fwd.out).sort()], [0, ['192.0.2.1', '2001:db8::1']], `${label}: getent ahosts www.ext.test through the forwarder to nsd: ${fwd.out}`);
        const fwd4 = await cli.run('getent', ['ahosts', 'v4.ext.test']);
        t.same([fwd4.code, addresses(fwd4.out)], [0, ['192.0.2.4']], `${label}: getent ahosts v4.ext.test (forwarded, A only): ${fwd4.out}`);
      }

      // CNAMEs: in-zone, and out of the zone to a name only the forwarder can answer (a stub resolver
      // does not chase a CNAME itself: the server it asks must hand over the whole chain).
      const web = await cli.run('getent', ['ahostsv4', 'web.lan']);
      t.match(web.out, new RegExp(`^${NET}\\.80\\s+STREAM www\\.lan$`, 'm'), `getent ahostsv4 web.lan: the CNAME target's address under its canonical name: ${web.out}`);
      const cdn = await cli.run('getent', ['ahosts', 'cdn.lan']);
      t.same([cdn.code, addresses(cdn.out).sort()], [0, ['192.0.2.1', '2001:db8::1']], `getent ahosts cdn.lan (CNAME www.ext.test.): the forwarded target's addresses: ${cdn.out}`);
      t.match(cdn.out, /STREAM www\.ext\.test$/m, 'under the canonical name www.ext.test');
      const hostCdn = await cli.run('host', ['cdn.lan']);
      t.match(hostCdn.out, /^cdn\.lan is an alias for www\.ext\.test\.\nwww\.ext\.test has address 192\.0\.2\.1\n/, `host cdn.lan: ${hostCdn.out}`);

      // getent hosts (gethostbyname2: AAAA first, then A) and ahostsv4.
      cli.resolv(base);
      t.match((await cli.run('getent', ['hosts', 'v4only.lan'])).out, new RegExp(`^${NET}\\.81\\s+v4only\\.lan\\n$`), 'getent hosts v4only.lan falls back to the A');
      t.match((await cli.run('getent', ['hosts', 'both.lan'])).out, /^fd76::83\s+both\.lan\n$/, 'getent hosts both.lan prefers the AAAA');
      t.match((await cli.run('getent', ['ahostsv4', 'both.lan'])).out, new RegExp(`^${NET}\\.83\\s+STREAM both\\.lan\\n`), 'getent ahostsv4 both.lan: the A');
      t.equal((await cli.run('getent', ['ahostsv4', 'v6only.lan'])).code, 2, 'getent ahostsv4 v6only.lan: not found (NODATA for A)');

      // Answers over 512 bytes: without EDNS glibc gets TC and retries over TCP; with edns0 the 40
      // records fit; 90 records do not fit our 1232 either, so edns0 retries over TCP too.
      for (const [label, conf] of [['no EDNS', base], ['edns0', `${base}options edns0\n`]] as const) {
        cli.resolv(conf);
        const many = await cli.run('getent', ['ahostsv4', 'many.lan']);
        t.equal(addresses(many.out).length, MANY, `${label}: getent ahostsv4 many.lan prints all ${MANY} addresses (${many.out.split('\n')[0]} ...)`);
        const huge = await cli.run('getent', ['ahostsv4', 'huge.lan']);
        t.equal(addresses(huge.out).length, HUGE, `${label}: getent ahostsv4 huge.lan prints all ${HUGE} addresses`);
        const fwdMany = await cli.run('getent', ['ahostsv4', 'many.ext.test']);
        t.equal(addresses(fwdMany.out).length, MANY, `${label}: getent ahostsv4 many.ext.test (forwarded, TC then TCP) prints all ${MANY}`);
      }
      const drillTc = await cli.run('drill', ['many.lan', `@${SRV}`]);
      t.match(drillTc.out, /;; flags: qr aa tc rd ra ; QUERY: 1, ANSWER: 0,/, 'drill (no EDNS) sees TC and no records for the 666-byte answer');
      const drillTcp = await cli.run('drill', ['-t', 'many.lan', `@${SRV}`]);
      t.match(drillTcp.out, new RegExp(`;; flags: qr aa rd ra ; QUERY: 1, ANSWER: ${MANY},`), 'drill -t gets them all over TCP');

      // use-vc: TCP only. In a namespace whose outgoing UDP to port 53 is dropped, the default fails and use-vc answers.
      const vc = client(vcHost);
      const nft = await vcHost.exec('nft', ['-f', '-'], { input: 'table inet lhblock {\n chain out {\n  type filter hook output priority 0;\n  udp dport 53 drop\n }\n}\n' });
      t.equal(nft.code, 0, `nft drops outgoing UDP to port 53 in the use-vc namespace ${nft.stderr}`);
      vc.resolv(`${base}options timeout:1 attempts:1\n`);
      const blocked = await vc.run('getent', ['ahostsv4', 'www.lan']);
      t.same([blocked.code, blocked.out], [2, ''], 'UDP blocked: getent ahostsv4 www.lan fails without use-vc, silent');
      vc.resolv(`${base}options use-vc\n`);
      for (const name of ['v4only.lan', 'both.lan', 'www.ext.test', 'huge.lan']) {
        const r = await vc.run('getent', ['ahosts', name]);
        t.equal(r.code, 0, `use-vc, UDP blocked: getent ahosts ${name} answered over TCP (${addresses(r.out).slice(0, 2).join(' ')})`);
      }
      t.same(addresses((await vc.run('getent', ['ahosts', 'v4only.lan'])).out), [`${NET}.81`], 'use-vc: v4only.lan the A alone (AAAA NODATA over TCP)');

      // search and ndots: short names, and names with a dot under ndots:2; a search domain nsd does not serve comes first.
      cli.resolv(`search corp.test lan\n${base}`);
      t.match((await cli.run('getent', ['ahostsv4', 'www'])).out, new RegExp(`^${NET}\\.80\\s+STREAM www\\.lan$`, 'm'), 'search: getent ahostsv4 www -> www.lan');
      cli.resolv(`search corp.test test lan\n${base}options ndots:2\n`);
      t.match((await cli.run('getent', ['ahostsv4', 'www.ext'])).out, /^192\.0\.2\.1\s+STREAM www\.ext\.test$/m, 'ndots:2: www.ext -> www.ext.test (after www.ext.corp.test, forwarded and refused upstream)');
      t.match((await cli.run('getent', ['ahostsv4', 'www.lan'])).out, new RegExp(`^${NET}\\.80\\s+STREAM www\\.lan$`, 'm'), 'ndots:2: www.lan after the search list fails');

      // Two nameservers, the first silent: glibc waits out its timeout, then the second answers.
      cli.resolv(`nameserver ${DEAD}\n${base}options timeout:1 attempts:2\n`);
      const failover = await cli.run('getent', ['ahostsv4', 'www.lan']);
      t.match(failover.out, new RegExp(`^${NET}\\.80\\s+STREAM www\\.lan$`, 'm'), `first nameserver down: the second answers (${failover.ms} ms)`);
      t.ok(failover.ms >= 900, `after the first one's 1 s timeout (${failover.ms} ms)`);

      // Reverse lookups (gethostbyaddr -> PTR from the automatic reverse zone).
      cli.resolv(base);
      t.match((await cli.run('getent', ['hosts', `${NET}.80`])).out, new RegExp(`^${NET}\\.80\\s+www\\.lan\\n$`), `getent hosts ${NET}.80 -> www.lan`);
      t.match((await cli.run('host', [`${NET}.80`])).out, new RegExp(`^80\\.0\\.76\\.10\\.in-addr\\.arpa domain name pointer www\\.lan\\.$`, 'm'), 'host <ip> -> domain name pointer');
      t.equal((await cli.run('getent', ['hosts', `${NET}.77`])).code, 2, 'getent hosts on an address without a name: not found');

      // The asker's case comes back (RFC 4343): glibc takes the canonical name from the answer's owner.
      const mixed = await cli.run(PY, ['-c', GETADDRINFO, 'mIxEd.LAN']);
      t.match(mixed.out, new RegExp(`^mIxEd\\.LAN AF_INET ${NET}\\.84$`, 'm'), `python3 getaddrinfo('mIxEd.LAN', AI_CANONNAME): ${mixed.out}`);
      const pyBoth = await cli.run(PY, ['-c', GETADDRINFO, 'both.lan']);
      t.match(pyBoth.out, new RegExp(`^both\\.lan AF_INET ${NET}\\.83$`, 'm'), `python3 getaddrinfo('both.lan'): the A: ${pyBoth.out}`);
      t.match(pyBoth.out, /^- AF_INET6 fd76::83$/m, 'and the AAAA');
      const pyV4 = await cli.run(PY, ['-c', GETADDRINFO, 'v4only.lan']);
      t.equal(pyV4.out, `v4only.lan AF_INET ${NET}.81\n`, 'python3 getaddrinfo(v4only.lan): one AF_INET answer, no error from the AAAA');
      const pyNx = await cli.run(PY, ['-c', GETADDRINFO, 'nope.lan']);
      t.equal(pyNx.out, `ERR ${-2}\n`, 'python3 getaddrinfo(nope.lan): EAI_NONAME (-2)');

      // bind's host and nslookup, ldns's drill, busybox nslookup.
      const hostV4 = await cli.run('host', ['v4only.lan']);
      t.equal(hostV4.out, `v4only.lan has address ${NET}.81\n`, 'host v4only.lan: the address, no error for AAAA or MX');
      t.equal((await cli.run('host', ['-t', 'AAAA', 'v4only.lan'])).out, 'v4only.lan has no AAAA record\n', 'host -t AAAA v4only.lan: NODATA, not NXDOMAIN');
      t.equal((await cli.run('host', ['-t', 'AAAA', 'v4.ext.test'])).out, 'v4.ext.test has no AAAA record\n', 'host -t AAAA v4.ext.test: forwarded NODATA');
      t.equal((await cli.run('host', ['nope.lan'])).out, 'Host nope.lan not found: 3(NXDOMAIN)\n', 'host nope.lan: NXDOMAIN');
      t.equal((await cli.run('host', ['www.ext.test'])).out, 'www.ext.test has address 192.0.2.1\nwww.ext.test has IPv6 address 2001:db8::1\n', 'host www.ext.test: A and AAAA forwarded, MX NODATA silent');
      const ns = await cli.run('nslookup', ['both.lan']);
      t.match(ns.out, new RegExp(`Name:\\tboth\\.lan\\nAddress: ${NET}\\.83\\nName:\\tboth\\.lan\\nAddress: fd76::83`), `nslookup both.lan: both addresses: ${ns.out}`);
      const nsV4 = await cli.run('nslookup', ['v4only.lan']);
      t.match(nsV4.out, new RegExp(`Name:\\tv4only\\.lan\\nAddress: ${NET}\\.81\\n`), 'nslookup v4only.lan: the address');
      t.notMatch(nsV4.out, /can't find/, 'and no "can\'t find" for the AAAA');
      t.match((await cli.run('nslookup', ['nope.lan'])).out, /\*\* server can't find nope\.lan: NXDOMAIN/, 'nslookup nope.lan: NXDOMAIN');
      const drill = await cli.run('drill', ['v4only.lan', 'AAAA', `@${SRV}`]);
      t.match(drill.out, /rcode: NOERROR/, 'drill v4only.lan AAAA: NOERROR');
      t.match(drill.out, /ANSWER: 0, AUTHORITY: 1,/, 'with no answer and the SOA in authority');
      const bb = await cli.run('busybox', ['nslookup', 'both.lan', SRV]);
      t.match(bb.out, new RegExp(`Name:\\tboth\\.lan\\nAddress: ${NET}\\.83\\n`), `busybox nslookup both.lan: the A: ${bb.out}`);
      t.match(bb.out, /Name:\tboth\.lan\nAddress: fd76::83\n/, 'and the AAAA');
      const bbV4 = await cli.run('busybox', ['nslookup', 'v4only.lan', SRV]);
      t.equal(bbV4.code, 0, 'busybox nslookup v4only.lan exits 0');
      t.notMatch(bbV4.out, /can't find/, 'no "can\'t find" for the missing AAAA');
      t.match((await cli.run('busybox', ['nslookup', 'nope.lan', SRV])).out, /\*\* server can't find nope\.lan: NXDOMAIN/, 'busybox nslookup nope.lan: NXDOMAIN');

      // A udhcpc client's host name, resolved by another client forward (short and full) and reverse.
      const script = join(dir, 'udhcpc.sh');
      const leaseFile = join(dir, 'udhcpc.ip');
      writeFileSync(script, `#!/bin/sh\n# lab-only udhcpc hook: set the address, note it, never touch resolv.conf\ncase "$1" in bound|renew) ip addr replace "$ip/$subnet" dev "$interface"; echo "$ip" > ${leaseFile}.new; mv ${leaseFile}.new ${leaseFile};; esac\nexit 0\n`);
      chmodSync(script, 0o755);
      const udhcpc = lab.track(dh.spawn('udhcpc', ['-i', dh.ifname, '-f', '-t', '5', '-T', '1', '-x', 'hostname:pi9', '-s', script]));
      const end = Date.now() + 15_000;
      while (!existsSync(leaseFile) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      const ip = existsSync(leaseFile) ? readFileSync(leaseFile, 'utf8').trim() : '';
      t.match(ip, new RegExp(`^${NET.replace(/\./g, '\\.')}\\.1\\d\\d$`), `udhcpc got a lease (${ip})`);
      cli.resolv(`search lan\n${base}`);
      t.equal((await cli.run('getent', ['hosts', 'pi9.lan'])).out, `${ip.padEnd(15)} pi9.lan\n`, 'getent hosts pi9.lan: the leased address');
      t.match((await cli.run('getent', ['ahostsv4', 'pi9'])).out, new RegExp(`^${ip.replace(/\./g, '\\.')}\\s+STREAM pi9\\.lan$`, 'm'), 'getent ahostsv4 pi9 (search lan)');
      t.equal((await cli.run('getent', ['hosts', ip])).out, `${ip.padEnd(15)} pi9.lan\n`, `getent hosts ${ip}: the lease's PTR`);
      t.equal((await cli.run('busybox', ['nslookup', '-type=a', 'pi9.lan', SRV])).code, 0, 'busybox nslookup pi9.lan');
      await stopChild(udhcpc);
      await lanha.stop();
      t.ok(lab.resolvConfUnchanged(), 'host /etc/resolv.conf untouched');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
