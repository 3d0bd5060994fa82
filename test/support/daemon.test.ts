// A daemon's output as the tests read it while it runs: a pipe read may end inside a log line (and
// JSON.parse threw on the half line); that line is left for the next look, and Node's own warnings
// between the records are skipped.
import t from 'tap';
import { logRecords } from './daemon.js';

const done = '{"level":30,"event":"tftp.transfer.done","bytes":512}\n';
const granted = '{"level":30,"event":"dhcp.lease.granted","ip":"10.0.0.9"}\n';

t.test('only whole lines are records: a line cut by a pipe read waits for its end', async (t) => {
  const cut = done + granted + done.slice(0, 30);
  t.same(logRecords(cut, 'tftp.transfer.done'), [{ level: 30, event: 'tftp.transfer.done', bytes: 512 }], 'the cut line is not read yet');
  t.equal(logRecords(cut + done.slice(30), 'tftp.transfer.done').length, 2, 'and is read once whole');
  t.same(logRecords('{"event":"tftp.transf'), [], 'nothing whole yet');
});

t.test('every record, or those of one event; lines that are not JSON are skipped', async (t) => {
  const output = `${done}(node:123) Warning: something\n${granted}{"event":"broken\n${done}`;
  t.same(logRecords(output).map((r) => r['event']), ['tftp.transfer.done', 'dhcp.lease.granted', 'tftp.transfer.done']);
  t.same(logRecords(output, 'dhcp.lease.granted'), [{ level: 30, event: 'dhcp.lease.granted', ip: '10.0.0.9' }]);
  t.same(logRecords(output, 'dhcp.lease'), [], 'an event name, not a prefix');
});
