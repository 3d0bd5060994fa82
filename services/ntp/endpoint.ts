import { parseIpv4Endpoint } from '../../lib/ipv4.js';

/** "10.0.0.1" or "10.0.0.1:11123": an upstream NTP server (port 123 when not given). */
export function parseEndpoint(text: string, defaultPort = 123): { address: string; port: number } | null {
  return parseIpv4Endpoint(text, defaultPort);
}
