/** The 512-byte ATA IDENTIFY DEVICE page an export answers with. */

export interface IdentifyInfo {
  /** Capacity in 512-byte sectors. */
  sectors: number;
  serial: string;
  model: string;
  firmware: string;
  writeCache: boolean;
}

/** Largest capacity the LBA28 words may report; larger devices say this and rely on LBA48. */
const LBA28_MAX = 0x0fffffff;
/** Words 83, 84 and 87 are only valid when bits 15:14 read 01. */
const VALID = 0x4000;

const Word = {
  config: 0,
  cylinders: 1,
  heads: 3,
  sectorsPerTrack: 6,
  serial: 10,
  firmware: 23,
  model: 27,
  capabilities: 49,
  fieldValidity: 53,
  curCylinders: 54,
  curHeads: 55,
  curSectorsPerTrack: 56,
  curCapacity: 57,
  lba28Capacity: 60,
  majorVersion: 80,
  supported82: 82,
  supported83: 83,
  supported84: 84,
  enabled85: 85,
  enabled86: 86,
  enabled87: 87,
  lba48Capacity: 100,
  integrity: 255,
} as const;

const Bit = {
  lba: 1 << 9,
  dma: 1 << 8,
  writeCache: 1 << 5,
  lba48: 1 << 10,
  flushCache: 1 << 12,
  flushCacheExt: 1 << 13,
} as const;

/** ATA strings: ASCII, space padded to the field, the two bytes of each word swapped. */
function writeAtaString(page: Buffer, word: number, words: number, text: string): void {
  const field = Buffer.alloc(words * 2, 0x20);
  field.write(text.replace(/[^\x20-\x7e]/g, "?").slice(0, words * 2), "latin1");
  for (let i = 0; i < words * 2; i += 2) {
    page[word * 2 + i] = field[i + 1]!;
    page[word * 2 + i + 1] = field[i]!;
  }
}

export function buildIdentify(info: IdentifyInfo): Buffer {
  const page = Buffer.alloc(512);
  const w = (word: number, value: number) => page.writeUInt16LE(value & 0xffff, word * 2);
  const lba28 = Math.min(info.sectors, LBA28_MAX);

  // Legacy CHS geometry (16 heads, 63 sectors/track) for initiators that still look at it.
  const cylinders = Math.min(16383, Math.floor(lba28 / (16 * 63)));
  w(Word.config, 0x0040);
  w(Word.cylinders, cylinders);
  w(Word.heads, 16);
  w(Word.sectorsPerTrack, 63);
  w(Word.curCylinders, cylinders);
  w(Word.curHeads, 16);
  w(Word.curSectorsPerTrack, 63);
  page.writeUInt32LE(cylinders * 16 * 63, Word.curCapacity * 2);
  w(Word.fieldValidity, 0x0001);

  writeAtaString(page, Word.serial, 10, info.serial);
  writeAtaString(page, Word.firmware, 4, info.firmware);
  writeAtaString(page, Word.model, 20, info.model);

  w(Word.capabilities, Bit.lba | Bit.dma);
  page.writeUInt32LE(lba28, Word.lba28Capacity * 2);
  w(Word.majorVersion, 0x00f0); // ATA/ATAPI-4 through -7
  const features = Bit.lba48 | Bit.flushCache | Bit.flushCacheExt;
  // A volatile write cache exists exactly when write-cache is on: supported and enabled together.
  w(Word.supported82, info.writeCache ? Bit.writeCache : 0);
  w(Word.supported83, VALID | features);
  w(Word.supported84, VALID);
  w(Word.enabled85, info.writeCache ? Bit.writeCache : 0);
  w(Word.enabled86, features);
  w(Word.enabled87, VALID);
  page.writeBigUInt64LE(BigInt(info.sectors), Word.lba48Capacity * 2);

  // Integrity word: signature 0xA5, then a checksum making all 512 bytes sum to 0 mod 256.
  page[Word.integrity * 2] = 0xa5;
  let sum = 0;
  for (let i = 0; i < 511; i++) sum += page[i]!;
  page[511] = (256 - (sum & 0xff)) & 0xff;
  return page;
}

/** What an initiator reads back from an IDENTIFY DEVICE page. */
export interface IdentifyPage {
  /** Capacity in 512-byte sectors: the LBA48 words when LBA48 is supported, else LBA28's. */
  sectors: number;
  lba48: boolean;
  serial: string;
  firmware: string;
  model: string;
}

function readAtaString(page: Buffer, word: number, words: number): string {
  const field = Buffer.alloc(words * 2);
  for (let i = 0; i < words * 2; i += 2) {
    field[i] = page[word * 2 + i + 1]!;
    field[i + 1] = page[word * 2 + i]!;
  }
  return field.toString("latin1").trimEnd();
}

export function parseIdentify(page: Buffer): IdentifyPage {
  const lba48 = (page.readUInt16LE(Word.supported83 * 2) & Bit.lba48) !== 0;
  return {
    sectors: lba48
      ? Number(page.readBigUInt64LE(Word.lba48Capacity * 2))
      : page.readUInt32LE(Word.lba28Capacity * 2),
    lba48,
    serial: readAtaString(page, Word.serial, 10),
    firmware: readAtaString(page, Word.firmware, 4),
    model: readAtaString(page, Word.model, 20),
  };
}
