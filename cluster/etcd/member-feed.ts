import type { Logger } from '../../lib/log.js';
import { LogLimiter } from '../../lib/log.js';
import { errorMessage } from '../../lib/errors.js';
import type { MemberStatusChannel } from '../member-status.js';
import { prefixEnd, type EtcdClient, type Watch, type WatchEvent } from './client.js';

// Member reports (cluster/member-status.ts) over etcd, for `cluster.backend: etcd`: each member
// puts its report for each other member under a key of its own, attached to a short lease (a
// member that stops, stops being heard), and watches the others'. Keys sit beside the site's
// prefix, never under it (the state log counts foreign keys there):
//
//   <prefix without its "/">-members/<from>/to/<to>   a report from one member to another
//   <prefix without its "/">-members/<from>/to/*      the same for anyone (how members find each other)
//
// Per-pair keys carry the echo, so the clock offset is worked out from both directions as over the
// Raft transport; the watch delivers within milliseconds, so the round trip stays short.

const SEP = '/to/';

export class EtcdMemberFeed {
  readonly prefix: string;
  #client: EtcdClient;
  #self: string;
  #channel: MemberStatusChannel;
  #log: Logger;
  #limiter = new LogLimiter();
  #peers = new Set<string>();
  /** Peers that sent us a report of our own: their broadcast ones are then ignored. */
  #directed = new Set<string>();
  #sentTo = new Set<string>();
  #lease: string | null = null;
  #timer: NodeJS.Timeout | undefined;
  #watch: Watch | null = null;
  #stopped = false;

  constructor(client: EtcdClient, sitePrefix: string, self: string, channel: MemberStatusChannel, log: Logger) {
    this.#client = client;
    this.prefix = `${sitePrefix.replace(/\/+$/, '')}-members/`;
    this.#self = self;
    this.#channel = channel;
    this.#log = log;
  }

  start(): void {
    void this.#publish();
    this.#timer = setInterval(() => void this.#publish(), this.#channel.intervalMs);
    this.#timer.unref();
    void this.#follow();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#watch?.cancel();
    if (this.#lease !== null) await this.#client.leaseRevoke(this.#lease).catch(() => undefined);
  }

  async #publish(): Promise<void> {
    try {
      if (this.#lease === null || (await this.#client.leaseKeepAlive(this.#lease)) === 0) {
        this.#lease = (await this.#client.leaseGrant(Math.max(2, Math.ceil((3 * this.#channel.intervalMs) / 1000)))).id;
        this.#sentTo.clear();
      }
      const base = `${this.prefix}${this.#self}${SEP}`;
      await this.#client.put(`${base}*`, this.#channel.outgoing('*', !this.#sentTo.has('*')), this.#lease);
      this.#sentTo.add('*');
      for (const peer of this.#peers) {
        await this.#client.put(`${base}${peer}`, this.#channel.outgoing(peer, !this.#sentTo.has(peer)), this.#lease);
        this.#sentTo.add(peer);
      }
    } catch (error) {
      this.#lease = null;
      this.#warn('etcd.member_report_failed', `could not publish this member's report to etcd: ${errorMessage(error)}`);
    }
  }

  /** Reads the reports there are, then watches for new ones; starts again after a broken watch. */
  async #follow(): Promise<void> {
    while (!this.#stopped) {
      try {
        const now = await this.#client.range(this.prefix, { rangeEnd: prefixEnd(this.prefix) });
        this.#take(now.kvs.map((kv) => ({ type: 'put', kv })));
        const watch = this.#client.watch(this.prefix, prefixEnd(this.prefix), now.revision + 1, (events) => this.#take(events));
        this.#watch = watch;
        const error = await watch.done;
        if (error !== null && !this.#stopped) this.#warn('etcd.member_watch_ended', `the watch on member reports ended: ${error.message}`);
      } catch (error) {
        if (!this.#stopped) this.#warn('etcd.member_watch_failed', `cannot read member reports from etcd: ${errorMessage(error)}`);
      }
      if (!this.#stopped) await new Promise((r) => setTimeout(r, this.#channel.intervalMs).unref());
    }
  }

  #take(events: readonly WatchEvent[]): void {
    for (const e of events) {
      if (e.type !== 'put' || !e.kv.key.startsWith(this.prefix)) continue;
      const rest = e.kv.key.slice(this.prefix.length);
      const at = rest.indexOf(SEP);
      if (at <= 0) continue;
      const from = rest.slice(0, at);
      const to = rest.slice(at + SEP.length);
      if (from === this.#self || (to !== '*' && to !== this.#self)) continue;
      this.#peers.add(from);
      if (to === this.#self) this.#directed.add(from);
      else if (this.#directed.has(from)) continue; // its report to us carries the echo
      this.#channel.incoming(from, e.kv.value);
    }
  }

  #warn(event: string, message: string): void {
    if (this.#limiter.allow(event, performance.now())) this.#log.warn({ event }, message);
  }
}
