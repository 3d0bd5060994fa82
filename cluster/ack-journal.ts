import { closeSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import type { AckRecord } from './ack-audit.js';
import { errorMessage } from '../lib/errors.js';
import { isFdExhaustion } from '../lib/fd-exhaustion.js';
import type { Logger } from '../lib/log.js';

// The ACK audit's ring on disk (`node.stateDir/acks.jsonl`), so a node killed with kill -9 still
// checks, once it rejoins, the leases it ACKed before it died. One JSON line per ACK, written with
// one write(2) before the ACK leaves (no fsync: a killed process leaves its writes in the page cache;
// a power cut may take the last lines, and then the audit simply checks fewer ACKs). Once the file
// holds the ring's worth of lines it becomes `acks.jsonl.1` (a rename over the one before) and a new
// file takes the appends: the two hold the newest `capacity` ACKs or more, and no ACK waits for a
// rewrite. (It was rewritten with the whole ring at twice the ring: 4,096 records serialized and
// written on the event loop before that ACK left, every 4,096 ACKs: 29-119 ms at load 10-20.)
// A torn or foreign line is skipped.

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

  /**
   * Reads what an earlier run wrote (`path.1`, then `path`; a missing file is empty) and opens
   * `path` for appends. A file from before the rotation (up to twice the ring in `path`) reads the same.
   */
  static open(path: string, capacity: number): AckJournal {
    const read = (file: string): string => {
      try { return readFileSync(file, 'utf8'); } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        return '';
      }
    };
    const older = read(rotated(path)).split('\n').filter((l) => l !== '');
    const text = read(path);
    const lines = text.split('\n').filter((l) => l !== '');
    const records = [...older, ...lines].map(parse).filter((r): r is AckRecord => r !== null).slice(-capacity);
    const journal = new AckJournal(path, capacity, records, lines.length);
    // A torn last line (killed mid-write) must not glue itself to the next record.
    if (text !== '' && !text.endsWith('\n')) writeSync(journal.#open(), '\n');
    return journal;
  }

  /**
   * One ACK, written before it is sent. Once the file holds `capacity` lines it is renamed to
   * `path.1` and a new one opened in its place: a new file and two renames, whatever the ring's size.
   */
  append(ack: AckRecord): void {
    writeSync(this.#open(), line(ack));
    if (++this.#lines < this.capacity) return;
    // The new file is opened first: out of descriptors, nothing has moved and this file takes the
    // next appends (the rotation is tried again at each). Killed between the renames, `path` is
    // missing and `path.1` holds the ring: open() reads that.
    const next = `${this.path}.next`;
    const fd = openSync(next, 'w', 0o600);
    try {
      renameSync(this.path, rotated(this.path));
      renameSync(next, this.path);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    this.close();
    this.#fd = fd;
    this.#lines = 0;
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

/** Where the journal's full file goes when a new one takes the appends. */
function rotated(path: string): string {
  return `${path}.1`;
}

/**
 * The daemon's append: each ACK to the journal, never throwing into DHCP. A full or broken disk
 * gives the journal up (said once; the audit keeps its ring in memory). Out of file descriptors
 * for a rotation is not that: the ACK's line is in the file already (an append needs no new
 * descriptor), so it is said once per shortage and the rotation is tried again at the next ACK.
 * It was given up for good, so a passing shortage lost the record of every later ACK to a kill -9.
 */
export function ackJournalAppender(journal: AckJournal, log: Logger): (ack: AckRecord) => void {
  let broken = false;
  let short = false;
  return (ack) => {
    if (broken) return;
    try {
      journal.append(ack);
      short = false;
    } catch (error) {
      if (isFdExhaustion(error)) {
        if (!short) log.warn({ event: 'dhcp.ack.journal_fd_exhausted', path: journal.path, err: errorMessage(error) }, `the ACK journal could not be rotated for want of file descriptors (${errorMessage(error)}); tried again at each ACK`);
        short = true;
        return;
      }
      broken = true;
      log.warn({ event: 'dhcp.ack.journal_failed', path: journal.path, err: errorMessage(error) }, `the ACK journal cannot be written (${errorMessage(error)}); a kill -9 will lose the record of the ACKs sent`);
    }
  };
}
