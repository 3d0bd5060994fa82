import { freePort, freePorts, freeUdpPort } from './ports.js';

// The daemon the HTTP listener and browser tests serve: DHCP on loopback (the built-in probe
// speaks as a relay, so replies come back by unicast), DNS with a zone holding lease names, one
// reservation (rack9 at NET.50), the read-only listener, optionally NTP; every port free.

export interface OpsDaemonOptions {
  node: string;
  /** The first three octets of the pool and the reservation, like "127.0.30". */
  net: string;
  /** The pool is NET.10 - NET.<poolLast>. */
  poolLast: number;
  domain: string;
  ntp?: boolean;
  maxConnections?: number;
}

export interface OpsDaemonConfig {
  /** For scratchConfig: uses {{dir}} for the state directory and the control socket `{{dir}}/s.sock`. */
  yaml: string;
  dhcpPort: number;
  dnsPort: number;
  httpPort: number;
}

export async function opsDaemonConfig(o: OpsDaemonOptions): Promise<OpsDaemonConfig> {
  // DHCP binds UDP on the wildcard: its port is probed there (freePorts probes TCP on loopback).
  const dhcpPort = await freeUdpPort();
  const [dnsPort, httpPort] = await freePorts(2) as [number, number];
  const yaml = `node: { name: ${o.node}, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/s.sock" }
http: { listen: "127.0.0.1:${httpPort}"${o.maxConnections === undefined ? '' : `, maxConnections: ${o.maxConnections}`} }
dhcp:
  port: ${dhcpPort}
  listen: 127.0.0.1
  subnets:
    - subnet: 127.0.0.0/8
      pools: [${o.net}.10-${o.net}.${o.poolLast}]
      domain: ${o.domain}
      leaseTime: 1h
      reservations: [{ mac: "52:54:00:00:00:99", ip: ${o.net}.50, hostname: rack9 }]
dns:
  port: ${dnsPort}
  zones: [{ name: ${o.domain}, leases: true, records: ["ns A 127.0.0.1"] }]
${o.ntp === true ? `ntp: { port: ${await freePort()}, localStratum: 10 }\n` : ''}`;
  return { yaml, dhcpPort, dnsPort, httpPort };
}
