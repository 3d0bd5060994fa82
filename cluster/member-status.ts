import type { Clock } from '../lib/clock.js';
import { decoded, failed, type Decoded } from '../lib/result.js';
import { decodeRelayed, type RelayedBootEvent } from './boot-relay.js';
import { parseDegradedRecord, type DegradedRecord, type DegradedVipReport } from './degraded.js';

// What each member tells the others about itself (role, term, indexes, version, config hash, WAL
// fsync p99, boot files), and what this member last heard from each of them, with the clock offset
// worked out NTP-style from the two directions. The board is backend-neutral: the Raft transport
// carries reports in its authenticated connections (cluster/raft/transport.ts); another StateLog
// backend feeds the same board through `MemberStatusFeed`. Reports never touch the Raft core.

/** One file of the boot tree (tftp.root / boot.root), relative path and content hash. */
export interface BootFile { path: string; sha256: string; bytes: number }

/** The boot tree in brief; `files` travels on a connection's first report and after a change. */
export interface BootFilesDigest { digest: string; count: number; files?: BootFile[] }

/** What the local member says about itself (the board adds the clock stamps). */
export interface LocalReport {
  node: string;
  version: string;
  configHash: string;
  role: string;
  leader: string | null;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number | null;
  walFsyncP99Ms: number | null;
  bootFiles: BootFilesDigest | null;
  /** The DNS zones' serial here (null: no DNS). Optional on the wire: absent from earlier reports. */
  dnsSerial?: number | null;
  /** Whether this member holds the VIP now (null: no VIP service). Optional on the wire, as dnsSerial. */
  vipHeld?: boolean | null;
  /** SHA-256 of the replicated state at `appliedIndex` (fsm.hash()); equal on members at one index. Optional on the wire. */
  stateHash?: string | null;
  /** Its ACK audit (cluster/ack-audit.ts): leases it ACKed found lost, audits run, ACKs its last audit checked (null: none yet). Null: no DHCP. Optional on the wire. */
  ackAudit?: MemberAckAudit | null;
  /** The highest apply level it runs (cluster/apply-level.ts). Optional on the wire: absent from versions before levels. */
  applyLevel?: number;
  /** Boot timeline events this member holds for the leader to record (cluster/boot-relay.ts). Optional on the wire. */
  bootEvents?: RelayedBootEvent[] | null;
  /** Its degraded DHCP journal not merged yet (services/dhcp/degraded-state.ts): the leader merges it. Optional on the wire. */
  degradedJournal?: { journal: string; from: number; records: DegradedRecord[] } | null;
  /** A digest of its DHCP pool halves (dhcp.degraded on): a member alone goes degraded only if its partner's was the same. Optional on the wire. */
  poolSplit?: string | null;
  /** Its degraded mode and the VIP (dhcp.degraded on): a leader adds the VIP only once this says it may not hold it (cluster/degraded.ts handBackRefusal). Optional on the wire. */
  degradedVip?: DegradedVipReport | null;
}

export interface MemberAckAudit { lostTotal: number; audits: number; checked: number | null }

export interface MemberReport extends LocalReport {
  /** The sender's wall clock when it sent this report. */
  sentWallMs: number;
  /** The last report the sender got from the receiver: its send stamp and the sender's receive time. */
  echo: { wallMs: number; rxWallMs: number } | null;
}

/** What this member knows of another one. */
export interface MemberView {
  report: MemberReport;
  /** Wall time this member received the report (ISO). */
  receivedAt: string;
  /** Milliseconds since that report arrived (monotonic). */
  lastContactMs: number;
  /** Their clock minus ours, in ms. */
  clockOffsetMs: number;
  /** round-trip: from both directions' stamps (error at most half the round trip); one-way: includes the transit delay. */
  offsetMethod: 'round-trip' | 'one-way';
  roundTripMs: number | null;
  /** The whole boot file list this member last reported (kept across reports that carry only the digest). */
  bootFiles: BootFile[] | null;
}

/** Where the operator surfaces read other members' reports from. */
export interface MemberStatusSource {
  /** The last report of every member heard from, by name (never this member). */
  members(): Record<string, MemberView>;
}

/** What a transport needs to carry reports: bytes out for a peer, bytes in from a peer. */
export interface MemberStatusChannel {
  /** `first`: the first report on a new connection (carries the whole boot file list). */
  outgoing(peer: string, first: boolean): Uint8Array;
  incoming(peer: string, payload: Uint8Array): void;
  readonly intervalMs: number;
  /** The feed's way to send the report to every member now (MemberStatusBoard.sendNow); optional. */
  onSendNow?(send: () => void): void;
}

/** A StateLog backend (or its transport) that can carry member reports. */
export interface MemberStatusFeed {
  attachMemberStatus(channel: MemberStatusChannel): void;
}

export const REPORT_BYTES_MAX = 1 << 20;
/** A member sends its report this often (MemberStatusBoard's default). */
export const REPORT_EVERY_MS = 1000;
const BOOT_FILES_MAX = 4096;
const NAME_MAX = 63;
/** A round trip longer than this (or negative: a clock step between stamps) falls back to one-way. */
const ROUND_TRIP_MAX_MS = 10_000;

export function encodeReport(r: MemberReport): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(r));
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isStr = (v: unknown, max = 256): v is string => typeof v === 'string' && v.length <= max;

/** Decodes a peer's report; never throws. Unknown fields are ignored (a newer peer may send more). */
export function decodeReport(bytes: Uint8Array): Decoded<MemberReport> {
  if (bytes.length > REPORT_BYTES_MAX) return failed('too-long', REPORT_BYTES_MAX);
  let o: Record<string, unknown>;
  try {
    const raw: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return failed('not-object', 0);
    o = raw as Record<string, unknown>;
  } catch {
    return failed('not-json', 0);
  }
  if (!isStr(o['node'], NAME_MAX) || o['node'] === '') return failed('bad-field', 0, 'node');
  if (!isStr(o['version']) || !isStr(o['configHash']) || !isStr(o['role'], 32)) return failed('bad-field', 0, 'version/configHash/role');
  if (o['leader'] !== null && !isStr(o['leader'], NAME_MAX)) return failed('bad-field', 0, 'leader');
  for (const k of ['term', 'commitIndex', 'appliedIndex']) if (!isInt(o[k])) return failed('bad-field', 0, k);
  if (o['lastIndex'] !== null && !isInt(o['lastIndex'])) return failed('bad-field', 0, 'lastIndex');
  if (o['walFsyncP99Ms'] !== null && !(isNum(o['walFsyncP99Ms']) && o['walFsyncP99Ms'] >= 0)) return failed('bad-field', 0, 'walFsyncP99Ms');
  if (!isNum(o['sentWallMs'])) return failed('bad-field', 0, 'sentWallMs');
  const echoRaw = o['echo'] as { wallMs?: unknown; rxWallMs?: unknown } | null | undefined;
  let echo: MemberReport['echo'] = null;
  if (echoRaw !== null && echoRaw !== undefined) {
    if (typeof echoRaw !== 'object' || !isNum(echoRaw.wallMs) || !isNum(echoRaw.rxWallMs)) return failed('bad-field', 0, 'echo');
    echo = { wallMs: echoRaw.wallMs, rxWallMs: echoRaw.rxWallMs };
  }
  const bootFiles = decodeBootFiles(o['bootFiles']);
  if (bootFiles === undefined) return failed('bad-field', 0, 'bootFiles');
  const dnsSerial = o['dnsSerial'] === undefined || o['dnsSerial'] === null ? null : isInt(o['dnsSerial']) ? o['dnsSerial'] : undefined;
  if (dnsSerial === undefined) return failed('bad-field', 0, 'dnsSerial');
  const vipHeld = o['vipHeld'] === undefined || o['vipHeld'] === null ? null : typeof o['vipHeld'] === 'boolean' ? o['vipHeld'] : undefined;
  if (vipHeld === undefined) return failed('bad-field', 0, 'vipHeld');
  const stateHash = o['stateHash'] === undefined || o['stateHash'] === null ? null : isStr(o['stateHash'], 128) ? o['stateHash'] : undefined;
  if (stateHash === undefined) return failed('bad-field', 0, 'stateHash');
  const ackAudit = decodeAckAudit(o['ackAudit']);
  if (ackAudit === undefined) return failed('bad-field', 0, 'ackAudit');
  const applyLevel = o['applyLevel'];
  if (applyLevel !== undefined && !(isInt(applyLevel) && applyLevel >= 1 && applyLevel <= 1_000_000)) return failed('bad-field', 0, 'applyLevel');
  const bootEvents = decodeRelayed(o['bootEvents']);
  if (bootEvents === undefined) return failed('bad-field', 0, 'bootEvents');
  const degradedJournal = decodeJournal(o['degradedJournal']);
  if (degradedJournal === undefined) return failed('bad-field', 0, 'degradedJournal');
  const poolSplit = o['poolSplit'] === undefined || o['poolSplit'] === null ? null : isStr(o['poolSplit'], 128) ? o['poolSplit'] : undefined;
  if (poolSplit === undefined) return failed('bad-field', 0, 'poolSplit');
  const degradedVip = decodeDegradedVip(o['degradedVip']);
  if (degradedVip === undefined) return failed('bad-field', 0, 'degradedVip');
  return decoded({
    node: o['node'], version: o['version'], configHash: o['configHash'], role: o['role'], leader: o['leader'] as string | null,
    term: o['term'] as number, commitIndex: o['commitIndex'] as number, appliedIndex: o['appliedIndex'] as number, lastIndex: o['lastIndex'] as number | null,
    walFsyncP99Ms: o['walFsyncP99Ms'] as number | null, bootFiles, dnsSerial, vipHeld, stateHash, ackAudit, sentWallMs: o['sentWallMs'], echo,
    ...(applyLevel === undefined ? {} : { applyLevel }), ...(bootEvents === null ? {} : { bootEvents }),
    ...(degradedJournal === null ? {} : { degradedJournal }),
    ...(poolSplit === null ? {} : { poolSplit }),
    ...(degradedVip === null ? {} : { degradedVip }),
  });
}

function decodeDegradedVip(v: unknown): DegradedVipReport | null | undefined {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'object') return undefined;
  const d = v as { active?: unknown; held?: unknown; noQuorumMs?: unknown };
  if (typeof d.active !== 'boolean' || typeof d.held !== 'boolean' || !isInt(d.noQuorumMs)) return undefined;
  return { active: d.active, held: d.held, noQuorumMs: d.noQuorumMs };
}

/** A report's degraded journal: null when absent, undefined when malformed (every record checked). */
function decodeJournal(v: unknown): LocalReport['degradedJournal'] | undefined {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'object') return undefined;
  const o = v as { journal?: unknown; from?: unknown; records?: unknown };
  if (!isStr(o.journal, 64) || !isInt(o.from) || o.from < 1 || !Array.isArray(o.records) || o.records.length > 10_000) return undefined;
  const records: DegradedRecord[] = [];
  for (const raw of o.records) {
    const r = parseDegradedRecord(raw);
    if (r === null) return undefined;
    records.push(r);
  }
  return { journal: o.journal, from: o.from, records };
}

function decodeAckAudit(v: unknown): MemberAckAudit | null | undefined {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'object') return undefined;
  const a = v as { lostTotal?: unknown; audits?: unknown; checked?: unknown };
  if (!isInt(a.lostTotal) || !isInt(a.audits) || !(a.checked === null || isInt(a.checked))) return undefined;
  return { lostTotal: a.lostTotal, audits: a.audits, checked: a.checked };
}

function decodeBootFiles(v: unknown): BootFilesDigest | null | undefined {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'object') return undefined;
  const b = v as { digest?: unknown; count?: unknown; files?: unknown };
  if (!isStr(b.digest, 128) || !isInt(b.count)) return undefined;
  if (b.files === undefined) return { digest: b.digest, count: b.count };
  if (!Array.isArray(b.files) || b.files.length > BOOT_FILES_MAX) return undefined;
  const files: BootFile[] = [];
  for (const f of b.files as unknown[]) {
    const x = f as { path?: unknown; sha256?: unknown; bytes?: unknown } | null;
    if (x === null || typeof x !== 'object' || !isStr(x.path, 1024) || !isStr(x.sha256, 64) || !isInt(x.bytes)) return undefined;
    files.push({ path: x.path, sha256: x.sha256, bytes: x.bytes });
  }
  return { digest: b.digest, count: b.count, files };
}

/**
 * The peer's clock minus ours. With an echo (our earlier stamp t1, their receive time t2, their
 * send time t3, our receive time t4) it is NTP's ((t2 - t1) + (t3 - t4)) / 2 with round trip
 * (t4 - t1) - (t3 - t2); without one, t3 - t4 (off by the transit time).
 */
export function clockOffset(report: Pick<MemberReport, 'sentWallMs' | 'echo'>, rxWallMs: number, sentByUs: (wallMs: number) => boolean): { offsetMs: number; method: 'round-trip' | 'one-way'; roundTripMs: number | null } {
  const e = report.echo;
  if (e !== null && sentByUs(e.wallMs)) {
    const roundTrip = (rxWallMs - e.wallMs) - (report.sentWallMs - e.rxWallMs);
    if (roundTrip >= 0 && roundTrip <= ROUND_TRIP_MAX_MS) {
      return { offsetMs: ((e.rxWallMs - e.wallMs) + (report.sentWallMs - rxWallMs)) / 2, method: 'round-trip', roundTripMs: roundTrip };
    }
  }
  return { offsetMs: report.sentWallMs - rxWallMs, method: 'one-way', roundTripMs: null };
}

interface Heard { view: Omit<MemberView, 'lastContactMs'>; rxMono: number; rx: { wallMs: number; rxWallMs: number } }

/** Holds the reports; implements both the channel a transport drives and the source pages read. */
export class MemberStatusBoard implements MemberStatusChannel, MemberStatusSource {
  readonly intervalMs: number;
  #self: string;
  #local: () => LocalReport;
  #clock: Clock;
  #heard = new Map<string, Heard>();
  /** Our recent send stamps per peer, so an echo is only trusted when it is one of ours. */
  #sent = new Map<string, number[]>();
  #bootDigestSent = new Map<string, string>();
  /** Per peer, the first report written to it saying this member leads, in the term it led (monotonic ms). */
  #leadSent = new Map<string, { term: number; monoMs: number }>();
  #onReport: ((report: MemberReport) => void) | undefined;
  #sendNow: Array<() => void> = [];
  #sendNowQueued = false;

  /** `onReport`: every well-formed report of another member, as it arrives (the leader records the boot events it carries). */
  constructor(options: { self: string; local: () => LocalReport; clock: Clock; intervalMs?: number; onReport?: (report: MemberReport) => void }) {
    this.#self = options.self;
    this.#local = options.local;
    this.#clock = options.clock;
    this.intervalMs = options.intervalMs ?? REPORT_EVERY_MS;
    this.#onReport = options.onReport;
  }

  onSendNow(send: () => void): void {
    this.#sendNow.push(send);
  }

  /**
   * Sends the report to every member now, not at the next interval: once, after the current turn
   * of the event loop (several asks in one turn send one report; an ask made while the report is
   * being built does not recurse).
   */
  sendNow(): void {
    if (this.#sendNowQueued || this.#sendNow.length === 0) return;
    this.#sendNowQueued = true;
    setImmediate(() => {
      this.#sendNowQueued = false;
      for (const send of this.#sendNow) send();
    });
  }

  outgoing(peer: string, first: boolean): Uint8Array {
    const local = this.#local();
    const wallMs = this.#clock.wallMs();
    if (local.role === 'leader' && this.#leadSent.get(peer)?.term !== local.term) this.#leadSent.set(peer, { term: local.term, monoMs: this.#clock.monotonicMs() });
    const stamps = this.#sent.get(peer) ?? [];
    stamps.push(wallMs);
    if (stamps.length > 16) stamps.shift();
    this.#sent.set(peer, stamps);
    let bootFiles = local.bootFiles;
    if (bootFiles !== null && !first && this.#bootDigestSent.get(peer) === bootFiles.digest) bootFiles = { digest: bootFiles.digest, count: bootFiles.count };
    else if (bootFiles !== null) this.#bootDigestSent.set(peer, bootFiles.digest);
    const heard = this.#heard.get(peer);
    return encodeReport({ ...local, bootFiles, sentWallMs: wallMs, echo: heard ? { wallMs: heard.rx.wallMs, rxWallMs: heard.rx.rxWallMs } : null });
  }

  incoming(peer: string, payload: Uint8Array): void {
    const rxWallMs = this.#clock.wallMs();
    const rxMono = this.#clock.monotonicMs();
    const r = decodeReport(payload);
    if (!r.ok || r.value.node !== peer || peer === this.#self) return;
    const { bootEvents: _relayed, ...report } = r.value;
    const sent = this.#sent.get(peer) ?? [];
    const offset = clockOffset(report, rxWallMs, (w) => sent.includes(w));
    const before = this.#heard.get(peer);
    const files = report.bootFiles?.files ?? (before && report.bootFiles !== null && before.view.report.bootFiles?.digest === report.bootFiles.digest ? before.view.bootFiles : null);
    const { files: _dropped, ...brief } = report.bootFiles ?? { files: undefined };
    this.#heard.set(peer, {
      view: {
        report: { ...report, bootFiles: report.bootFiles === null ? null : brief as BootFilesDigest },
        receivedAt: new Date(rxWallMs).toISOString(),
        clockOffsetMs: Math.round(offset.offsetMs * 10) / 10,
        offsetMethod: offset.method,
        roundTripMs: offset.roundTripMs,
        bootFiles: files,
      },
      rxMono,
      rx: { wallMs: report.sentWallMs, rxWallMs },
    });
    this.#onReport?.(r.value);
  }

  /**
   * When this member first wrote `peer` a report saying it leads, and in which term (null: never).
   * Reports go only on connections the peer dialled, so the peer has it within the transit time
   * unless that connection broke (degraded mode's hand-back on a one-way cluster link).
   */
  leadReportSent(peer: string): { term: number; monoMs: number } | null {
    return this.#leadSent.get(peer) ?? null;
  }

  members(): Record<string, MemberView> {
    const now = this.#clock.monotonicMs();
    return Object.fromEntries([...this.#heard.entries()].map(([peer, h]) => [peer, { ...h.view, lastContactMs: Math.round(now - h.rxMono) }]));
  }
}

/** A member's row as status, the page and doctor show it: local or reported, with the lag worked out. */
export interface MemberRow {
  name: string;
  local: boolean;
  /** Whether a report (or the local state) backs the values; false: never heard (an old version, or down). */
  reported: boolean;
  role: string | null;
  leader: string | null;
  term: number | null;
  commitIndex: number | null;
  appliedIndex: number | null;
  /** Entries behind the highest commit index any member reports. */
  lagEntries: number | null;
  lastContactMs: number | null;
  clockOffsetMs: number | null;
  offsetMethod: MemberView['offsetMethod'] | null;
  version: string | null;
  configHash: string | null;
  walFsyncP99Ms: number | null;
  dnsSerial: number | null;
  vipHeld: boolean | null;
  /** Its ACK audit as it reports it (null: no DHCP there, or a version without it). */
  ackAudit: MemberAckAudit | null;
  /** The apply level it runs (cluster/apply-level.ts); null: never heard from, or a version before levels. */
  applyLevel: number | null;
  /**
   * Its replicated state against this member's: true/false when both report a state hash at the same
   * applied index (equal/different), null when they stand at different indexes or a hash is missing.
   */
  sameState: boolean | null;
}

/** Joins the local report and what the others reported, for every configured member. */
export function memberRows(names: readonly string[], local: LocalReport, views: Record<string, MemberView>): MemberRow[] {
  const commits = [local.commitIndex, ...Object.values(views).map((v) => v.report.commitIndex)];
  const top = Math.max(...commits);
  return names.map((name): MemberRow => {
    if (name === local.node) {
      return {
        name, local: true, reported: true, role: local.role, leader: local.leader, term: local.term, commitIndex: local.commitIndex, appliedIndex: local.appliedIndex,
        lagEntries: Math.max(0, top - local.appliedIndex), lastContactMs: 0, clockOffsetMs: 0, offsetMethod: null, version: local.version, configHash: local.configHash, walFsyncP99Ms: local.walFsyncP99Ms,
        dnsSerial: local.dnsSerial ?? null, vipHeld: local.vipHeld ?? null, ackAudit: local.ackAudit ?? null, applyLevel: local.applyLevel ?? null, sameState: null,
      };
    }
    const v = views[name];
    if (v === undefined) {
      return { name, local: false, reported: false, role: null, leader: null, term: null, commitIndex: null, appliedIndex: null, lagEntries: null, lastContactMs: null, clockOffsetMs: null, offsetMethod: null, version: null, configHash: null, walFsyncP99Ms: null, dnsSerial: null, vipHeld: null, ackAudit: null, applyLevel: null, sameState: null };
    }
    const r = v.report;
    return {
      name, local: false, reported: true, role: r.role, leader: r.leader, term: r.term, commitIndex: r.commitIndex, appliedIndex: r.appliedIndex,
      lagEntries: Math.max(0, top - r.appliedIndex), lastContactMs: v.lastContactMs, clockOffsetMs: v.clockOffsetMs, offsetMethod: v.offsetMethod,
      version: r.version, configHash: r.configHash, walFsyncP99Ms: r.walFsyncP99Ms, dnsSerial: r.dnsSerial ?? null, vipHeld: r.vipHeld ?? null, ackAudit: r.ackAudit ?? null, applyLevel: r.applyLevel ?? null,
      sameState: r.stateHash == null || local.stateHash == null || r.appliedIndex !== local.appliedIndex ? null : r.stateHash === local.stateHash,
    };
  });
}
