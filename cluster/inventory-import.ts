import { formatIpv4, parseIpv4, type Ipv4 } from '../lib/ipv4.js';
import { parseMac } from '../lib/mac.js';
import { escaped, nameProblem, shown } from './inventory-check.js';

// `lanctl nodes import FILE...`: what hand-built clusters keep today, read into inventory nodes.
// dnsmasq `dhcp-host=` lines in their common forms (MAC,IP / MAC,NAME,IP / MAC,IP,NAME,LEASETIME /
// MAC,NAME / with set:/tag: fields) and /etc/hosts lines (IP NAME [aliases]); a hosts line names the
// dhcp-host line with its IP, and a dhcp-host line without a name takes its name from there. Every
// line gets a report: imported as which node, skipped and why, or an error. Pure: text in.

export interface ImportNode {
  name: string;
  mac: string;
  ip?: Ipv4;
  /** Where it came from: "dnsmasq.conf:12" (and the hosts line that named it). */
  source: string;
}

export type LineOutcome = 'node' | 'skipped' | 'error';

export interface LineReport {
  file: string;
  line: number;
  text: string;
  outcome: LineOutcome;
  message: string;
}

export interface ImportResult {
  nodes: ImportNode[];
  lines: LineReport[];
}

export interface ImportFile { name: string; text: string }

interface HostEntry { ip: Ipv4; name: string; aliases: string[]; file: string; line: number; text: string }
interface DhcpHost { mac: string; ip?: Ipv4; name?: string; file: string; line: number; text: string; notes: string[] }

const LEASE_TIME = /^(infinite|\d+[smhdw]?)$/i;

/** A dnsmasq host name: its first label, if that is a valid node name (FQDNs are cut with a note). */
function nodeName(text: string, notes: string[]): string | null {
  const first = text.split('.')[0]!;
  if (nameProblem(first) !== null) return null;
  if (first !== text) notes.push(`name ${text} cut to its first label ${first.toLowerCase()}`);
  return first.toLowerCase();
}

/** One `dhcp-host=` value: fields by shape (MAC, IP, lease time, tag, name), in any order dnsmasq allows. */
function readDhcpHost(value: string, file: string, line: number, text: string): DhcpHost | { skip: string } | { error: string } {
  const notes: string[] = [];
  const macs: string[] = [];
  let ip: Ipv4 | undefined;
  let name: string | undefined;
  for (const raw of value.split(',')) {
    const field = raw.trim();
    if (field === '') continue;
    if (/^id:/i.test(field)) return { skip: `client-id entry (${field}): inventory nodes are keyed by MAC; add it with lanctl nodes add NAME --mac M` };
    if (/^(set|tag):/i.test(field)) { notes.push(`tag ${field} ignored`); continue; }
    if (field.toLowerCase() === 'ignore') return { skip: 'an "ignore" entry (dnsmasq refuses this host): nothing to import' };
    if (/^\[.*\]$/.test(field)) { notes.push(`IPv6 ${field} ignored`); continue; }
    // MAC-shaped (six groups of 1-2 characters; dnsmasq allows a hardware-type prefix like "1-" and "*").
    const mac = /^(\d+-)?([0-9a-z*]{1,2}[:-]){5}[0-9a-z*]{1,2}$/i.test(field) ? field.replace(/^\d+-(?=([0-9a-z*]{1,2}[:-]){5})/i, '') : null;
    if (mac !== null) {
      if (mac.includes('*')) return { skip: `wildcard MAC ${mac}: an inventory node has one exact MAC` };
      const parsed = parseMac(mac);
      if (parsed === null) return { error: `MAC ${shown(mac)} is not a MAC address like 52:54:00:12:34:56` };
      macs.push(parsed);
      continue;
    }
    if (/^\d+\.\d+\.\d+\.\d+$/.test(field)) {
      const parsed = parseIpv4(field);
      if (parsed === null) return { error: `IP ${shown(field)} is not an IPv4 address like 10.0.0.21` };
      if (ip !== undefined) return { error: `two IPv4 addresses (${formatIpv4(ip)}, ${field}): one node has one` };
      ip = parsed;
      continue;
    }
    if (LEASE_TIME.test(field)) { notes.push(`lease time ${field} ignored (the subnet's leaseTime applies)`); continue; }
    if (name !== undefined) return { error: `two names (${name}, ${field}) on one line` };
    const n = nodeName(field, notes);
    if (n === null) return { error: `name ${shown(field)} is not a DNS label: 1-63 ASCII letters, digits and "-"` };
    name = n;
  }
  if (macs.length === 0) return { skip: 'no MAC address (a name- or IP-only dhcp-host line): nothing to key a node by' };
  if (macs.length > 1) return { skip: `several MACs (${macs.join(', ')}) share one address: import them one by one with lanctl nodes add` };
  return { mac: macs[0]!, ...(ip === undefined ? {} : { ip }), ...(name === undefined ? {} : { name }), file, line, text, notes };
}

export function parseImport(files: readonly ImportFile[]): ImportResult {
  const lines: LineReport[] = [];
  const hosts: HostEntry[] = [];
  const dhcp: DhcpHost[] = [];
  // Messages quote the file's text: escaped, so a line cannot drive the operator's terminal.
  const report = (file: string, line: number, text: string, outcome: LineOutcome, message: string): void => { lines.push({ file, line, text, outcome, message: escaped(message) }); };

  for (const f of files) {
    f.text.split(/\r?\n/).forEach((raw, i) => {
      const line = i + 1;
      const text = raw.replace(/#.*$/, '').trim();
      if (text === '') return; // blank or comment
      const dh = /^dhcp-host\s*=\s*(.*)$/i.exec(text);
      if (dh) {
        const r = readDhcpHost(dh[1]!, f.name, line, raw.trim());
        if ('skip' in r) report(f.name, line, raw.trim(), 'skipped', r.skip);
        else if ('error' in r) report(f.name, line, raw.trim(), 'error', r.error);
        else dhcp.push(r);
        return;
      }
      const words = text.split(/\s+/);
      const ip = parseIpv4(words[0]!);
      if (ip === null) {
        if (/^[0-9a-f:]+:[0-9a-f:]*$/i.test(words[0]!) && words.length > 1) report(f.name, line, raw.trim(), 'skipped', 'IPv6 hosts line');
        else if (/^[a-z-]+(=|$)/i.test(text)) report(f.name, line, raw.trim(), 'skipped', 'not a dhcp-host line');
        else report(f.name, line, raw.trim(), 'error', `${shown(words[0])} is neither an IPv4 address (a hosts line) nor dhcp-host=`);
        return;
      }
      if (words.length < 2) { report(f.name, line, raw.trim(), 'error', 'a hosts line needs a name after the address'); return; }
      if ((ip >>> 24) === 127 || ip === 0) { report(f.name, line, raw.trim(), 'skipped', 'loopback / unspecified address'); return; }
      const notes: string[] = [];
      const name = nodeName(words[1]!, notes);
      if (name === null) { report(f.name, line, raw.trim(), 'error', `name ${shown(words[1])} is not a DNS label: 1-63 ASCII letters, digits and "-"`); return; }
      hosts.push({ ip, name, aliases: words.slice(2), file: f.name, line, text: raw.trim() });
    });
  }

  // Join: a hosts line gives its name to the dhcp-host line with its IP (a dhcp-host name wins).
  const hostByIp = new Map<Ipv4, HostEntry>();
  for (const h of hosts) if (!hostByIp.has(h.ip)) hostByIp.set(h.ip, h);
  const usedHosts = new Set<HostEntry>();
  const nodes: ImportNode[] = [];
  const taken = { name: new Map<string, string>(), mac: new Map<string, string>(), ip: new Map<Ipv4, string>() };
  for (const d of dhcp) {
    const at = `${d.file}:${d.line}`;
    const host = d.ip === undefined ? undefined : hostByIp.get(d.ip);
    if (host !== undefined) usedHosts.add(host);
    const name = d.name ?? host?.name;
    if (host !== undefined && d.name !== undefined && host.name !== d.name) d.notes.push(`hosts line ${host.file}:${host.line} calls it ${host.name}; the dhcp-host name wins`);
    if (name === undefined) {
      report(d.file, d.line, d.text, 'error', `no name: the line has none and no hosts line gives one for ${d.ip === undefined ? 'it (no IP either)' : formatIpv4(d.ip)}`);
      continue;
    }
    const clash = (['name', 'mac', 'ip'] as const).find((k) => {
      const v = k === 'name' ? name : d[k];
      return v !== undefined && (taken[k] as Map<string | number, string>).has(v);
    });
    if (clash !== undefined) {
      const v = clash === 'name' ? name : clash === 'mac' ? d.mac : formatIpv4(d.ip!);
      const other = (taken[clash] as Map<string | number, string>).get(clash === 'name' ? name : clash === 'mac' ? d.mac : d.ip!)!;
      report(d.file, d.line, d.text, 'error', `duplicate ${clash === 'ip' ? 'IP' : clash === 'mac' ? 'MAC' : 'name'} ${v}: already on ${other}`);
      continue;
    }
    taken.name.set(name, at);
    taken.mac.set(d.mac, at);
    if (d.ip !== undefined) taken.ip.set(d.ip, at);
    const node: ImportNode = { name, mac: d.mac, source: host === undefined || d.name !== undefined ? at : `${at} (name from ${host.file}:${host.line})`, ...(d.ip === undefined ? {} : { ip: d.ip }) };
    nodes.push(node);
    report(d.file, d.line, d.text, 'node', `node ${name} ${d.mac}${d.ip === undefined ? '' : ` ${formatIpv4(d.ip)}`}${d.notes.length > 0 ? ` (${d.notes.join('; ')})` : ''}`);
  }
  for (const h of hosts) {
    if (usedHosts.has(h)) report(h.file, h.line, h.text, 'skipped', `names the dhcp-host entry for ${formatIpv4(h.ip)}${h.aliases.length > 0 ? `; aliases ${h.aliases.join(' ')} not imported (add CNAMEs with lanctl records set)` : ''}`);
    else report(h.file, h.line, h.text, 'skipped', `no MAC for ${formatIpv4(h.ip)} (no dhcp-host line gives one): add it with lanctl nodes add ${h.name} --mac M --ip ${formatIpv4(h.ip)}`);
  }
  lines.sort((a, b) => (a.file === b.file ? a.line - b.line : files.findIndex((f) => f.name === a.file) - files.findIndex((f) => f.name === b.file)));
  return { nodes, lines };
}
