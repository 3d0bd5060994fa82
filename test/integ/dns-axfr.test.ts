import t from 'tap';
import { spawn } from 'node:child_process';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireLab, stopChild } from '../support/netns.js';
import { runLanctl, scratchConfig, serveDaemon } from '../support/daemon.js';
import { freePort } from '../support/ports.js';

// Zone transfers to real secondaries, on loopback: `dig AXFR` gets the whole zone (SOA first and
// last, the records `lanctl records` lists), a source outside `transfer.allow` is refused, and
// nsd configured as a secondary of lanha loads the zone over AXFR and answers from it.

const execFileAsync = promisify(execFile);

async function dig(args: readonly string[]): Promise<string> {
  const { stdout } = await execFileAsync('dig', [...args], { timeout: 20_000 });
  return stdout;
}

/** Answer lines of dig output ("name ttl class type data"), comments and blanks dropped. */
function answerLines(out: string): string[][] {
  return out.split('\n').filter((l) => l.trim() !== '' && !l.startsWith(';')).map((l) => l.trim().split(/\s+/));
}

t.test('AXFR to dig and to nsd as a secondary', async (t) => {
  if (!requireLab(t, ['nsd', 'dig'])) return;
  const nsdPort = await freePort();
  const scratch = scratchConfig(`node: { name: lan-a, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock" }
dns:
  port: ${await freePort()}
  listen: [127.0.0.1]
  transfer: { allow: [127.0.0.1/32], notify: ["127.0.0.1:${nsdPort}"] }
  subnets: [10.66.0.0/24]
  zones:
    - name: lan
      ttl: 5m
      primary: ns1.lan
      records: ["@ NS ns1", "ns1 A 10.66.0.2", "www A 10.66.0.80", "www AAAA fd66::80", "@ MX 10 mail", "mail A 10.66.0.25",
                '@ TXT "v=spf1 -all"', "_ntp._udp SRV 0 0 123 ns1", "files CNAME www", "*.apps A 10.66.0.70"]
`);
  t.teardown(scratch.cleanup);
  const daemon = await serveDaemon(scratch.file);
  t.teardown(() => daemon.stop());
  const status = await runLanctl(['status', '--json', '--socket', join(scratch.dir, 's.sock')]);
  const listening = (JSON.parse(status.stdout) as { services: { dns: { listening: string[] } } }).services.dns.listening;
  const port = Number(/:(\d+)$/.exec(listening.find((l) => l.startsWith('tcp'))!)![1]);

  // dig, from an allowed source.
  const axfr = answerLines(await dig(['@127.0.0.1', '-p', String(port), '-b', '127.0.0.1', 'lan', 'AXFR']));
  t.equal(axfr[0]?.[3], 'SOA', 'SOA first');
  t.equal(axfr.at(-1)?.[3], 'SOA', 'SOA last');
  const records = JSON.parse((await runLanctl(['records', '--json', '--socket', join(scratch.dir, 's.sock')])).stdout) as { records: Array<{ zone: string; type: string }> };
  const inZone = records.records.filter((r) => r.zone === 'lan');
  t.equal(axfr.length, inZone.length + 1, `${axfr.length} records: the zone as lanctl records lists it, SOA twice`);
  t.same(axfr.map((l) => l[3]).sort(), [...inZone.map((r) => r.type), 'SOA'].sort(), 'the same types');
  const reverse = answerLines(await dig(['@127.0.0.1', '-p', String(port), '-b', '127.0.0.1', '0.66.10.in-addr.arpa', 'AXFR']));
  t.ok(reverse.some((l) => l[3] === 'PTR' && l[4] === 'www.lan.'), 'the reverse zone transfers too, with the PTR derived from www');

  // A source outside transfer.allow.
  const refused = await dig(['@127.0.0.1', '-p', String(port), '-b', '127.0.0.9', 'lan', 'AXFR']);
  t.match(refused, /Transfer failed|REFUSED/, 'a source outside transfer.allow is refused');
  t.notMatch(refused, /\bIN\s+A\s+10\.66\.0\.80/, 'and gets no records');

  // nsd as a secondary of lanha.
  const dir = scratch.dir;
  writeFileSync(join(dir, 'nsd.conf'), [
    'server:', `  ip-address: 127.0.0.1@${nsdPort}`, `  port: ${nsdPort}`, '  username: ""', '  chroot: ""', `  zonesdir: "${dir}"`,
    `  zonelistfile: "${dir}/zone.list"`, '  database: ""', `  pidfile: "${dir}/nsd.pid"`, `  xfrdfile: "${dir}/xfrd.state"`,
    `  xfrdir: "${dir}"`, `  logfile: "${dir}/nsd.log"`, '  verbosity: 2',
    'remote-control:', '  control-enable: no',
    'zone:', '  name: lan', `  zonefile: "${dir}/lan.secondary"`, `  request-xfr: AXFR 127.0.0.1@${port} NOKEY`, '  allow-notify: 127.0.0.1 NOKEY', '',
  ].join('\n'));
  const nsd = spawn('nsd', ['-d', '-c', join(dir, 'nsd.conf')], { stdio: 'ignore' });
  t.teardown(() => stopChild(nsd));
  let answer = '';
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
    answer = await dig(['@127.0.0.1', '-p', String(nsdPort), '+short', '+time=1', '+tries=1', 'www.lan', 'A']).catch(() => '');
    if (answer.trim() !== '') break;
  }
  t.equal(answer.trim(), '10.66.0.80', 'nsd loaded the zone from lanha and answers from it');
  const soa = async (p: number): Promise<string> => (await dig(['@127.0.0.1', '-p', String(p), '+short', 'lan', 'SOA'])).trim();
  t.equal(await soa(nsdPort), await soa(port), 'the secondary has our serial');
  t.equal((await dig(['@127.0.0.1', '-p', String(nsdPort), '+short', 'files.lan', 'CNAME'])).trim(), 'www.lan.', 'a CNAME arrived intact');
  for (const p of [port, nsdPort]) {
    t.equal((await dig(['@127.0.0.1', '-p', String(p), '+short', 'grafana.apps.lan', 'A'])).trim(), '10.66.0.70', `wildcard answered (${p === port ? 'lanha' : 'nsd, from the transferred *.apps'})`);
  }

  // An operator record: served at once, and NOTIFY brings it to the secondary (its SOA refresh is an hour).
  const socket = ['--socket', join(scratch.dir, 's.sock')];
  const set = await runLanctl(['records', 'set', 'printer.lan', 'A', '10.66.0.9', '--ttl', '60', ...socket]);
  t.equal(set.code, 0, set.stderr);
  t.match(set.stdout, /set printer\.lan\. 60 A 10\.66\.0\.9/);
  t.equal((await dig(['@127.0.0.1', '-p', String(port), '+short', 'printer.lan', 'A'])).trim(), '10.66.0.9', 'lanha serves the new record');
  const onSecondary = async (want: string): Promise<boolean> => {
    for (const deadline = Date.now() + 15_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
      if ((await dig(['@127.0.0.1', '-p', String(nsdPort), '+short', '+time=1', '+tries=1', 'printer.lan', 'A']).catch(() => '?')).trim() === want) return true;
    }
    return false;
  };
  t.ok(await onSecondary('10.66.0.9'), 'NOTIFY: the secondary has the new record within seconds');
  const bad = await runLanctl(['records', 'set', 'printer.example', 'A', '10.66.0.9', ...socket]);
  t.equal(bad.code, 1, 'a name outside our zones is refused');
  t.match(bad.stderr, /printer\.example is in none of the zones served/);
  const del = await runLanctl(['records', 'delete', 'printer.lan', 'A', ...socket]);
  t.equal(del.code, 0, del.stderr);
  t.ok(await onSecondary(''), 'and loses it after the delete');
  t.equal(await soa(nsdPort), await soa(port), 'serials agree again');
});
