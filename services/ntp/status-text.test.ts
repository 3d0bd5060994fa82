import t from 'tap';
import { formatNtpStatus } from './status-text.js';

// The text form of the NTP status: synchronised with a source table, and the loud unsynchronised line.
t.test('lanctl status text for NTP', async (t) => {
  t.equal(formatNtpStatus(undefined), '', 'no NTP service: nothing');
  const synced = formatNtpStatus({
    synchronised: true, mode: 'source', stratum: 3, referenceId: '10.0.0.5', offsetMs: 0.088, reason: 'synchronised to upstream 10.0.0.5:123',
    rootDelayMs: 1.2, rootDispersionMs: 0.4,
    sources: [
      { name: '10.0.0.5:123', kind: 'upstream', reach: '377', offsetMs: 0.088, delayMs: 0.321, stratum: 2, problem: null },
      { name: '10.20.0.3:123', kind: 'peer', reach: '000', offsetMs: null, delayMs: null, stratum: null, problem: 'no reply' },
    ],
  });
  t.match(synced, /^ntp: synchronised \(synchronised to upstream 10\.0\.0\.5:123\), stratum 3, refid 10\.0\.0\.5, offset \+0\.088 ms/);
  t.match(synced, /10\.0\.0\.5:123\s+upstream\s+377\s+\+0\.088 ms\s+0\.321 ms\s+2\s+ok/);
  t.match(synced, /10\.20\.0\.3:123\s+peer\s+000\s+-\s+-\s+-\s+no reply/);
  const lost = formatNtpStatus({ synchronised: false, mode: 'unsynchronised', stratum: 16, reason: 'no source has answered', sources: [] });
  t.equal(lost, 'ntp: NOT SYNCHRONISED: serving leap 3 / stratum 16, clients will refuse this server (no source has answered)\n');
});
