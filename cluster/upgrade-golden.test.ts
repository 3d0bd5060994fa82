import t from 'tap';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../lib/clock.js';
import { seededRandom } from '../lib/random.js';
import { silentLogger } from '../lib/log.js';
import { repoPath } from '../test/support/paths.js';
import { RaftStateLog, memberFile, raftDir, decodeFsmSnapshot, encodeFsmSnapshot } from './raft-state-log.js';
import { Wal } from './raft/wal.js';
import { decodeCommand } from './commands.js';
import { commandLevel } from './apply-level.js';
import { MCLT_DEFAULT_MS } from './degraded.js';
import { AckJournal } from './ack-journal.js';
import { decodeManifest, manifestId } from './deploy/manifest.js';
import { parseConfig } from '../config/index.js';
import { configHash } from '../bin/daemon.js';
import { MAX_IN_FLIGHT as DNS_MAX_IN_FLIGHT } from '../services/dns/config.js';

// Proves the current code reads the state files an earlier release wrote (a package upgrade keeps
// node.stateDir): test/golden/state/<release>/state was written and read back by that release's
// build (test/golden/state/make.mjs), which recorded what it read in expected.json. Here the
// current code opens a copy as the member (WAL segments, hard state, snapshot, owner file) and must
// come to the same state hash; the ACK journal and a rootfs manifest read back alike.

const RELEASES = readdirSync(repoPath('test', 'golden', 'state'), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);

interface Expected { writtenBy: string; stateHash: string; appliedIndex: number; term: number; leases: number; boundLeases: number; records: number; inventoryNodes: number | null; rootfs: boolean; snapshotIndex: number; acks: number; generation: string; configHashes?: Record<string, string> }

function copy(t: { teardown(fn: () => void): void }, release: string): { stateDir: string; expected: Expected } {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-golden-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const from = repoPath('test', 'golden', 'state', release);
  cpSync(join(from, 'state'), join(dir, 'state'), { recursive: true });
  return { stateDir: join(dir, 'state'), expected: JSON.parse(readFileSync(join(from, 'expected.json'), 'utf8')) as Expected };
}

t.ok(RELEASES.length > 0, `golden state of ${RELEASES.join(', ')}`);

for (const release of RELEASES) {
  t.test(`${release}: the member's Raft directory opens to the state hash that release computed`, async (t) => {
    const { stateDir, expected } = copy(t, release);
    const log = await RaftStateLog.open({
      id: 'lan-a', dir: raftDir(stateDir), conf: { voters: ['lan-a'], learners: [], witnesses: [] },
      clock: systemClock, random: seededRandom(7), log: silentLogger, snapshotEntries: 24, memberFile: memberFile(stateDir),
    });
    try {
      t.equal(log.fsm.hash(), expected.stateHash, 'same state hash');
      t.ok(log.fsm.appliedIndex >= expected.appliedIndex, `applied ${log.fsm.appliedIndex} (that release: ${expected.appliedIndex}, then a new term's empty entry)`);
      const s = log.fsm.snapshot();
      t.equal(s.leases.length, expected.leases, 'leases');
      t.equal(s.leases.filter((l) => l.state === 'bound').length, expected.boundLeases, 'bound leases');
      t.equal(s.records.length, expected.records, 'DNS records');
      t.equal(s.inventory?.nodes.length ?? null, expected.inventoryNodes, 'inventory nodes');
      t.equal(s.rootfs !== undefined, expected.rootfs, 'rootfs state');
      t.ok(log.status().term > expected.term, 'and it took a new term on top of the one on disk');
      // A member of that release must read back what this one writes of the same state: the same
      // snapshot envelope, and nothing in the state it would drop (a new key is new state: it
      // needs an apply level, cluster/apply-level.ts).
      const known = ['appliedIndex', 'lastAt', 'serial', 'leases', 'records', 'nodes', 'inventory', 'rootfs'];
      t.same(Object.keys(s).filter((k) => !known.includes(k)), [], `this version's snapshot has no key that release does not know (${known.join(', ')})`);
      t.same(decodeFsmSnapshot(encodeFsmSnapshot(s)), s, 'snapshot envelope v1');
    } finally {
      await log.close();
    }
  });

  t.test(`${release}: every WAL entry and the snapshot decode with this version`, async (t) => {
    const { stateDir, expected } = copy(t, release);
    const { wal, state } = await Wal.open(raftDir(stateDir));
    try {
      t.equal(state.snapshot?.meta.index, expected.snapshotIndex, 'the snapshot is found');
      t.equal(decodeFsmSnapshot(state.snapshot!.data).appliedIndex, expected.snapshotIndex);
      const commands = state.entries.filter((e) => e.data.length > 0).map((e) => ({ index: e.index, decoded: decodeCommand(e.data) }));
      t.ok(commands.length > 10, `${commands.length} command entries after the snapshot`);
      for (const c of commands) {
        t.ok(c.decoded.ok, `entry ${c.index} decodes`);
        if (c.decoded.ok) t.equal(commandLevel(c.decoded.value.command), 1, `entry ${c.index} (${c.decoded.value.command.type}) is of apply level 1`);
      }
      t.equal(state.hardState.term, expected.term, 'hard state: the term that release left');
    } finally {
      await wal.close();
    }
  });

  t.test(`${release}: the ACK journal and a rootfs manifest read back`, async (t) => {
    const { stateDir, expected } = copy(t, release);
    const journal = AckJournal.open(join(stateDir, 'acks.jsonl'), 64);
    t.equal(journal.records.length, expected.acks, 'every ACK record');
    t.ok(journal.records.every((r) => r.index > 0 && r.mac.startsWith('02:') && r.term !== null), 'with its index, term and MAC');
    journal.close();
    const text = readFileSync(join(stateDir, 'rootfs', `${expected.generation}.manifest`), 'utf8');
    const m = decodeManifest(text);
    t.ok(m.ok, 'the manifest decodes');
    if (m.ok) t.equal(manifestId(m.manifest), expected.generation, 'to the generation id its file is named by');
  });

  t.test(`${release}: its example configs still load, as an operator's files of that release`, async (t) => {
    const dir = repoPath('test', 'golden', 'state', release, 'config');
    const hashes = (JSON.parse(readFileSync(repoPath('test', 'golden', 'state', release, 'expected.json'), 'utf8')) as Expected).configHashes ?? {};
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
      let hash: string | null = null;
      t.doesNotThrow(() => { hash = configHash(parseConfig(readFileSync(join(dir, file), 'utf8'), file)); }, `${file} loads`);
      // The same file must hash alike on both versions, or doctor says cluster.config-differs
      // between them for the whole rolling upgrade. A setting added with a default changes the
      // hash unless bin/daemon.ts ADDED_WITH_DEFAULT leaves it out while it holds its default.
      t.equal(hash, hashes[file], `${file}: the config hash ${release} reports for it (a setting added with a default? list it in ADDED_WITH_DEFAULT, bin/daemon.ts)`);
    }
    // Left out only while at its default: a member running another setting still differs.
    const site = parseConfig(readFileSync(join(dir, 'site.yaml'), 'utf8'), 'site.yaml');
    const withDegraded = (degraded: { enabled: boolean; mclt: number }): string => configHash({ ...site, dhcp: { ...site.dhcp!, degraded } });
    t.equal(withDegraded({ enabled: false, mclt: MCLT_DEFAULT_MS }), hashes['site.yaml'], 'dhcp.degraded written out at its default: the same hash');
    t.not(withDegraded({ enabled: false, mclt: 2 * MCLT_DEFAULT_MS }), hashes['site.yaml'], 'another dhcp.degraded.mclt: another hash');
    t.not(withDegraded({ enabled: true, mclt: MCLT_DEFAULT_MS }), hashes['site.yaml'], 'dhcp.degraded.enabled: another hash');
    // A changed default (CHANGED_DEFAULT): today's hashed as 0.1.0's; 0.1.0's set by hand runs otherwise, so it differs.
    const dns = site.dns;
    const forward = dns?.forward;
    t.ok(dns !== undefined && forward !== undefined, 'site.yaml forwards (the changed default below is checked on it)');
    if (dns !== undefined && forward !== undefined) {
      const withInFlight = (maxInFlight: number): string => configHash({ ...site, dns: { ...dns, forward: { ...forward, maxInFlight } } });
      t.equal(withInFlight(DNS_MAX_IN_FLIGHT), hashes['site.yaml'], 'dns.forward.maxInFlight at today\'s default: the hash 0.1.0 reported (its default was 150)');
      t.not(withInFlight(150), withInFlight(DNS_MAX_IN_FLIGHT), 'dns.forward.maxInFlight: 150 set by hand differs from today\'s default');
      t.not(withInFlight(300), hashes['site.yaml'], 'another dns.forward.maxInFlight: another hash');
    }
  });
}

