// Proves BOOTP clients (RFC 951, RFC 1542) and Rapid Commit (RFC 4039) through the handler with raw
// packets and no sockets: a BOOTREQUEST with an RFC 1048 vendor area, one with a 64-octet vendor
// area of another format, one from an unknown MAC with dynamic off (silence, a counter), a dynamic
// grant that never expires; a DISCOVER with option 80 gets an ACK with 80 only where the subnet
// allows it, and every grant's reply leaves only after its command resolved.
import t from 'tap';
import { Fsm, type AppliedEntry } from '../../cluster/fsm.js';
import { MemoryStateLog, type StateLog } from '../../cluster/state-log.js';
import { LEASE_MS_INFINITE, type Command } from '../../cluster/commands.js';
import { ManualClock } from '../../test/support/manual-clock.js';
import { silentLogger } from '../../lib/log.js';
import { formatIpv4, parseIpv4 } from '../../lib/ipv4.js';
import { parseConfig } from '../../config/index.js';
import { DhcpHandler, type Reply } from './server.js';
import { BootOp, HEADER_SIZE, MAGIC_COOKIE, decodeDhcp, fieldText, type DhcpMessage } from './wire.js';
import { DhcpOption, ipsValue, textValue, u32Value } from './options.js';
import { expiresInText, leaseRoutes, type LeaseRow } from './leases-api.js';

const MAC_RESERVED = '52:54:00:00:00:99';
const MAC_OTHER = '52:54:00:00:00:42';

function config(bootp: string, rapidCommit: boolean): string {
  return `
node: { name: t1, address: 10.50.0.1 }
dhcp:
  cacheThreshold: 0
${bootp}
  subnets:
    - subnet: 10.50.0.0/24
      pools: [10.50.0.100-10.50.0.120]
      router: [10.50.0.1]
      dns: [10.50.0.1]
      domain: lab.lan
      leaseTime: 1h
      rapidCommit: ${rapidCommit}
      reservations:
        - { mac: "${MAC_RESERVED}", ip: 10.50.0.9, hostname: node09 }
  boot:
    - { name: bootp-board, match: { mac: ["${MAC_RESERVED}", "${MAC_OTHER}"] }, nextServer: 10.50.0.2, bootfile: board/boot.img }
`;
}

/** A handler whose log holds each proposal until the test lets it through (`release`). */
function setup(options: { dynamic?: boolean; rapidCommit?: boolean } = {}): { handler: DhcpHandler; fsm: Fsm; held: () => number; release: () => void; direct: (c: Command) => Promise<AppliedEntry> } {
  const parsed = parseConfig(config(options.dynamic === undefined ? '' : `  bootp: { dynamic: ${options.dynamic} }`, options.rapidCommit ?? false));
  const fsm = new Fsm();
  const inner = new MemoryStateLog(fsm, new ManualClock(0, 0));
  const gates: Array<() => void> = [];
  const gated: StateLog = {
    fsm, isLeader: () => true, status: () => inner.status(), close: async () => undefined,
    propose: (c: Command) => new Promise<AppliedEntry>((resolve) => { gates.push(() => { void inner.propose(c).then(resolve); }); }),
  };
  const handler = new DhcpHandler({ config: parsed.dhcp!, state: gated, nodeAddress: parsed.node.address, log: silentLogger });
  return { handler, fsm, held: () => gates.length, release: () => { for (const g of gates.splice(0)) g(); }, direct: (c) => inner.propose(c) };
}

/** A 300-octet BOOTREQUEST (RFC 951): `vendor` is its 64-octet vend field as sent. */
function bootRequest(mac: string, vendor: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(HEADER_SIZE + 64);
  bytes[0] = BootOp.Request; bytes[1] = 1; bytes[2] = 6;
  bytes.set([0x0b, 0x00, 0x70, 0x01], 4); // xid
  bytes.set(mac.split(':').map((h) => parseInt(h, 16)), 28);
  bytes.set(vendor, HEADER_SIZE);
  return bytes;
}

/** RFC 1048 vendor area: the magic cookie, then `options`, END, zeros (as bootpc and U-Boot send it). */
function rfc1048(...options: number[]): Uint8Array {
  const vendor = new Uint8Array(64);
  new DataView(vendor.buffer).setUint32(0, MAGIC_COOKIE);
  vendor.set([...options, DhcpOption.End], 4);
  return vendor;
}

/** A DHCP DISCOVER, with option 80 when `rapidCommit`. */
function discover(mac: string, rapidCommit: boolean): Uint8Array {
  const vendor = new Uint8Array(64);
  new DataView(vendor.buffer).setUint32(0, MAGIC_COOKIE);
  vendor.set([DhcpOption.MessageType, 1, 1, DhcpOption.ParameterRequestList, 3, 1, 3, 6, ...(rapidCommit ? [DhcpOption.RapidCommit, 0] : []), DhcpOption.End], 4);
  return bootRequest(mac, vendor);
}

function only(replies: Reply[]): DhcpMessage {
  if (replies.length !== 1) throw new Error(`${replies.length} replies`);
  const decoded = decodeDhcp(replies[0]!.bytes);
  if (!decoded.ok) throw new Error(decoded.error.code);
  return decoded.value;
}

/** Handles one packet, letting its proposals through once no reply has left before them. */
async function exchange(t: { notOk: (v: unknown, m: string) => unknown }, s: ReturnType<typeof setup>, bytes: Uint8Array): Promise<Reply[]> {
  let done = false;
  const pending = s.handler.handle(bytes, '0.0.0.0:68', 0).then((r) => { done = true; return r; });
  await new Promise((r) => setImmediate(r));
  if (s.held() > 0) {
    t.notOk(done, 'no reply before the grant is durable');
    s.release();
  }
  return pending;
}

t.test('a BOOTREQUEST with an RFC 1048 vendor area from a reserved MAC gets a BOOTREPLY with RFC 1497 options and boot parameters', async (t) => {
  const s = setup();
  const reply = only(await exchange(t, s, bootRequest(MAC_RESERVED, rfc1048())));
  t.equal(reply.op, BootOp.Reply);
  t.equal(formatIpv4(reply.yiaddr), '10.50.0.9', 'the reserved address');
  t.equal(formatIpv4(reply.siaddr), '10.50.0.2', 'siaddr: the boot rule\'s next server');
  t.equal(fieldText(reply.file), 'board/boot.img', 'file: the boot rule\'s bootfile');
  t.equal(fieldText(reply.sname), '10.50.0.2', 'sname: the next server');
  t.same([...reply.options.keys()], [DhcpOption.SubnetMask, DhcpOption.Router, DhcpOption.DomainNameServer, DhcpOption.HostName, DhcpOption.DomainName],
    'mask, router, DNS, host name, domain; no 53, 54, 51, 58, 59');
  t.equal(formatIpv4(u32Value(reply.options.get(DhcpOption.SubnetMask)!)!), '255.255.255.0');
  t.same(ipsValue(reply.options.get(DhcpOption.Router)!)!.map(formatIpv4), ['10.50.0.1']);
  t.equal(textValue(reply.options.get(DhcpOption.HostName)!), 'node09');
  t.equal(textValue(reply.options.get(DhcpOption.DomainName)!), 'lab.lan');
  const lease = s.fsm.lease(parseIpv4('10.50.0.9')!);
  t.equal(lease?.state, 'bound', 'the grant is in the state machine');
  t.equal(lease!.expiresAt - lease!.grantedAt, LEASE_MS_INFINITE, 'a lease that never ends by itself');
  t.equal(s.handler.counters.toJSON()['received.bootp'], 1);
  t.equal(s.handler.counters.toJSON()['sent.bootp'], 1);
  t.notOk(s.handler.counters.toJSON()['dropped.malformed.no-message-type'], 'no longer dropped as no-message-type');
  t.end();
});

t.test('a BOOTP client asking for the lease time (option 55 in its vendor area) is told infinite', async (t) => {
  const s = setup();
  const reply = only(await exchange(t, s, bootRequest(MAC_RESERVED, rfc1048(DhcpOption.ParameterRequestList, 2, 1, DhcpOption.IpAddressLeaseTime))));
  t.equal(u32Value(reply.options.get(DhcpOption.IpAddressLeaseTime)!), 0xffffffff);
  t.notOk(reply.options.has(DhcpOption.RenewalTime), 'no T1');
  t.notOk(reply.options.has(DhcpOption.MessageType), 'no message type');
  t.end();
});

t.test('a BOOTREQUEST with a 64-octet vendor area of another format gets the header fields and a zero vendor area', async (t) => {
  const s = setup();
  const vendor = new Uint8Array(64).fill(0x5a);
  vendor.set([0x43, 0x4d, 0x55, 0x00], 0); // "CMU": RFC 951's example of a vendor's own magic number
  const replies = await exchange(t, s, bootRequest(MAC_RESERVED, vendor));
  t.equal(replies.length, 1, 'answered (it was dropped as bad-cookie)');
  const bytes = replies[0]!.bytes;
  t.equal(bytes.length, 300, 'RFC 951 size');
  t.equal(bytes[0], BootOp.Reply);
  t.equal(formatIpv4(new DataView(bytes.buffer, bytes.byteOffset).getUint32(16)), '10.50.0.9', 'yiaddr');
  t.equal(formatIpv4(new DataView(bytes.buffer, bytes.byteOffset).getUint32(20)), '10.50.0.2', 'siaddr');
  t.equal(fieldText(bytes.subarray(108, 236)), 'board/boot.img', 'file');
  t.ok(bytes.subarray(HEADER_SIZE).every((b) => b === 0), 'no RFC 1048 cookie or options in a vendor area the client reads otherwise');
  t.end();
});

t.test('a BOOTREQUEST from an unknown MAC with dynamic off gets silence and a counter', async (t) => {
  const s = setup();
  const replies = await exchange(t, s, bootRequest(MAC_OTHER, rfc1048()));
  t.same(replies, []);
  t.equal(s.held(), 0, 'nothing proposed');
  t.equal(s.handler.counters.toJSON()['ignored.bootp-unknown'], 1);
  t.equal(s.handler.allocator.offerCount, 0, 'no offer held for it');
  t.end();
});

t.test('with bootp.dynamic an unknown BOOTP client gets a pool address, an infinite lease, the same one again', async (t) => {
  const s = setup({ dynamic: true });
  const first = only(await exchange(t, s, bootRequest(MAC_OTHER, rfc1048())));
  const ip = first.yiaddr;
  t.ok(ip >= parseIpv4('10.50.0.100')! && ip <= parseIpv4('10.50.0.120')!, 'from the pool');
  const lease = s.fsm.lease(ip);
  t.equal(lease?.mac, MAC_OTHER);
  t.equal(lease!.expiresAt - lease!.grantedAt, LEASE_MS_INFINITE);
  const again = only(await exchange(t, s, bootRequest(MAC_OTHER, rfc1048())));
  t.equal(again.yiaddr, ip, 'a second BOOTREQUEST gets the same address');
  const state = new MemoryStateLog(s.fsm, new ManualClock(0, 0));
  const listed = await leaseRoutes(state, new ManualClock(0, 0))['GET /v1/leases']!({ query: new URLSearchParams(), body: undefined } as never);
  const row = (listed.body as { leases: LeaseRow[] }).leases.find((l) => l.mac === MAC_OTHER)!;
  t.equal(row.state, 'bound');
  t.equal(row.infinite, true, 'lanctl leases --json says the lease is infinite');
  t.equal(expiresInText(row), 'never (BOOTP)', 'and lanctl leases shows it so');
  t.end();
});

t.test('a DISCOVER with option 80 gets an ACK with option 80 after the commit when the subnet allows Rapid Commit', async (t) => {
  const s = setup({ rapidCommit: true });
  const reply = only(await exchange(t, s, discover(MAC_OTHER, true)));
  t.equal(reply.options.get(DhcpOption.MessageType)?.[0], 5, 'DHCPACK');
  t.ok(reply.options.has(DhcpOption.RapidCommit), 'option 80 in the ACK');
  t.equal(s.fsm.lease(reply.yiaddr)?.state, 'bound', 'the lease is committed');
  t.equal(u32Value(reply.options.get(DhcpOption.IpAddressLeaseTime)!), 3600, 'an ordinary lease time');
  t.equal(s.handler.counters.toJSON()['rapid-commit.acked'], 1);
  t.end();
});

t.test('a Rapid Commit or BOOTP grant the state machine refuses (the address taken meanwhile) gets silence, not a NAK', async (t) => {
  for (const [what, bytes, options] of [['Rapid Commit DISCOVER', discover(MAC_OTHER, true), { rapidCommit: true }], ['BOOTREQUEST', bootRequest(MAC_OTHER, rfc1048()), { dynamic: true }]] as const) {
    const s = setup(options);
    const pending = s.handler.handle(bytes, '0.0.0.0:68', 0);
    await new Promise((r) => setImmediate(r));
    t.equal(s.held(), 1, `${what}: its grant is in flight`);
    // Another client is bound to the same address first (a grant proposed elsewhere, applied first).
    await s.direct({ type: 'lease.grant', ip: parseIpv4('10.50.0.100')!, mac: '52:54:00:00:00:77', subnet: '10.50.0.0/24', leaseMs: 3_600_000 });
    s.release();
    t.same(await pending, [], `${what}: no reply (RFC 2131: no NAK to a DISCOVER; BOOTP has none)`);
    t.equal(s.handler.counters.toJSON()['dropped.grant-refused'], 1, `${what}: counted`);
    t.notOk(s.handler.counters.toJSON()['sent.nak'], `${what}: no NAK sent`);
  }
  t.end();
});

t.test('Rapid Commit off (the default): a DISCOVER with option 80 gets an OFFER without it', async (t) => {
  const s = setup();
  const reply = only(await exchange(t, s, discover(MAC_OTHER, true)));
  t.equal(reply.options.get(DhcpOption.MessageType)?.[0], 2, 'DHCPOFFER');
  t.notOk(reply.options.has(DhcpOption.RapidCommit));
  t.equal(s.held(), 0, 'nothing proposed');
  t.end();
});

t.test('Rapid Commit on: a DISCOVER without option 80 still gets an OFFER', async (t) => {
  const s = setup({ rapidCommit: true });
  const reply = only(await exchange(t, s, discover(MAC_OTHER, false)));
  t.equal(reply.options.get(DhcpOption.MessageType)?.[0], 2, 'DHCPOFFER');
  t.end();
});

t.test('config check names the key and the bad value of bootp.dynamic and rapidCommit', (t) => {
  t.throws(() => parseConfig(config('  bootp: { dynamic: "yes" }', false)), /dhcp\.bootp\.dynamic/);
  t.throws(() => parseConfig(config('  bootp: { dynamc: true }', false)), /dhcp\.bootp/);
  t.throws(() => parseConfig(config('', 'maybe' as unknown as boolean)), /dhcp\.subnets\[0\]\.rapidCommit/);
  t.end();
});
