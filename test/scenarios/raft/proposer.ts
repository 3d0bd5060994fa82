// A child process for crash tests: opens the durable StateLog in argv[2] as a one-member cluster,
// keeps `argv[3]` proposals in flight, and prints "ACK <ip> <index>" for each one acknowledged.
// The test kills it with SIGKILL at a random moment and checks every ACK survived.
import { systemClock } from '../../../lib/clock.js';
import { cryptoRandom } from '../../../lib/random.js';
import { silentLogger } from '../../../lib/log.js';
import { RaftStateLog } from '../../../cluster/raft-state-log.js';

const dir = process.argv[2]!;
const concurrency = Number(process.argv[3] ?? '8');
const startIp = Number(process.argv[4] ?? '0');
const log = await RaftStateLog.open({ id: 'n1', dir, conf: { voters: ['n1'], learners: [], witnesses: [] }, clock: systemClock, random: cryptoRandom, log: silentLogger, snapshotEntries: 500 });
process.stdout.write(`READY ${log.fsm.appliedIndex}\n`);
let next = startIp;
const stopAt = startIp + 20_000; // bounded: the test kills us long before this
async function worker(): Promise<void> {
  while (next < stopAt) {
    const ip = next++;
    const entry = await log.propose({ type: 'lease.grant', ip, mac: `02:00:00:00:${((ip >> 8) & 0xff).toString(16).padStart(2, '0')}:${(ip & 0xff).toString(16).padStart(2, '0')}`, subnet: 't', leaseMs: 60_000 });
    process.stdout.write(`ACK ${ip} ${entry.index}\n`);
  }
}
await Promise.all(Array.from({ length: concurrency }, worker));
await log.close();
