import { cidrContains, formatCidr, formatIpv4, parseIpv4, reverseName, type Ipv4 } from '../../lib/ipv4.js';
import { isRaspberryPi, parseMac } from '../../lib/mac.js';
import { isHostname } from '../../lib/scalars.js';
import type { LanhaConfig } from '../../config/index.js';
import type { BootEvent, Lease } from '../../cluster/fsm.js';
import { Allocator, normalizeClientId, poolSubnet, type Decision, type LeaseView, type PoolSubnet } from '../dhcp/allocator.js';
import { planBoot, type BootRule } from '../dhcp/netboot.js';
import { siteAddressesOf } from '../dhcp/site-addresses.js';
import type { ClientRequest } from '../dhcp/request.js';
import { subnetReplyOptions } from '../dhcp/responder.js';
import { DhcpOption, describeOption, optionName } from '../dhcp/options.js';

// `lanctl explain MAC|IP|NAME` and `--simulate`: why a client got (or would get) its answer. The
// DHCP part replays the decisions of the pure cores (subnet choice, reservation, boot rules,
// options) on what the replicated state knows; --simulate runs a fresh Allocator on a synthetic
// DISCOVER, so nothing is held or sent. The DNS part says which zone and record source answers, or
// that the name is forwarded. Pure: state and time come in.

export const ACCEPTED_FORMS = 'a MAC (52:54:00:aa:bb:cc), an IPv4 address (10.0.0.5) or a DNS name (node01.rack.lan)';

export interface ExplainInput {
  config: LanhaConfig;
  leases: LeaseView & { all(): Iterable<Lease> };
  bootEvents(mac: string): readonly BootEvent[];
  records: ReadonlyArray<{ zone: string; name: string; type: string; ttl: number; data: string; source: string }> | null;
  nowMs: number;
}

export interface BootRuleTrace { rule: string; matched: boolean; deciding: string }
export interface OptionTrace { code: number; name: string; value: string; source: string }

export interface DhcpExplain {
  mac: string;
  simulated: boolean;
  subnet: { id: string | null; why: string };
  reservation: { byMac: string | null; byClientId: string | null; notes: string[] };
  decision: string;
  /**
   * A simulation's other answers to the same client: what a BOOTREQUEST would get (BOOTP), and
   * what a DISCOVER with option 80 would (Rapid Commit). Absent outside a simulation.
   */
  variants?: { bootp: string; rapidCommit: string };
  boot: { rules: BootRuleTrace[]; result: string };
  options: OptionTrace[];
  lease: { ip: string; state: string; hostname: string | null; clientId: string | null; index: number | null; ackedBy: string | null; grantedAt: string; expiresAt: string } | null;
  history: Array<{ at: string; event: string; detail: string | null }>;
}

export interface DnsExplain {
  name: string;
  zone: string | null;
  answers: Array<{ type: string; ttl: number; data: string; source: string }>;
  how: string;
}

export type ExplainResult =
  | { ok: true; query: string; kind: 'mac' | 'ip' | 'name' | 'simulate'; dhcp: DhcpExplain | null; dns: DnsExplain[] }
  | { ok: false; status: 400 | 404; error: string; nearest?: string[] };

export interface SimulateRequest { mac: string; arch?: number | undefined; vendorClass?: string | undefined; userClass?: string | undefined; clientId?: string | undefined; hostname?: string | undefined }

function pools(config: LanhaConfig): PoolSubnet[] {
  const site = siteAddressesOf(config);
  return (config.dhcp?.subnets ?? []).map((s) => poolSubnet(s, site));
}

/** The subnet a directly attached client lands in, the way the DHCP shell picks its local one. */
function localSubnet(config: LanhaConfig, subnets: readonly PoolSubnet[]): { subnet: PoolSubnet | undefined; why: string } {
  const d = config.dhcp;
  const anchors: Array<[string, Ipv4 | undefined]> = [['dhcp.listen', d?.listen], ['node.address', config.node.address], ['dhcp.serverId', d?.serverId]];
  for (const [key, a] of anchors) {
    if (a === undefined) continue;
    const s = subnets.find((x) => cidrContains(x.cidr, a));
    if (s) return { subnet: s, why: `the server's own network: ${key} ${formatIpv4(a)} is inside ${s.id} (no relay, giaddr 0)` };
  }
  return { subnet: subnets[0], why: subnets[0] ? `first configured subnet (no server address inside any subnet)` : 'no subnets configured' };
}

function bootTrace(rules: readonly BootRule[], req: Partial<ClientRequest> & { mac: string }, known: boolean): BootRuleTrace[] {
  return rules.map((rule, i) => {
    const name = rule.name ?? `rule ${i}`;
    const m = rule.match;
    const checks: Array<[boolean | null, string]> = [];
    if (m.arch !== undefined) checks.push([req.arch === undefined ? (known ? false : null) : m.arch.includes(req.arch), `option 93 arch ${req.arch ?? '(not sent)'} ${m.arch.includes(req.arch ?? -1) ? 'in' : 'not in'} [${m.arch.join(',')}]`]);
    if (m.vendorClass !== undefined) checks.push([req.vendorClass === undefined && !known ? null : (req.vendorClass ?? '').startsWith(m.vendorClass), `option 60 vendor class "${req.vendorClass ?? ''}" ${(req.vendorClass ?? '').startsWith(m.vendorClass) ? 'starts with' : 'does not start with'} "${m.vendorClass}"`]);
    if (m.userClass !== undefined) checks.push([req.userClasses === undefined && !known ? null : (req.userClasses ?? []).includes(m.userClass), `option 77 user class [${(req.userClasses ?? []).join(',')}] ${(req.userClasses ?? []).includes(m.userClass) ? 'has' : 'lacks'} "${m.userClass}"`]);
    if (m.mac !== undefined) checks.push([m.mac.includes(req.mac), `MAC ${req.mac} ${m.mac.includes(req.mac) ? 'listed' : 'not listed'}`]);
    if (m.raspberryPi !== undefined) checks.push([isRaspberryPi(req.mac) === m.raspberryPi, `MAC OUI ${isRaspberryPi(req.mac) ? 'is' : 'is not'} a Raspberry Pi's (rule wants ${m.raspberryPi})`]);
    if (checks.length === 0) return { rule: name, matched: true, deciding: 'no conditions: matches every client' };
    const failed = checks.find(([ok]) => ok === false);
    if (failed) return { rule: name, matched: false, deciding: failed[1] };
    const unknown = checks.find(([ok]) => ok === null);
    if (unknown) return { rule: name, matched: false, deciding: `unknown: ${unknown[1].replace(/ (in|not in|starts with|does not start with|has|lacks) .*/, '')} is not stored with the lease; try --simulate with it` };
    return { rule: name, matched: true, deciding: checks.map(([, t]) => t).join('; ') };
  });
}

function optionsTrace(config: LanhaConfig, subnet: PoolSubnet | undefined, hostname: string | undefined, bootfile: string | undefined, nextServer: Ipv4 | undefined): OptionTrace[] {
  const out: OptionTrace[] = [];
  const d = config.dhcp;
  if (!d || !subnet) return out;
  const index = d.subnets.findIndex((s) => formatCidr(s.subnet) === subnet.id);
  const cfg = d.subnets[index]!;
  const reply = subnetReplyOptions(cfg, subnet.id);
  const where = `dhcp.subnets[${index}]`;
  const sourceOf = (code: number): string => {
    if (cfg.options?.[String(code)] !== undefined) return `${where}.options.${code}`;
    const key: Record<number, string> = { 1: 'subnet (prefix length)', 3: 'router', 6: 'dns', 15: 'domain', 28: 'broadcast (or the subnet\'s)', 42: 'ntp', 119: 'search', 121: 'routes' };
    return `${where}.${key[code] ?? 'options'}`;
  };
  for (const [code, bytes] of [...reply.options].sort(([a], [b]) => a - b)) out.push({ code, name: optionName(code), value: describeOption(code, bytes), source: sourceOf(code) });
  out.push({ code: DhcpOption.IpAddressLeaseTime, name: optionName(DhcpOption.IpAddressLeaseTime), value: `${reply.leaseMs / 1000} s`, source: `${where}.leaseTime` });
  out.push({ code: 58, name: optionName(58), value: `${reply.renewMs / 1000} s`, source: cfg.renewTime === undefined ? 'RFC 2131: 0.5 x lease' : `${where}.renewTime` });
  out.push({ code: 59, name: optionName(59), value: `${reply.rebindMs / 1000} s`, source: cfg.rebindTime === undefined ? 'RFC 2131: 0.875 x lease' : `${where}.rebindTime` });
  const serverId = d.serverId ?? d.listen ?? config.node.address;
  if (serverId !== undefined) out.push({ code: 54, name: optionName(54), value: formatIpv4(serverId), source: d.serverId !== undefined ? 'dhcp.serverId' : d.listen !== undefined ? 'dhcp.listen' : 'node.address' });
  if (hostname !== undefined) out.push({ code: 12, name: optionName(12), value: hostname, source: 'the reservation\'s hostname' });
  if (bootfile !== undefined) {
    out.push({ code: 67, name: 'bootfile (file field)', value: bootfile, source: 'the boot rule above' });
    if (nextServer !== undefined) out.push({ code: 66, name: 'next server (siaddr)', value: formatIpv4(nextServer), source: 'the boot rule, else the server id' });
  }
  return out.sort((a, b) => a.code - b.code);
}

function leaseFacts(l: Lease, nowMs: number): DhcpExplain['lease'] {
  return {
    ip: formatIpv4(l.ip), state: l.state === 'bound' && l.expiresAt <= nowMs ? 'expired' : l.state, hostname: l.hostname ?? null, clientId: l.clientId ?? null,
    index: l.index ?? null, ackedBy: l.ackedBy ?? null, grantedAt: new Date(l.grantedAt).toISOString(), expiresAt: new Date(l.expiresAt).toISOString(),
  };
}

function history(input: ExplainInput, mac: string, lease: Lease | undefined): DhcpExplain['history'] {
  const all: BootEvent[] = [...input.bootEvents(mac)];
  if (lease) all.push({ at: lease.grantedAt, event: 'dhcp', detail: `${lease.state} ${formatIpv4(lease.ip)}${lease.index === undefined ? '' : ` (log index ${lease.index}${lease.ackedBy === undefined ? '' : `, ACKed by ${lease.ackedBy}`})`}` });
  return all.sort((a, b) => a.at - b.at).map((e) => ({ at: new Date(e.at).toISOString(), event: e.event, detail: e.detail ?? null }));
}

/**
 * The config reservations naming the client, else its inventory node's address (the allocator
 * reserves that too: it said "reservation by MAC: none" beside "OFFER ... (reserved)").
 */
function reservationFacts(subnets: readonly PoolSubnet[], mac: string, clientId: string | undefined, node?: { name: string; ip?: number | undefined }): DhcpExplain['reservation'] {
  const notes: string[] = [];
  const byMac = subnets.flatMap((s) => s.reservations.filter((r) => r.mac === mac).map((r) => ({ s, r })))[0];
  const byId = clientId === undefined ? undefined : subnets.flatMap((s) => s.reservations.filter((r) => r.clientId === clientId).map((r) => ({ s, r })))[0];
  const macHex = mac.replace(/:/g, '');
  if (clientId !== undefined && clientId !== `01${macHex}`) {
    notes.push(`the client sends client-id ${clientId}, which is not "01" + its MAC: leases and client-id reservations follow the client-id, so firmware and OS with different ids look like two clients`);
  }
  const idReserved = subnets.flatMap((s) => s.reservations.filter((r) => r.mac === undefined && r.clientId !== undefined && r.clientId.endsWith(macHex)));
  if (byMac === undefined && byId === undefined && idReserved.length > 0) notes.push(`a reservation by client-id ${idReserved[0]!.clientId} mentions this MAC, but the client ${clientId === undefined ? 'sends no client-id' : `sends ${clientId}`}`);
  return {
    byMac: byMac !== undefined ? `${formatIpv4(byMac.r.ip)} in ${byMac.s.id}${byMac.r.hostname === undefined ? '' : ` (${byMac.r.hostname})`}`
      : node?.ip !== undefined ? `${formatIpv4(node.ip)}, inventory node ${node.name} (lanctl nodes show ${node.name})` : null,
    byClientId: byId === undefined ? null : `${formatIpv4(byId.r.ip)} in ${byId.s.id} for client-id ${byId.r.clientId}`,
    notes,
  };
}

/** Explain what the state says about a known MAC. */
function explainMac(input: ExplainInput, mac: string): DhcpExplain {
  const subnets = pools(input.config);
  const lease = input.leases.leaseByMac(mac);
  const local = localSubnet(input.config, subnets);
  const subnet = lease ? subnets.find((s) => s.id === lease.subnet) ?? local.subnet : local.subnet;
  const why = lease && subnet?.id === lease.subnet ? `the lease is in ${lease.subnet}; ${local.why}` : local.why;
  const reservation = reservationFacts(subnets, mac, lease?.clientId, input.leases.inventory?.byMac(mac));
  const hostname = subnets.flatMap((s) => s.reservations).find((r) => r.mac === mac || (lease?.clientId !== undefined && r.clientId === lease.clientId))?.hostname;
  const rules = bootTrace(input.config.dhcp?.boot ?? [], { mac }, false);
  const first = rules.find((r) => r.matched);
  return {
    mac, simulated: false,
    subnet: { id: subnet?.id ?? null, why },
    reservation,
    decision: lease ? `${lease.state === 'bound' ? 'holds' : 'held'} ${formatIpv4(lease.ip)}` : 'no lease in the replicated state',
    boot: { rules, result: first ? `first rule that surely matches: ${first.rule}` : 'no rule surely matches with what the state knows (arch and classes are not stored); --simulate decides with them' },
    options: optionsTrace(input.config, subnet, hostname, undefined, undefined),
    lease: lease ? leaseFacts(lease, input.nowMs) : null,
    history: history(input, mac, lease),
  };
}

/** Runs the pure DHCP core on a synthetic DISCOVER; nothing is held, committed or sent. */
export function simulate(input: ExplainInput, req: SimulateRequest): ExplainResult {
  const mac = parseMac(req.mac);
  if (mac === null) return { ok: false, status: 400, error: `--mac ${req.mac} is not a MAC address like 52:54:00:aa:bb:cc` };
  if (!input.config.dhcp) return { ok: false, status: 400, error: 'DHCP is not enabled on this node (no dhcp: block)' };
  const d = input.config.dhcp;
  const subnets = pools(input.config);
  const clientId = req.clientId === undefined ? undefined : normalizeClientId(req.clientId);
  const client: ClientRequest = {
    type: 'discover', xid: 0, mac, clientKey: clientId === undefined ? `mac:${mac}` : `id:${clientId}`, ciaddr: 0, giaddr: 0, broadcast: true,
    userClasses: req.userClass === undefined ? [] : [req.userClass], parameterRequest: [],
  };
  if (clientId !== undefined) client.clientId = clientId;
  if (req.arch !== undefined) client.arch = req.arch;
  if (req.vendorClass !== undefined) client.vendorClass = req.vendorClass;
  if (req.hostname !== undefined) client.hostname = req.hostname;
  const allocator = new Allocator(subnets, { offerTtlMs: d.offerTtl, declineQuarantineMs: d.declineQuarantine, reuseGraceMs: d.reuseGrace, authoritative: d.authoritative, offersMax: 1 });
  const local = localSubnet(input.config, subnets);
  const subnet = allocator.selectSubnet(client, local.subnet);
  const decision = subnet ? allocator.onDiscover(client, subnet, input.leases, input.nowMs) : { kind: 'silent' as const, reason: 'no subnet for this network' };
  const serverId = d.serverId ?? d.listen ?? input.config.node.address ?? 0;
  // An unknownPool's offer carries no boot file (clients: known).
  const plan = decision.kind === 'offer' && decision.subnet.unknownClients === true ? null : planBoot(client, d.boot, serverId);
  const rules = bootTrace(d.boot, client, true);
  const variants = simulateVariants(allocator, client, subnet, decision, serverId, input, d.bootp.dynamic);
  const reservation = reservationFacts(subnets, mac, clientId, input.leases.inventory?.byMac(mac));
  const hostname = decision.kind === 'offer' ? decision.reservation?.hostname : undefined;
  const lease = clientId !== undefined ? input.leases.leaseByClientId(clientId) ?? input.leases.leaseByMac(mac) : input.leases.leaseByMac(mac);
  return {
    ok: true, query: mac, kind: 'simulate', dns: [],
    dhcp: {
      mac, simulated: true,
      subnet: { id: subnet?.id ?? null, why: local.why },
      reservation,
      decision: decision.kind === 'offer' ? `OFFER ${formatIpv4(decision.ip)}${decision.reservation ? ' (reserved)' : ''}` : decision.kind === 'silent' ? `no reply: ${decision.reason}` : decision.kind,
      variants,
      boot: { rules, result: decision.kind === 'offer' && decision.subnet.unknownClients === true ? 'an unknown client on a subnet for known clients only (unknownPool): no bootfile' : plan === null ? 'no boot rule matches: no bootfile' : `${plan.rule}: bootfile ${plan.bootfile} from ${formatIpv4(plan.nextServer)}${plan.vendorSpecific ? ', option 43 for the Raspberry Pi ROM' : ''}` },
      options: optionsTrace(input.config, subnet, hostname, plan?.bootfile, plan?.nextServer),
      lease: lease ? leaseFacts(lease, input.nowMs) : null,
      history: history(input, mac, lease),
    },
  };
}

/**
 * What the same client would get as a BOOTP client (the allocator's onBootp on the simulation's own
 * allocator: nothing is held or committed) and with option 80 in its DISCOVER.
 */
function simulateVariants(allocator: Allocator, client: ClientRequest, subnet: PoolSubnet | undefined, decision: Decision, serverId: Ipv4, input: ExplainInput, dynamic: boolean): { bootp: string; rapidCommit: string } {
  if (subnet === undefined) return { bootp: 'no reply: no subnet for this network', rapidCommit: 'no reply: no subnet for this network' };
  const bootp = allocator.onBootp({ ...client, type: 'bootp' }, subnet, [serverId], input.leases, input.nowMs, dynamic);
  const bootpText = bootp.kind === 'ack'
    ? `BOOTREPLY ${formatIpv4(bootp.ip)}${bootp.reservation ? ' (reserved)' : ' (pool: bootp.dynamic)'}, a lease that never expires by itself`
    : bootp.kind === 'silent' ? `no reply: ${bootp.reason}` : bootp.kind;
  const rapidText = subnet.rapidCommit !== true
    ? `OFFER as above: option 80 ignored (dhcp.subnets[].rapidCommit is off for ${subnet.id})`
    : decision.kind === 'offer' ? `ACK ${formatIpv4(decision.ip)} at once, after its grant commits (rapidCommit on for ${subnet.id})` : `as above (rapidCommit on for ${subnet.id})`;
  return { bootp: bootpText, rapidCommit: rapidText };
}

function zoneOf(name: string, zones: readonly string[]): string | null {
  let best: string | null = null;
  for (const z of zones) if ((name === z || name.endsWith(`.${z}`)) && (best === null || z.length > best.length)) best = z;
  return best;
}

function explainName(input: ExplainInput, name: string): DnsExplain {
  const key = name.toLowerCase().replace(/\.$/, '');
  if (input.records === null) return { name: key, zone: null, answers: [], how: 'DNS is not enabled on this node' };
  const zones = [...new Set(input.records.map((r) => r.zone))];
  const zone = zoneOf(key, zones);
  if (zone === null) {
    const f = input.config.dns?.forward;
    const upstreams = (f?.upstreams ?? []).map((u) => (u.port === 53 ? u.address : `${u.address}:${u.port}`));
    return { name: key, zone: null, answers: [], how: upstreams.length === 0 ? 'outside every zone served here and no forwarders: REFUSED' : `outside every zone served here: forwarded to ${upstreams.join(', ')} (LAN clients only) and cached` };
  }
  const answers = input.records.filter((r) => r.name.toLowerCase().replace(/\.$/, '') === key).map((r) => ({ type: r.type, ttl: r.ttl, data: r.data, source: r.source }));
  return { name: key, zone, answers, how: answers.length === 0 ? `authoritative in ${zone}: no such name, NXDOMAIN (or a wildcard)` : `authoritative in ${zone}` };
}

function nearestMacs(input: ExplainInput, mac: string): string[] {
  const known = new Set<string>();
  for (const l of input.leases.all()) known.add(l.mac);
  for (const s of input.config.dhcp?.subnets ?? []) for (const r of s.reservations) if (r.mac !== undefined) known.add(r.mac);
  const distance = (a: string, b: string): number => { let n = 0; for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++; return n; };
  return [...known].sort((a, b) => distance(a, mac) - distance(b, mac) || a.localeCompare(b)).slice(0, 3);
}

/** Explains a MAC, an IPv4 address or a DNS name. */
export function explain(input: ExplainInput, query: string): ExplainResult {
  const q = query.trim();
  const mac = parseMac(q);
  if (mac !== null) {
    const known = input.leases.leaseByMac(mac) !== undefined || input.bootEvents(mac).length > 0
      || (input.config.dhcp?.subnets ?? []).some((s) => s.reservations.some((r) => r.mac === mac));
    if (!known) {
      const nearest = nearestMacs(input, mac);
      return { ok: false, status: 404, error: `no lease, reservation or boot event has MAC ${mac}${nearest.length > 0 ? `; nearest known: ${nearest.join(', ')}` : ''}; to see what it would get: lanctl explain --simulate --mac ${mac}`, nearest };
    }
    return { ok: true, query: mac, kind: 'mac', dhcp: explainMac(input, mac), dns: [] };
  }
  const ip = parseIpv4(q);
  if (ip !== null) {
    const lease = input.leases.lease(ip);
    const dns = input.records === null ? [] : [explainName(input, reverseName(ip))];
    if (lease === undefined) {
      const subnet = pools(input.config).find((s) => cidrContains(s.cidr, ip));
      const reserved = subnet?.reservations.find((r) => r.ip === ip);
      if (reserved?.mac !== undefined) return { ok: true, query: q, kind: 'ip', dhcp: explainMac(input, reserved.mac), dns };
      if (dns.length > 0 && dns[0]!.answers.length > 0) return { ok: true, query: q, kind: 'ip', dhcp: null, dns };
      return { ok: false, status: 404, error: `no lease or reservation has ${q}${subnet ? ` (it is in ${subnet.id}${subnet.ranges.some((r) => ip >= r.first && ip <= r.last) ? ', inside the pool: free' : ', outside the pools'})` : ', and it is in no configured subnet'}` };
    }
    return { ok: true, query: q, kind: 'ip', dhcp: explainMac(input, lease.mac), dns };
  }
  if (isHostname(q) && !/^[\d.]+$/.test(q)) { // "10.0.0.300" is a bad address, not a name
    const dns = [explainName(input, q)];
    const label = q.toLowerCase().split('.')[0]!;
    const byName = [...input.leases.all()].find((l) => l.state === 'bound' && l.hostname === label);
    return { ok: true, query: q, kind: 'name', dhcp: byName ? explainMac(input, byName.mac) : null, dns };
  }
  return { ok: false, status: 400, error: `"${q}" is not something explain knows: give ${ACCEPTED_FORMS}` };
}
