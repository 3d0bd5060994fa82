// dgram resolves every destination through `lookup` (dns.lookup by default), which defers each
// send to a later tick even for an IP literal. A server that only ever replies to the literal
// address a datagram came from can answer the lookup at once, so the send happens in the same tick:
// cheaper, and (for NTP) no gap between the transmit timestamp and the packet leaving.
export function literalLookup(family: 4 | 6): (address: string, options: unknown, callback: (err: Error | null, address: string, family: number) => void) => void {
  return (address, _options, callback) => callback(null, address, family);
}
