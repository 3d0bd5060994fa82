import t from 'tap';
import dgram from 'node:dgram';
import { Counters } from '../../lib/counters.js';
import { silentLogger } from '../../lib/log.js';
import { seededRandom } from '../../lib/random.js';
import { Notifier, OPCODE_NOTIFY } from './notify.js';
import { RCODE, T, decodeMessage, encodeMessage, type DnsMessage } from './wire.js';

// NOTIFY to a fake secondary on loopback: the message's shape, resends until answered, an answer
// with the wrong ID ignored, a newer change replacing the pending one, giving up after 5 tries.

async function secondary(): Promise<{ socket: dgram.Socket; port: number; got: Array<{ m: DnsMessage; rinfo: dgram.RemoteInfo }> }> {
  const socket = dgram.createSocket('udp4');
  const got: Array<{ m: DnsMessage; rinfo: dgram.RemoteInfo }> = [];
  socket.on('message', (b, rinfo) => { const d = decodeMessage(b); if (d.ok) got.push({ m: d.value, rinfo }); });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  return { socket, port: socket.address().port, got };
}

function answer(socket: dgram.Socket, q: DnsMessage, rinfo: dgram.RemoteInfo, id = q.id): void {
  socket.send(encodeMessage({ ...q, id, qr: true, rcode: RCODE.NOERROR }).bytes, rinfo.port, rinfo.address);
}

const until = async (check: () => boolean, ms = 3000): Promise<boolean> => {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) if (check()) return true;
  return check();
};

t.test('NOTIFY: opcode 4, AA, SOA question; resent until answered with the same ID', async (t) => {
  const sec = await secondary();
  t.teardown(() => sec.socket.close());
  const counters = new Counters();
  const n = new Notifier({ targets: [{ address: '127.0.0.1', port: sec.port }], random: seededRandom(7), log: silentLogger, counters, retryMs: 100 });
  t.teardown(() => n.close());
  n.notify(['lan', '0.66.10.in-addr.arpa'], 12);
  t.ok(await until(() => sec.got.length >= 2), 'one NOTIFY per zone');
  const first = sec.got[0]!.m;
  t.equal(first.opcode, OPCODE_NOTIFY);
  t.ok(first.aa && !first.qr, 'AA set, a query');
  t.same(first.questions.map((q) => q.type), [T.SOA]);
  t.same(new Set(sec.got.slice(0, 2).map((g) => g.m.questions[0]!.name)), new Set(['lan', '0.66.10.in-addr.arpa']));
  t.ok(await until(() => sec.got.length >= 4), 'unanswered: sent again');
  const lan = sec.got.find((g) => g.m.questions[0]!.name === 'lan')!;
  answer(sec.socket, lan.m, lan.rinfo, (lan.m.id + 1) & 0xffff);
  t.ok(await until(() => counters.get('dns.notify.mismatched') === 1), 'an answer with another ID is ignored');
  answer(sec.socket, lan.m, lan.rinfo);
  t.ok(await until(() => counters.get('dns.notify.acked') === 1 && n.pending === 1), 'the right answer ends the NOTIFY for that zone');
  t.ok(await until(() => counters.get('dns.notify.unanswered') === 1, 5000), 'the other gives up after 5 tries');
  t.equal(sec.got.filter((g) => g.m.questions[0]!.name === '0.66.10.in-addr.arpa').length, 5, 'exactly 5 tries');
  t.equal(n.pending, 0);
});

t.test('a newer change replaces the pending NOTIFY for the same zone and secondary', async (t) => {
  const sec = await secondary();
  t.teardown(() => sec.socket.close());
  const counters = new Counters();
  const n = new Notifier({ targets: [{ address: '127.0.0.1', port: sec.port }], random: seededRandom(8), log: silentLogger, counters, retryMs: 60_000 });
  t.teardown(() => n.close());
  n.notify(['lan'], 1);
  n.notify(['lan'], 2);
  t.ok(await until(() => sec.got.length === 2));
  t.equal(n.pending, 1, 'one pending per zone and secondary');
  const [old, current] = sec.got;
  answer(sec.socket, old!.m, old!.rinfo);
  t.ok(await until(() => counters.get('dns.notify.mismatched') === 1), 'the superseded ID no longer counts');
  answer(sec.socket, current!.m, current!.rinfo);
  t.ok(await until(() => n.pending === 0), 'the current one is acknowledged');
});
