import t from 'tap';
import { chooseLogFormat, createLogger, formatLogLine } from './log.js';

// Terminal log lines: time, level, service, message and the facts; JSON on pipes and on request.

t.test('the format: text on a terminal, json when piped, the flag wins', async (t) => {
  t.equal(chooseLogFormat(undefined, true), 'text');
  t.equal(chooseLogFormat(undefined, false), 'json');
  t.equal(chooseLogFormat('json', true), 'json');
  t.equal(chooseLogFormat('text', false), 'text');
});

t.test('a JSON line becomes one human line with its facts', async (t) => {
  const lines: string[] = [];
  const log = createLogger({ level: 'info', node: 'lan-a', destination: { write: (s: string) => { lines.push(s); } } });
  log.child({ service: 'dhcp' }).info({ event: 'dhcp.lease.granted', mac: '52:54:00:00:00:01', ip: '10.0.0.5', hostname: 'a b', err: new Error('boom') }, 'lease granted');
  const text = formatLogLine(lines[0]!);
  t.match(text, /^\d\d:\d\d:\d\d\.\d{3} INFO  dhcp    lease granted  mac=52:54:00:00:00:01 ip=10\.0\.0\.5 hostname="a b" err="boom"\n$/);
  t.notMatch(text, '\x1b', 'no colour unless asked');
  t.match(formatLogLine(lines[0]!, true), '\x1b[32mINFO \x1b[0m');
  t.equal(formatLogLine('not json'), 'not json\n', 'anything else passes through');
});

t.test('a text line never carries control characters from a fact or the message (an escape sequence would drive the terminal)', async (t) => {
  const lines: string[] = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => { lines.push(s); } } });
  log.info({ event: 'x', file: '\x1b]0;PWNED\x07\x1b[2J', quoted: 'a \x1b[31m b', csi: '\u009b2J', nested: { v: '\u009b31m' }, err: new Error('bad \x1b[2J') }, 'name \x1b[2J\r done');
  const text = formatLogLine(lines[0]!);
  t.notMatch(text.slice(0, -1), /[\u0000-\u001f\u007f-\u009f]/, 'no control character but the final line break');
  t.match(text, 'name \\x1b[2J\\x0d done');
  t.match(text, 'file=\\x1b]0;PWNED\\x07\\x1b[2J');
  t.match(text, 'quoted="a \\u001b[31m b"');
  t.match(text, 'csi=\\x9b2J');
  t.match(text, 'nested={"v":"\\x9b31m"}');
  t.match(text, 'err="bad \\u001b[2J"');
});
