// The RFC 4578 / IANA processor architecture names operators see instead of bare numbers.
import t from 'tap';
import { PROCESSOR_ARCHITECTURES, archName, archText } from './arch.js';

t.test('the types firmware sends by name: U-Boot armv8 22, x86 BIOS 0, x64 UEFI 7, ARM 64-bit UEFI 11', async (t) => {
  t.equal(archName(22), 'arm 64 uboot', 'U-Boot on armv8 (0x16)');
  t.equal(archName(21), 'arm 32 uboot');
  t.equal(archName(0), 'x86 BIOS');
  t.equal(archName(7), 'x64 UEFI');
  t.equal(archName(11), 'ARM 64-bit UEFI');
  t.equal(archName(0x29), 'arm rpiboot');
});

t.test('archText: the name plus the number; an unassigned number says so', async (t) => {
  t.equal(archText(22), 'arm 64 uboot (22)');
  t.equal(archText(65000), 'unassigned (65000)');
  t.equal(archName(65000), undefined);
});

t.test('the table is dense from 0 to its last entry (no number skipped by mistake)', async (t) => {
  const keys = [...PROCESSOR_ARCHITECTURES.keys()];
  t.same(keys, keys.map((_, i) => i));
});
