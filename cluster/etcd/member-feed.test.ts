// Member reports over etcd (cluster.backend: etcd), on a real one-member etcd on loopback: two
// state logs whose members' wall clocks are 3 s apart each hear the other's report (term, version,
// config hash) and work out the offset from both directions' stamps; the keys sit beside the site's
// prefix, so the state log sees no foreign key; a member that stops is no longer heard from.
import t from 'tap';
import { systemClock, type Clock } from '../../lib/clock.js';
import { silentLogger } from '../../lib/log.js';
import { EtcdStateLog } from './state-log.js';
import { EtcdClient } from './client.js';
import { MemberStatusBoard, type LocalReport } from '../member-status.js';
import { etcdAvailable, startEtcdCluster } from '../../test/support/etcd.js';
import { until } from '../../test/support/state-log.js';
import { haveTools } from '../../test/support/tools.js';

t.test('member reports over etcd', async (t) => {
  if (!etcdAvailable() && !haveTools(t, ['etcd'], 'etcd member report test (Debian etcd-server)')) return;
  const cluster = await startEtcdCluster(1);
  const logs: EtcdStateLog[] = [];
  t.teardown(async () => {
    for (const l of logs) await l.close();
    await cluster.stop();
  });
  const ahead: Clock = { monotonicMs: () => systemClock.monotonicMs(), wallMs: () => systemClock.wallMs() + 3000 };
  const member = async (id: string, clock: Clock): Promise<{ log: EtcdStateLog; board: MemberStatusBoard }> => {
    const log = await EtcdStateLog.open({ id, client: new EtcdClient({ endpoints: cluster.endpoints }), prefix: '/lanha/reports/', clock: systemClock, log: silentLogger, leaseTtlMs: 2000 });
    logs.push(log);
    const local = (): LocalReport => {
      const s = log.status();
      return { node: id, version: `v-${id}`, configHash: `h-${id}`, role: s.role, leader: s.leader, term: s.term, commitIndex: s.commitIndex, appliedIndex: s.appliedIndex, lastIndex: null, walFsyncP99Ms: null, bootFiles: null };
    };
    const board = new MemberStatusBoard({ self: id, clock, local, intervalMs: 200 });
    log.attachMemberStatus(board);
    return { log, board };
  };
  const a = await member('a', systemClock);
  const b = await member('b', ahead);
  await until('each hears the other from both directions', () => a.board.members()['b']?.offsetMethod === 'round-trip' && b.board.members()['a']?.offsetMethod === 'round-trip', 15_000);
  const atA = a.board.members()['b']!;
  t.equal(atA.report.version, 'v-b');
  t.equal(atA.report.configHash, 'h-b');
  t.equal(atA.report.term, b.log.status().term, "b's own term");
  t.ok(Math.abs(atA.clockOffsetMs - 3000) <= atA.roundTripMs! / 2 + 5, `b is 3 s ahead: ${atA.clockOffsetMs} ms (round trip ${atA.roundTripMs} ms)`);
  // Each side's estimate is good to half its own round trip (200 ms and more on a loaded machine).
  const atB = b.board.members()['a']!;
  t.ok(Math.abs(atB.clockOffsetMs + 3000) <= atB.roundTripMs! / 2 + 5, `and a is 3 s behind, seen from b: ${atB.clockOffsetMs} ms (round trip ${atB.roundTripMs} ms)`);
  t.equal((a.log.status()['etcd'] as { foreign?: number }).foreign ?? 0, 0, 'the reports are no foreign keys under the site prefix');
  await b.log.close();
  const heard = a.board.members()['b']!.lastContactMs;
  await new Promise((r) => setTimeout(r, 1000));
  t.ok(a.board.members()['b']!.lastContactMs >= heard + 900, 'a member that stopped is no longer heard from');
});
