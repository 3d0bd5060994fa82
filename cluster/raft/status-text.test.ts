// Proves `lanctl status` text shows the Raft peer links' liveness that --json carries: one summary
// line of the transport's counters (links closed as dead by direction, dial timeouts, pings) and
// one line per peer; nothing about links without a transport (one node, etcd).
import t from 'tap';
import { formatPeerLinks, formatRaftStatus } from './status-text.js';

const transport = {
  listen: '127.0.0.1:7400',
  peers: {
    'lan-b': { address: '10.20.0.3:7400', connected: true, queued: 0, sent: 812, dropped: 3, connects: 2, inbound: true },
    witness: { address: '10.20.0.9:7400', connected: false, queued: 0, sent: 40, dropped: 17, connects: 1, inbound: false },
  },
  counters: { 'link.dead': 3, 'link.dead.outbound': 2, 'link.dead.inbound': 1, 'dial-timeout': 4, 'ping.sent': 120, 'ping.received': 118, accepted: 5 },
  liveness: { pingMs: 125, deadMs: 1000, dialMs: 1000 },
};

t.test('the liveness counters in one line, then one line per peer', async (t) => {
  const text = formatPeerLinks(transport);
  t.same(text.split('\n'), [
    'peer links: 3 closed as dead (2 outbound, 1 inbound), 4 dial timeouts, pings 120 sent / 118 received (ping after 125 ms idle, dead after 1000 ms silent)',
    '  lan-b: outbound up, inbound up, 2 connects, 3 messages dropped',
    '  witness: outbound down, inbound down, 1 connects, 17 messages dropped',
    '',
  ]);
});

t.test('counters not yet counted read 0; liveness off is said', async (t) => {
  t.equal(formatPeerLinks({ peers: {}, counters: {} }), 'peer links: 0 closed as dead (0 outbound, 0 inbound), 0 dial timeouts, pings 0 sent / 0 received (liveness off)\n');
});

t.test('part of the raft section of lanctl status; absent without a transport', async (t) => {
  const base = { appliedIndex: 7, lastIndex: 7, snapshotIndex: 0, leaseValid: true };
  t.match(formatRaftStatus({ ...base, transport }), /^raft: applied 7[^\n]*\n\npeer links: 3 closed as dead .*\n  lan-b: outbound up/m);
  t.notMatch(formatRaftStatus(base), /peer links/);
  t.equal(formatPeerLinks(undefined), '');
});

t.test('a rebuilding member says so: it does not vote or campaign until caught up', async (t) => {
  const base = { appliedIndex: 0, lastIndex: 0, snapshotIndex: 0, leaseValid: false };
  t.match(formatRaftStatus({ ...base, rebuilding: true }), /\nREBUILDING: this member lost its Raft storage; it does not vote or campaign until a leader has caught it up\n/);
  t.notMatch(formatRaftStatus(base), /REBUILDING/);
  const amnesia = { leader: 'lan-a', term: 2, acked: 6, lastIndex: 4 };
  t.match(formatRaftStatus({ ...base, rebuilding: true, amnesia }), /\nREBUILDING: this member's Raft state went back in time \(restored from an old backup\?\): lan-a says it acknowledged up to 6, its log ended at 4; /);
  t.match(formatRaftStatus({ ...base, rebuilding: true, amnesia: { ...amnesia, lastIndex: 6, divergedAt: 6 } }), /lan-a says it acknowledged up to 6, its entry 6 was of another term than the leader's; it does not vote/,
    'a log long enough whose entry at the heartbeat\'s commit is of another term');
});

t.test('a member whose log ends below a commit index it heard of says it does not stand nor vote for such a log', async (t) => {
  const base = { appliedIndex: 4, lastIndex: 4, snapshotIndex: 0, leaseValid: false };
  t.match(formatRaftStatus({ ...base, heardCommit: 8 }), /\nlog behind: the cluster committed up to 8 and this member's log ends at 4; it does not campaign, nor vote for a member whose log ends below 8, until a leader sends it the rest \(/);
  t.notMatch(formatRaftStatus(base), /log behind/);
  t.notMatch(formatRaftStatus({ ...base, heardCommit: 4 }), /log behind/);
});

t.test('a member with no state says so, and how to declare a replacement: FRESH instead of REBUILDING', async (t) => {
  const base = { appliedIndex: 0, lastIndex: 0, snapshotIndex: 0, leaseValid: false };
  const text = formatRaftStatus({ ...base, rebuilding: true, fresh: true });
  t.match(text, /\nFRESH: this member started with no Raft state; it votes only while nothing shows the cluster had a log before it came \(replacing a lost member: stop it, run lanctl cluster rejoin\)\n/);
  t.notMatch(text, /REBUILDING/, 'one line, not both');
});

t.test('the peer links line says what secures them, until when, and how many connections were refused', async (t) => {
  const text = formatPeerLinks({
    peers: {}, counters: { 'rejected.tls-wrong-member': 2, 'rejected.bad-framing': 1, accepted: 4 },
    security: 'tls', tlsValidTo: { cert: '2031-12-02T07:00:00.000Z', ca: '2036-11-30T07:00:00.000Z' },
  });
  t.match(text, '\n  secured by mutual TLS 1.3 (certificate until 2031-12-02, CA until 2036-11-30); 3 connections refused (rejected.* in --json)\n');
  t.match(formatPeerLinks({ peers: {}, counters: {}, security: 'cluster-key' }), 'secured by the shared cluster key; 0 connections refused');
});

t.test('a full state file system is shown as STORAGE FULL with the free space and what happens next, not as a failure that needs a restart', async (t) => {
  const storage = { dir: '/var/lib/lanha/raft', batches: 9, fsyncs: 9, error: 'ENOSPC: no space left on device, write' };
  const full = formatRaftStatus({ lastIndex: 7, appliedIndex: 7, storage: { ...storage, full: { forS: 12, freeBytes: 52_428, totalBytes: 8_388_608, neededBytes: 1_048_576 } } });
  t.match(full, /STORAGE FULL: the file system of \/var\/lib\/lanha\/raft is full \(0\.0 MiB free of 8\.0 MiB\) for 12 s: this node accepts no writes .* once 1\.0 MiB are free/);
  t.notMatch(full, /STORAGE FAILED/);
  t.match(formatRaftStatus({ lastIndex: 7, storage: { ...storage, full: null } }), /STORAGE FAILED: ENOSPC/, 'any other storage error is still a failure');
});

t.test('a read-only state file system is STORAGE READ-ONLY, with where to look', async (t) => {
  const text = formatRaftStatus({ lastIndex: 7, storage: { dir: '/var/lib/lanha/raft', batches: 9, fsyncs: 9, error: 'EROFS: read-only file system, write', full: { forS: 3, freeBytes: 4_000_000, totalBytes: 8_388_608, neededBytes: 1_048_576, reason: 'read-only' } } });
  t.match(text, /STORAGE READ-ONLY: the file system of \/var\/lib\/lanha\/raft is read-only for 3 s \(after an error, ext4 remounts so: see the kernel log, fsck\)/);
  t.notMatch(text, /STORAGE FULL|STORAGE FAILED/);
});

t.test('a Raft file that could not be opened for want of descriptors is STORAGE OUT OF FILE DESCRIPTORS, not a failure that needs a restart', async (t) => {
  const text = formatRaftStatus({ lastIndex: 7, storage: { dir: '/var/lib/lanha/raft', batches: 9, fsyncs: 9, error: 'EMFILE: too many open files, open', full: { forS: 4, freeBytes: 4_000_000, totalBytes: 8_388_608, neededBytes: 1_048_576, reason: 'descriptors' } } });
  t.match(text, /STORAGE OUT OF FILE DESCRIPTORS: this process has been out of file descriptors for 4 s and could not open a Raft file in \/var\/lib\/lanha\/raft: this node accepts no writes .* once it can open files/);
  t.notMatch(text, /STORAGE FULL|STORAGE FAILED|is full/);
});
