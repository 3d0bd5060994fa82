import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLASS_IN, T, decodeMessage, emptyMessage, encodeMessage } from '../../services/dns/wire.js';

/** What a test upstream answers to `query`: its question with one A record (`ttl`, `address`); null when it does not decode. */
export function answerA(query: Uint8Array, ttl: number, address: readonly number[]): Uint8Array | null {
  const d = decodeMessage(query);
  if (!d.ok) return null;
  const r = emptyMessage(d.value.id);
  r.qr = true; r.rd = true; r.ra = true;
  r.questions = d.value.questions;
  r.answers = [{ name: d.value.questions[0]!.name, type: T.A, class: CLASS_IN, ttl, rdata: Uint8Array.from(address) }];
  return encodeMessage(r).bytes;
}

/**
 * An nsd upstream for lab tests: zone `ext.test` (SOA, NS, ns A, then `records`, zone-file lines
 * relative to it) and nsd.conf listening on `address`:53, every file under `dir`. Returns the
 * config's path, for `nsd -d -c`.
 */
export function writeNsdUpstream(dir: string, address: string, records: readonly string[]): string {
  writeFileSync(join(dir, 'ext.zone'), [
    '$ORIGIN ext.test.', '$TTL 300', '@ IN SOA ns.ext.test. admin.ext.test. 1 3600 600 86400 120', '@ IN NS ns', 'ns IN A 192.0.2.53',
    ...records, '',
  ].join('\n'));
  writeFileSync(join(dir, 'nsd.conf'), [
    'server:', `  ip-address: ${address}`, '  port: 53', '  username: ""', '  chroot: ""', `  zonesdir: "${dir}"`, `  zonelistfile: "${dir}/zone.list"`,
    '  database: ""', `  pidfile: "${dir}/nsd.pid"`, `  xfrdfile: "${dir}/xfrd.state"`, `  xfrdir: "${dir}"`, `  logfile: "${dir}/nsd.log"`, '  verbosity: 0',
    'remote-control:', '  control-enable: no', 'zone:', '  name: ext.test', '  zonefile: ext.zone', '',
  ].join('\n'));
  return join(dir, 'nsd.conf');
}
