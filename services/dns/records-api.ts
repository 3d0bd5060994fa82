import type { ApiRoutes } from '../../lib/control-server.js';
import { errorMessage } from '../../lib/errors.js';
import type { StateLog } from '../../cluster/state-log.js';
import { nameKey, nameProblem } from './name.js';
import { hasComment, parseRecordLine } from './rdata.js';
import { T, typeFromName } from './wire.js';
import type { ZoneSet } from './zone.js';

// Control API for `lanctl records`: list (GET /v1/dns/records), set an operator record
// (POST /v1/dns/records {name, type, data, ttl?}) and delete operator records
// (POST /v1/dns/records/delete {name, type?, data?}). Changes are `dns.set` / `dns.delete`
// commands through the StateLog, so they reach every node and only the leader accepts them; the
// zones are rebuilt (and secondaries notified) when the entry is applied.

const TTL_MAX_S = 7 * 24 * 3600;

function field(body: unknown, key: string): unknown {
  return typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[key] : undefined;
}

export function recordRoutes(state: StateLog, zones: () => ZoneSet): ApiRoutes {
  const notLeader = { status: 409, body: { error: 'this node is not the leader; run the command on the leader' } };
  return {
    'GET /v1/dns/records': () => ({ status: 200, body: { serial: zones().serial, records: zones().list() } }),

    'POST /v1/dns/records': async ({ body }) => {
      const name = field(body, 'name');
      const type = field(body, 'type');
      const data = field(body, 'data');
      const ttl = field(body, 'ttl');
      if (typeof name !== 'string' || typeof type !== 'string' || typeof data !== 'string') {
        return { status: 400, body: { error: 'give a record: NAME TYPE DATA, e.g. "printer.lan A 10.0.0.9"' } };
      }
      // The same rules as a zone-file line in the config (rdata.ts, name.ts): the name first, on its
      // own, so that nothing in it can split or cut the line the record is parsed from.
      const nameBad = nameProblem(name);
      if (nameBad !== null) return { status: 400, body: { error: `name ${JSON.stringify(name)} ${nameBad}` } };
      if (/[\u0000-\u001f\u007f]/.test(data)) return { status: 400, body: { error: `data ${JSON.stringify(data)} has a control character (tab, newline, NUL...); a record is one line of text` } };
      if (hasComment(data)) return { status: 400, body: { error: `data ${JSON.stringify(data)} has a ";" outside quotes (a zone-file comment would cut it); quote TXT text` } };
      const key = nameKey(name);
      const zone = zones().find(key);
      if (zone === null) return { status: 400, body: { error: `${name} is in none of the zones served (${zones().zones.map((z) => z.origin).join(', ')})` } };
      const rrtype = type.toUpperCase();
      const code = typeFromName(rrtype);
      if (code === null || code === T.SOA) return { status: 400, body: { error: `${type} is not a record type an operator can set (A, AAAA, CNAME, MX, TXT, SRV, NS, PTR)` } };
      const ttlS = ttl === undefined ? zone.soa.ttl : ttl;
      if (typeof ttlS !== 'number' || !Number.isInteger(ttlS) || ttlS < 0 || ttlS > TTL_MAX_S) {
        return { status: 400, body: { error: `ttl ${String(ttl)} is not a number of seconds between 0 and ${TTL_MAX_S}` } };
      }
      const parsed = parseRecordLine(`${key}. ${ttlS} ${rrtype} ${data}`, zone.origin);
      if (!parsed.ok) return { status: 400, body: { error: `"${name} ${rrtype} ${data}" ${parsed.error}` } };
      if (parsed.value.name !== key) return { status: 400, body: { error: `name ${JSON.stringify(name)} is not one name` } };
      if (!state.isLeader()) return notLeader;
      try {
        await state.propose({ type: 'dns.set', name: key, rrtype, ttl: ttlS, data });
      } catch (error) {
        return { status: 503, body: { error: `record not committed: ${errorMessage(error)}` } };
      }
      return { status: 200, body: { set: { name: key, type: rrtype, ttl: ttlS, data }, serial: state.fsm.serial } };
    },

    'POST /v1/dns/records/delete': async ({ body }) => {
      const name = field(body, 'name');
      const type = field(body, 'type');
      const data = field(body, 'data');
      if (typeof name !== 'string' || (type !== undefined && typeof type !== 'string') || (data !== undefined && typeof data !== 'string')) {
        return { status: 400, body: { error: 'give the record to delete: NAME [TYPE [DATA]]' } };
      }
      const key = nameKey(name);
      const rrtype = type?.toUpperCase();
      const matching = [...state.fsm.records()].filter((r) => r.name === key && (rrtype === undefined || r.rrtype === rrtype) && (data === undefined || r.data === data));
      if (matching.length === 0) return { status: 404, body: { error: `no operator record ${[key, rrtype, data].filter((x) => x !== undefined).join(' ')} (config and lease records are not deleted this way)` } };
      if (!state.isLeader()) return notLeader;
      try {
        const cmd: { type: 'dns.delete'; name: string; rrtype?: string; data?: string } = { type: 'dns.delete', name: key };
        if (rrtype !== undefined) cmd.rrtype = rrtype;
        if (data !== undefined) cmd.data = data;
        await state.propose(cmd);
      } catch (error) {
        return { status: 503, body: { error: `delete not committed: ${errorMessage(error)}` } };
      }
      return { status: 200, body: { deleted: matching.length, serial: state.fsm.serial } };
    },
  };
}
