import { broadcastOf, cidrContains, formatCidr, formatIpv4, parseIpv4, type Cidr, type Ipv4 } from '../lib/ipv4.js';
import { parseMac } from '../lib/mac.js';
import type { Command } from './commands.js';
import { NODES_MAX, type InventoryView } from './inventory.js';

// Leader-side validation of inventory changes, before anything is proposed: operator text in, a
// well-formed command out, or one specific error that names the clash ("MAC ... already belongs to
// node rack3"). Pure: the inventory, the DHCP subnets and the config reservations come in.

export interface ConfigReservation {
  mac?: string | undefined;
  ip: Ipv4;
  hostname?: string | undefined;
  /** Where it is written, for messages: "dhcp.subnets[0].reservations[2]". */
  where?: string | undefined;
}

export interface InventoryContext {
  /** The DHCP subnets: a node's IP must lie inside one, and not be its network or broadcast address. */
  subnets: readonly Cidr[];
  /** Config reservations: a node may not take their MAC, address or host name. */
  reservations?: readonly ConfigReservation[] | undefined;
  /** The site's own addresses (VIP, members, server id) with what each is: never a node's. */
  siteAddresses?: ReadonlyMap<Ipv4, string> | undefined;
  /** The MAC of a live lease on an address, if any: a node may not take an address another client holds. */
  leaseHolder?: ((ip: Ipv4) => string | undefined) | undefined;
  /**
   * A static or operator DNS record holding `label` in a zone the node's name would go to (kind
   * 'record', what "DNS record rack1.lan": the record would win and the node would have no name), or
   * a zone of ours whose apex the name would be (kind 'zone': never published).
   */
  dnsName?: ((label: string) => { kind: string; what: string } | undefined) | undefined;
}

export type Checked<T> = { ok: true; command: T } | { ok: false; error: string };

type AddCommand = Extract<Command, { type: 'node.add' }>;
type SetCommand = Extract<Command, { type: 'node.set' }>;
type AcceptCommand = Extract<Command, { type: 'node.accept' }>;

/** What an operator (CLI, API, import file, config) gives for a node; text as typed. */
export interface NodeFields {
  name?: unknown;
  mac?: unknown;
  ip?: unknown;
  profile?: unknown;
  group?: unknown;
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const TAG = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** A node name is one DNS label (RFC 1035 §2.3.1, RFC 1123 §2.1), compared in lower case. Error text or null. */
export function nameProblem(name: string): string | null {
  // Tested before lower-casing: the Kelvin sign K (U+212A) lower-cases to an ASCII "k", so a
  // look-alike name would pass as another one.
  if (/^[\x21-\x7e]+$/.test(name) && LABEL.test(name.toLowerCase())) return null;
  return `name ${shown(name)} is not a DNS label: 1-63 ASCII letters, digits and "-", not starting or ending with "-" (no dots: the domain comes from the subnet)`;
}

/**
 * Operator text quoted for a message: control characters and non-ASCII escaped (\u202e, \u001b), so
 * an import file or API body cannot move the cursor, recolour or reorder the operator's terminal.
 */
export function shown(value: unknown, max = 80): string {
  const text = String(value);
  return escaped(JSON.stringify(text.length > max ? `${text.slice(0, max)}...` : text));
}

/** Control characters and non-ASCII as \uXXXX (what a terminal shows as is is left alone). */
export function escaped(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * What is wrong with the form of a node's fields as an operator typed them (a name that is no DNS
 * label, a MAC or IP that does not parse, a bad profile or group name), or null; `none` clears an
 * optional field. No state is asked: `lanctl nodes add/set/accept` refuse these as usage (exit 2)
 * before any daemon is called, as explain refuses what is not a MAC, IP or name.
 */
export function fieldFormProblem(fields: { name?: string; mac?: string; ip?: string; profile?: string; group?: string }): string | null {
  const cleared = (v: string | undefined): boolean => v === undefined || v === 'none' || v === '';
  if (fields.name !== undefined) { const r = readName(fields.name); if (!r.ok) return r.error; }
  if (fields.mac !== undefined) { const r = readMac(fields.mac); if (!r.ok) return r.error; }
  if (!cleared(fields.ip) && parseIpv4(fields.ip!.trim()) === null) return `IP ${shown(fields.ip)} is not an IPv4 address like 10.0.0.21`;
  for (const what of ['profile', 'group'] as const) {
    if (!cleared(fields[what])) { const r = readTag(what, fields[what]); if (!r.ok) return r.error; }
  }
  return null;
}

function fail(error: string): { ok: false; error: string } {
  return { ok: false, error };
}

function readName(value: unknown): Checked<string> {
  if (typeof value !== 'string' || value.length === 0) return fail('give the node\'s name');
  const problem = nameProblem(value);
  return problem === null ? { ok: true, command: value.toLowerCase() } : fail(problem);
}

function readMac(value: unknown): Checked<string> {
  if (typeof value !== 'string' || value.length === 0) return fail('give the node\'s MAC address');
  const mac = parseMac(value);
  if (mac === null) return fail(`MAC ${shown(value)} is not a MAC address like 52:54:00:12:34:56`);
  const first = parseInt(mac.slice(0, 2), 16);
  if ((first & 1) === 1 || mac === '00:00:00:00:00:00') return fail(`MAC ${mac} is a ${mac === '00:00:00:00:00:00' ? 'zero' : 'multicast or broadcast'} address, not a network card's`);
  return { ok: true, command: mac };
}

function readTag(what: 'profile' | 'group', value: unknown): Checked<string> {
  if (typeof value !== 'string' || !TAG.test(value)) return fail(`${what} ${shown(value)} is not a ${what} name (1-63 letters, digits, ".", "_" or "-")`);
  return { ok: true, command: value };
}

/** An IP given as text or uint32, checked against the DHCP subnets. */
function readIp(value: unknown, ctx: InventoryContext): Checked<Ipv4> {
  const ip = typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffffffff ? value : typeof value === 'string' ? parseIpv4(value.trim()) : null;
  if (ip === null) return fail(`IP ${shown(value)} is not an IPv4 address like 10.0.0.21`);
  const text = formatIpv4(ip);
  const subnet = ctx.subnets.find((s) => cidrContains(s, ip));
  if (subnet === undefined) {
    const list = ctx.subnets.map(formatCidr).join(', ');
    return fail(`IP ${text} is in none of the DHCP subnets (${list === '' ? 'no dhcp.subnets configured' : list})`);
  }
  if (subnet.prefixLength <= 30 && ip === subnet.network) return fail(`IP ${text} is the network address of ${formatCidr(subnet)}`);
  if (subnet.prefixLength <= 30 && ip === broadcastOf(subnet)) return fail(`IP ${text} is the broadcast address of ${formatCidr(subnet)}`);
  const site = ctx.siteAddresses?.get(ip);
  if (site !== undefined) return fail(`IP ${text} is ${site}, the site's own address: never a node's (pick another address)`);
  return { ok: true, command: ip };
}

const by = (node: { name: string; mac: string }): string => `node ${node.name} (MAC ${node.mac})`;
const where = (r: ConfigReservation): string => r.where ?? 'a dhcp reservation in the config';

/** The clash of a name/MAC/IP with another node or a config reservation; `self` is the node being changed. */
function clash(view: InventoryView, ctx: InventoryContext, self: string | null, fields: { name?: string; mac?: string; ip?: Ipv4 }): string | null {
  const { name, mac, ip } = fields;
  if (name !== undefined) {
    const holder = view.byName(name);
    if (holder !== undefined && holder.name !== self) return `name ${name} is already taken by ${by(holder)}`;
  }
  if (mac !== undefined) {
    const holder = view.byMac(mac);
    if (holder !== undefined && holder.name !== self) return `MAC ${mac} already belongs to ${by(holder)}`;
  }
  if (ip !== undefined) {
    const holder = view.byIp(ip);
    if (holder !== undefined && holder.name !== self) return `IP ${formatIpv4(ip)} already belongs to ${by(holder)}`;
  }
  for (const r of ctx.reservations ?? []) {
    if (mac !== undefined && r.mac === mac) return `MAC ${mac} already has a reservation (${formatIpv4(r.ip)}) in ${where(r)}; remove it there or use another MAC`;
    if (ip !== undefined && r.ip === ip && r.mac !== mac) return `IP ${formatIpv4(ip)} is reserved${r.mac === undefined ? '' : ` for MAC ${r.mac}`} in ${where(r)}`;
    if (name !== undefined && r.hostname !== undefined && r.hostname.split('.')[0]!.toLowerCase() === name && r.mac !== mac) return `name ${name} is the host name of ${where(r)} (${formatIpv4(r.ip)})`;
  }
  const record = name === undefined ? undefined : ctx.dnsName?.(name);
  if (record?.kind === 'zone') return `name ${name} would be ${record.what}; pick another name`;
  if (record !== undefined) return `name ${name} is already a ${record.what} (a static or operator record wins over a node's name); pick another name or remove the record`;
  if (ip !== undefined && ctx.leaseHolder !== undefined) {
    const holder = ctx.leaseHolder(ip);
    const own = mac ?? (self === null ? undefined : view.byName(self)?.mac);
    if (holder !== undefined && holder !== own) return `IP ${formatIpv4(ip)} is leased to another client (MAC ${holder}); release it first (lanctl leases release ${formatIpv4(ip)}) or pick another address`;
  }
  return null;
}

/** `lanctl nodes add` / import / config seeding. */
export function checkAdd(view: InventoryView, fields: NodeFields, ctx: InventoryContext): Checked<AddCommand> {
  const name = readName(fields.name);
  if (!name.ok) return name;
  const mac = readMac(fields.mac);
  if (!mac.ok) return mac;
  const command: AddCommand = { type: 'node.add', name: name.command, mac: mac.command };
  if (fields.ip !== undefined && fields.ip !== null && fields.ip !== '') {
    const ip = readIp(fields.ip, ctx);
    if (!ip.ok) return ip;
    command.ip = ip.command;
  }
  for (const key of ['profile', 'group'] as const) {
    if (fields[key] === undefined || fields[key] === null || fields[key] === '') continue;
    const tag = readTag(key, fields[key]);
    if (!tag.ok) return tag;
    command[key] = tag.command;
  }
  const problem = clash(view, ctx, null, command);
  if (problem !== null) return fail(problem);
  if (view.size >= NODES_MAX) return fail(`the inventory holds ${NODES_MAX} nodes, its limit; remove nodes that are gone (lanctl nodes remove NAME) first`);
  return { ok: true, command };
}

/** `lanctl nodes accept MAC NAME`: the MAC must be pending. */
export function checkAccept(view: InventoryView & { pendingByMac(mac: string): unknown }, fields: NodeFields, ctx: InventoryContext): Checked<AcceptCommand> {
  const mac = readMac(fields.mac);
  if (!mac.ok) return mac;
  const known = view.byMac(mac.command);
  if (known !== undefined) return fail(`MAC ${mac.command} already belongs to ${by(known)}`);
  if (view.pendingByMac(mac.command) === undefined) return fail(`MAC ${mac.command} is not pending (lanctl nodes pending lists them); to add a node by hand: lanctl nodes add NAME --mac ${mac.command}`);
  const add = checkAdd(view, fields, ctx);
  if (!add.ok) return add;
  const { type: _type, origin: _origin, ...rest } = add.command;
  return { ok: true, command: { type: 'node.accept', ...rest } };
}

/** `lanctl nodes set NAME`: only the fields given change; "" or null clears ip/profile/group. */
export function checkSet(view: InventoryView, fields: NodeFields, ctx: InventoryContext): Checked<SetCommand> {
  if (typeof fields.name !== 'string' || fields.name.length === 0) return fail('give the node\'s name');
  const name = fields.name.toLowerCase();
  const node = view.byName(name);
  if (node === undefined) return fail(`no node named ${name} (lanctl nodes lists them)`);
  const command: SetCommand = { type: 'node.set', name };
  if (fields.mac !== undefined) {
    const mac = readMac(fields.mac);
    if (!mac.ok) return mac;
    command.mac = mac.command;
  }
  if (fields.ip !== undefined) {
    if (fields.ip === null || fields.ip === '') command.ip = null;
    else {
      const ip = readIp(fields.ip, ctx);
      if (!ip.ok) return ip;
      command.ip = ip.command;
    }
  }
  for (const key of ['profile', 'group'] as const) {
    const value = fields[key];
    if (value === undefined) continue;
    if (value === null || value === '') { command[key] = null; continue; }
    const tag = readTag(key, value);
    if (!tag.ok) return tag;
    command[key] = tag.command;
  }
  if (Object.keys(command).length === 2) return fail('nothing to change: give --mac, --ip, --profile or --group');
  const problem = clash(view, ctx, name, {
    ...(command.mac === undefined ? {} : { mac: command.mac }),
    ...(typeof command.ip === 'number' ? { ip: command.ip } : {}),
  });
  return problem === null ? { ok: true, command } : fail(problem);
}

export function checkRemove(view: InventoryView, name: unknown): Checked<Extract<Command, { type: 'node.remove' }>> {
  if (typeof name !== 'string' || name.length === 0) return fail('give the node\'s name');
  const key = name.toLowerCase();
  if (view.byName(key) === undefined) return fail(`no node named ${key} (lanctl nodes lists them)`);
  return { ok: true, command: { type: 'node.remove', name: key } };
}

const KEY_TYPES = new Set(['ssh-ed25519', 'ssh-rsa', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com']);

/**
 * An OpenSSH public key line ("type base64 [comment]") -> "type base64", checked: a known type, and
 * a base64 blob whose first field names the same type (RFC 4253 §6.6). Error text otherwise.
 */
export function parseHostKey(text: string): { ok: true; key: string } | { ok: false; error: string } {
  const [type, data] = text.trim().split(/\s+/);
  if (type === undefined || data === undefined) return fail('a host key is "TYPE BASE64" as in /etc/ssh/ssh_host_ed25519_key.pub');
  if (!KEY_TYPES.has(type)) return fail(`host key type ${shown(type)} is not one ssh uses (${[...KEY_TYPES].join(', ')})`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(data) || data.length > 16_000) return fail('the host key\'s data is not base64');
  const blob = Buffer.from(data, 'base64');
  const length = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (length < 0 || 4 + length > blob.length || blob.subarray(4, 4 + length).toString('latin1') !== type) {
    return fail(`the host key's data does not hold a ${type} key`);
  }
  return { ok: true, key: `${type} ${data}` };
}

export function checkTrust(view: InventoryView, name: unknown, hostKey: unknown): Checked<Extract<Command, { type: 'node.trust' }>> {
  if (typeof name !== 'string' || name.length === 0) return fail('give the node\'s name');
  const key = name.toLowerCase();
  if (view.byName(key) === undefined) return fail(`no node named ${key} (lanctl nodes lists them)`);
  if (hostKey === null) return { ok: true, command: { type: 'node.trust', name: key, hostKey: null } };
  if (typeof hostKey !== 'string') return fail('give the host key: "TYPE BASE64"');
  const parsed = parseHostKey(hostKey);
  if (!parsed.ok) return parsed;
  return { ok: true, command: { type: 'node.trust', name: key, hostKey: parsed.key } };
}
