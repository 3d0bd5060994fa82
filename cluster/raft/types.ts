// The vocabulary of the Raft core, in the shape of etcd-io/raft: entries, hard state, messages and
// the Ready batch the host persists, sends and applies. Nothing here does I/O.

import type { MemberStatusChannel } from '../member-status.js';

export type NodeId = string;

export const EntryType = { normal: 0, config: 1 } as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** Normal: an encoded command (empty = the leader's no-op). Config: an encoded ConfChange. */
  data: Uint8Array;
}

/** What must be on disk before this member answers anyone. */
export interface HardState {
  term: number;
  vote: NodeId | null;
  commit: number;
  /**
   * The highest commit index this member has heard of (a leader's, a candidate's, a peer's answer),
   * set only when above `commit` (absent: `commit`); it may exceed this member's own log. Entries up
   * to it are committed, so every correct leader holds them: this member grants no vote and does not
   * campaign with a log ending below it (RaftNode, README.md "Restored from an old backup"). The WAL
   * keeps it in the hardstate file, written when term or vote change.
   */
  heard?: number;
  /**
   * The newest committed entry, index and term, this member knows of past `commit` (absent: none).
   * A log holding it ends in its term or later, and at its index or later in that term: a
   * candidate whose log does not is refused, even one whose log runs past `heard` (RaftNode,
   * README.md "Restored from an old backup"). In the hardstate file with `heard`.
   */
  heardEntry?: { index: number; term: number };
}

/** The membership. Witnesses are voters that never lead for long and never run services. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
  witnesses: NodeId[];
}

/** One change at a time; a new voter is added as a learner first and promoted once caught up. */
export type ConfChange =
  | { type: 'add-learner'; id: NodeId; witness?: boolean }
  | { type: 'promote'; id: NodeId }
  | { type: 'remove'; id: NodeId };

export interface SnapshotMeta {
  index: number;
  term: number;
  conf: ConfState;
}

export interface Snapshot {
  meta: SnapshotMeta;
  data: Uint8Array;
}

export type MessageType =
  | 'prevote' | 'prevote-resp'
  | 'vote' | 'vote-resp'
  | 'append' | 'append-resp'
  | 'heartbeat' | 'heartbeat-resp'
  | 'snapshot' | 'snapshot-resp'
  | 'timeout-now';

/**
 * One flat message, as etcd's raftpb.Message: fields a type does not use stay 0/empty.
 * - append: `index`/`logTerm` name the entry before `entries`; `commit` is the leader's commit.
 * - append-resp: `index` is the last index now matched (or the rejected index); `reject` + `hint`.
 * - heartbeat: `context` is the leader's tick when sent; the response echoes it (leader lease).
 *   `commit` is the leader's commit capped at the member's match, `logTerm` the term of the leader's
 *   entry there (older leaders: 0); `hint` is the leader's own commit (older leaders send 0); `index`
 *   what the member acknowledged in this term (older leaders: 0).
 * - (pre)vote: `index`/`logTerm` are the candidate's last entry; `commit` its commit index;
 *   `context` 1 = leadership transfer. (pre)vote-resp: `commit` is the highest commit index the
 *   voter knows of, its own included (older members send 0; before session 25, only what it had
 *   heard from others); `index`/`logTerm` the newest committed entry whose term it knows (older
 *   members: 0).
 * - snapshot: one chunk of `snapshot.data` at byte `offset`; `done` on the last chunk.
 */
export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: number;
  logTerm: number;
  index: number;
  commit: number;
  entries: Entry[];
  reject: boolean;
  hint: number;
  context: number;
  snapshot?: Snapshot;
  offset?: number;
  done?: boolean;
}

/** How the host reaches the other members: cluster/raft/transport.ts over TCP, or a test's in-memory net. */
export interface PeerLink {
  send(messages: Message[]): void;
  /** The transport hands every authenticated inbound message to `deliver`. */
  start(deliver: (m: Message) => void): Promise<void>;
  close(): Promise<void>;
  status?(): Record<string, unknown>;
  /** Carries member reports (cluster/member-status.ts) beside the Raft messages; optional. */
  attachMemberStatus?(channel: MemberStatusChannel): void;
}

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

export interface SoftState {
  role: Role;
  leader: NodeId | null;
}

/** A batch of work for the host: persist, then send, then apply, then advance(). */
export interface Ready {
  /** Set when term, vote or commit changed since the last Ready. */
  hardState?: HardState;
  /** Whether the host must fsync before sending (term, vote or entries changed). */
  mustSync: boolean;
  /** Entries to append to stable storage (may rewrite a suffix already written). */
  entries: Entry[];
  /** A snapshot received from the leader: persist it, then restore the state machine from it. */
  snapshot?: Snapshot;
  /** Entries known committed and persisted here: apply them in order. */
  committedEntries: Entry[];
  messages: Message[];
  softState?: SoftState;
}

export function emptyMessage(type: MessageType, from: NodeId, to: NodeId, term: number): Message {
  return { type, from, to, term, logTerm: 0, index: 0, commit: 0, entries: [], reject: false, hint: 0, context: 0 };
}
