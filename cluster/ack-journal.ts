import { closeSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import type { AckRecord } from './ack-audit.js';
import { errorMessage } from '../lib/errors.js';
import { isFdExhaustion } from '../lib/fd-exhaustion.js';
import type { Logger } from '../lib/log.js';

// The ACK audit's ring on disk (`node.stateDir/acks.jsonl`), so a node killed with kill -9 still
// checks, once it rejoins, the leases it ACKed before it died. One JSON line per ACK, written with
// one write(2) before the ACK leaves (no fsync: a killed process leaves its writes in the page cache;
// a power cut may take the last lines, and then the audit simply checks fewer ACKs). The file is
// rewritten with the ring's records when it holds twice the ring. A torn or foreign line is skipped.

interface Line { i: number; t: number | null; ip: number; m: string; a: number; s: number }

function parse(text: string): AckRecord | null {
  let o: Partial<Line>;
  try { o = JSON.parse(text) as Partial<Line>; } catch { return null; }
  if (typeof o !== 'object' || o === null) return null;
  const int = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (!int(o.i) || !(o.t === null || int(o.t)) || !int(o.ip) || o.ip > 0xffffffff || typeof o.m !== 'string' || o.m.length > 64 || !int(o.a) || !int(o.s)) return null;
  return { index: o.i, term: o.t, ip: o.ip, mac: o.m, at: o.a, sentAt: o.s };
}

const line = (a: AckRecord): string => `${JSON.stringify({ i: a.index, t: a.term, ip: a.ip, m: a.mac, a: a.at, s: a.sentAt })}\n`;

export class AckJournal {
  readonly path: string;
  readonly capacity: number;
  /** What the file held when opened (the newest `capacity`), for AckLedger.load. */
  readonly records: AckRecord[];
  /** null once closed: a closed descriptor's number is soon reused by another open file. */
  #fd: number | null;
  #lines: number;

  private constructor(path: string, capacity: number, records: AckRecord[], lines: number) {
    this.path = path;
    this.capacity = capacity;
    this.records = records;
    this.#lines = lines;
    this.#fd = openSync(path, 'a', 0o600);
  }

  /** Reads what an earlier run wrote (a missing file is an empty journal) and opens it for appends. */
  static open(path: string, capacity: number): AckJournal {
    let text = '';
    try { text = readFileSync(path, 'utf8'); } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const lines = text.split('\n').filter((l) => l !== '');
    const records = lines.map(parse).filter((r): r is AckRecord => r !== null).slice(-capacity);
    const journal = new AckJournal(path, capacity, records, lines.length);
    // A torn last line (killed mid-write) must not glue itself to the next record.
    if (text !== '' && !text.endsWith('\n')) writeSync(journal.#open(), '\n');
    return journal;
  }

  /** One ACK, written before it is sent; `ring` is rewritten in its place when the file has grown to twice the ring. */
  append(ack: AckRecord, ring: readonly AckRecord[]): void {
    writeSync(this.#open(), line(ack));
    if (++this.#lines < 2 * this.capacity) return;
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, ring.map(line).join(''), { mode: 0o600 });
    renameSync(tmp, this.path);
    this.close();
    this.#fd = openSync(this.path, 'a', 0o600);
    this.#lines = ring.length;
  }

  /** Closes the file; later appends throw instead of writing to whatever now has its descriptor. Idempotent. */
  close(): void {
    const fd = this.#fd;
    this.#fd = null;
    if (fd !== null) closeSync(fd);
  }

  #open(): number {
    if (this.#fd === null) throw new Error(`the ACK journal ${this.path} is closed`);
    return this.#fd;
  }
}

/**
 * The daemon's append: each ACK to the journal, never throwing into DHCP. A full or broken disk
 * gives the journal up (said once; the audit keeps its ring in memory). Out of file descriptors
 * for a rewrite is not that: the ACK's line is in the file already (an append needs no new
 * descriptor), so it is said once per shortage and the rewrite is tried again at the next ACK.
 * It was given up for good, so a passing shortage lost the record of every later ACK to a kill -9.
 */
export function ackJournalAppender(journal: AckJournal, ring: () => readonly AckRecord[], log: Logger): (ack: AckRecord) => void {
  let broken = false;
  let short = false;
  return (ack) => {
    if (broken) return;
    try {
      journal.append(ack, ring());
      short = false;
    } catch (error) {
      if (isFdExhaustion(error)) {
        if (!short) log.warn({ event: 'dhcp.ack.journal_fd_exhausted', path: journal.path, err: errorMessage(error) }, `the ACK journal could not be rewritten for want of file descriptors (${errorMessage(error)}); tried again at each ACK`);
        short = true;
        return;
      }
      broken = true;
      log.warn({ event: 'dhcp.ack.journal_failed', path: journal.path, err: errorMessage(error) }, `the ACK journal cannot be written (${errorMessage(error)}); a kill -9 will lose the record of the ACKs sent`);
    }
  };
}
