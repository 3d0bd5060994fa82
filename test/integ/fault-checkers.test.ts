import t from 'tap';
import { duplicateAcks, type Ack } from './fault-lab.js';

// The fault suite's duplicate-lease checker on client ACK logs (no lab needed).

const ack = (client: string, mac: string, ip: string, at: number): Ack => ({ client, event: 'bound', ip, mac, leaseS: 30, at });

t.test('an address ACKed to two MACs over overlapping lease times is a duplicate', async (t) => {
  t.same(duplicateAcks([ack('c05', 'm5', '10.66.0.105', 0), ack('c06', 'm6', '10.66.0.105', 20_000)]), ['10.66.0.105: m5 at 0 and m6 at 20000']);
  t.same(duplicateAcks([ack('c05', 'm5', '10.66.0.105', 0), ack('c06', 'm6', '10.66.0.105', 30_000)]), [], 'one after the other lease ran out: none');
});

t.test('a client that bound another address left the old one: no duplicate when it goes to someone else', async (t) => {
  // bench:failover, a kill -9 round: c05 NAKed, bound .105, then .106; c06 then got .105.
  const acks = [ack('c05', 'm5', '10.66.0.104', 0), ack('c05', 'm5', '10.66.0.105', 18_669), ack('c05', 'm5', '10.66.0.106', 37_066), ack('c06', 'm6', '10.66.0.105', 46_462)];
  t.same(duplicateAcks(acks), []);
  t.same(duplicateAcks([...acks.slice(0, 2), ack('c06', 'm6', '10.66.0.105', 30_000)]), ['10.66.0.105: m5 at 18669 and m6 at 30000'], 'while it still held it: a duplicate');
});
