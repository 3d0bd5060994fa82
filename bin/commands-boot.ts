import { readFileSync, writeFileSync } from 'node:fs';
import { ExitCode, LanhaError, errorMessage } from '../lib/errors.js';
import { callDaemonOk } from '../lib/control-client.js';
import { resolveSocket, type CliIo, type ParsedArgs } from './cli.js';
import { readHeader, readScriptImage, UImageArch, uimageProblemText } from '../services/boot/uimage.js';

// `lanctl boot inspect FILE`: check a U-Boot script image the way U-Boot's `source` would (no
// daemon needed), and `lanctl boot render NODE|IP`: the boot file the daemon would serve a node now.

const archNames = new Map<number, string>(Object.entries(UImageArch).map(([name, value]) => [value, name]));

export async function bootInspectRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const file = args.positionals[0];
  if (file === undefined || args.positionals.length > 1) throw new LanhaError('usage', 'give exactly one image file: lanctl boot inspect FILE', ExitCode.usage);
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    throw new LanhaError('io', `cannot read ${file}: ${errorMessage(error)}`);
  }
  const read = readScriptImage(bytes);
  const header = readHeader(bytes);
  if (args.values['json'] === true) {
    io.out(JSON.stringify({
      file, ok: read.ok, problem: read.ok ? null : read.error.code, header,
      script: read.ok ? read.value.script.toString('utf8') : null,
    }, null, 2) + '\n');
    return read.ok ? ExitCode.ok : ExitCode.failure;
  }
  if (!read.ok) {
    throw new LanhaError('io', `${file}: not a valid U-Boot script image: ${uimageProblemText[read.error.code]}${read.error.detail === undefined ? '' : ` (${read.error.detail})`}; U-Boot's source would refuse it`);
  }
  const h = read.value.header;
  io.out(`${file}: a valid U-Boot script image\n` +
    `  name: ${JSON.stringify(h.name)}\n  time: ${new Date(h.timeS * 1000).toISOString()} (${h.timeS})\n` +
    `  arch: ${archNames.get(h.arch) ?? h.arch}  data: ${h.dataBytes} bytes  script: ${read.value.script.length} bytes\n` +
    `  header crc 0x${h.headerCrc.toString(16).padStart(8, '0')}, data crc 0x${h.dataCrc.toString(16).padStart(8, '0')}: both verify\n` +
    `---\n${read.value.script.toString('utf8')}${read.value.script.at(-1) === 0x0a ? '' : '\n'}`);
  return ExitCode.ok;
}

interface Rendered {
  file: string;
  kind: string;
  ip: string;
  node: string | null;
  mac: string | null;
  profile: string | null;
  text: string;
  bytes: string;
}

export async function bootRenderRun(args: ParsedArgs, io: CliIo): Promise<number> {
  const who = args.positionals[0];
  if (who === undefined || args.positionals.length > 1) throw new LanhaError('usage', 'give one node name or address: lanctl boot render NODE|IP', ExitCode.usage);
  const socket = resolveSocket(args.values);
  const file = typeof args.values['file'] === 'string' ? `&file=${encodeURIComponent(args.values['file'])}` : '';
  const r = await callDaemonOk(socket, 'GET', `/v1/boot/render?node=${encodeURIComponent(who)}${file}`) as Rendered;
  if (typeof args.values['out'] === 'string') {
    try {
      writeFileSync(args.values['out'], Buffer.from(r.bytes, 'base64'));
    } catch (error) {
      throw new LanhaError('io', `cannot write ${args.values['out']}: ${errorMessage(error)}`);
    }
  }
  if (args.values['json'] === true) {
    io.out(JSON.stringify(r, null, 2) + '\n');
    return ExitCode.ok;
  }
  const whom = r.node === null ? `an unknown client at ${r.ip}${r.mac === null ? '' : ` (${r.mac})`}` : `${r.node} (${r.ip}, ${r.mac ?? '-'}) with profile ${r.profile ?? '-'}`;
  io.out(`# ${r.file} for ${whom}${r.kind === 'uboot' ? ', served as a U-Boot script image' : ''}\n${r.text}${r.text.endsWith('\n') ? '' : '\n'}`);
  return ExitCode.ok;
}
