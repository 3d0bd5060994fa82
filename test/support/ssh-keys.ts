import ssh2 from 'ssh2';

/**
 * An ed25519 key pair in OpenSSH format that ssh2 itself can parse. ssh2's generateKeyPairSync
 * drops a leading zero byte of the public key about once in 230 pairs (a 31-byte key, "Malformed
 * OpenSSH private key" when a Server or client is given it): a test that made such a pair failed at
 * random. Draws again until both halves parse (bounded; the chance of 20 bad draws is nil).
 */
export function sshKeyPair(): { private: string; public: string } {
  for (let i = 0; i < 20; i++) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519');
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error) && !(ssh2.utils.parseKey(pair.public) instanceof Error)) return pair;
  }
  throw new Error('ssh2 made 20 ed25519 key pairs in a row that it cannot parse');
}
