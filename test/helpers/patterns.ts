/**
 * Verifiable sector contents for durability and fault tests. Every sector a
 * test writes is derived from (lba, generation): a header naming both, then
 * bytes from a generator seeded by them. A sector read back is therefore
 * self-describing: it is all zeros (never written), or it names the write it
 * came from and must match that write byte for byte (anything else is torn or
 * corrupt).
 *
 * `SectorModel` tracks, per sector, the last generation whose write was
 * acknowledged and the one write (at most) whose outcome is unknown (sent,
 * never acknowledged), and checks what is read back against that.
 */

export const SECTOR = 512;
const MAGIC = 0x414f4564; // "AOEd"

/** The 512 bytes of sector `lba` as written by generation `gen` (gen >= 1), into `out` at `at`. */
export function fillSector(out: Buffer, at: number, lba: number, gen: number): void {
  out.writeUInt32BE(MAGIC, at);
  out.writeUInt32BE(gen >>> 0, at + 4);
  out.writeUIntBE(lba, at + 8, 6);
  out.writeUInt16BE(0, at + 14);
  // xorshift32 seeded by (lba, gen): cheap, and different for every pair.
  let x = (Math.imul(lba + 1, 0x9e3779b1) ^ Math.imul(gen, 0x85ebca6b) ^ 0x27d4eb2f) >>> 0 || 1;
  for (let i = 16; i < SECTOR; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, at + i);
  }
}

/** `count` sectors starting at `lba`, all of generation `gen`. */
export function pattern(lba: number, count: number, gen: number): Buffer {
  const b = Buffer.allocUnsafe(count * SECTOR);
  for (let i = 0; i < count; i++) fillSector(b, i * SECTOR, lba + i, gen);
  return b;
}

export type SectorContent =
  | { kind: "zero" }
  | { kind: "gen"; gen: number }
  /** Neither zeros nor an intact sector of the right lba: torn, corrupt or misplaced. */
  | { kind: "bad"; why: string };

const scratch = Buffer.alloc(SECTOR);

/** Decodes sector `lba` from `buf` at `at`. */
export function decodeSector(buf: Buffer, at: number, lba: number): SectorContent {
  const s = buf.subarray(at, at + SECTOR);
  if (s.length !== SECTOR) return { kind: "bad", why: `short: ${s.length} bytes` };
  if (s.readUInt32BE(0) !== MAGIC) {
    for (let i = 0; i < SECTOR; i++)
      if (s[i] !== 0) return { kind: "bad", why: `no header and not zero (byte ${i})` };
    return { kind: "zero" };
  }
  const gen = s.readUInt32BE(4);
  const named = s.readUIntBE(8, 6);
  if (named !== lba) return { kind: "bad", why: `holds sector ${named} (gen ${gen})` };
  fillSector(scratch, 0, lba, gen);
  if (!scratch.equals(s)) {
    let i = 0;
    while (scratch[i] === s[i]) i++;
    return { kind: "bad", why: `gen ${gen} differs from byte ${i} on (torn?)` };
  }
  return { kind: "gen", gen };
}

export interface VerifyReport {
  /** Sectors whose content is not allowed by the model, with why. */
  violations: string[];
  /** Sectors whose unknown-outcome write turned out to have landed / not landed. */
  unknownLanded: number;
  unknownLost: number;
  /** Unacknowledged multi-sector writes seen partly applied (allowed: AoE promises no atomicity across sectors). */
  tornRequests: number;
}

/**
 * What the client knows about each sector of a disk it alone writes to.
 * Generations are issued in increasing order; a test must keep at most one
 * write in flight per sector (see `tryLock`), so per sector the order of
 * acknowledged writes is the order they were sent.
 */
export class SectorModel {
  /** Last acknowledged generation per sector (0: never written, reads as zeros). */
  readonly acked: Uint32Array;
  /** Generation of a write sent and never acknowledged (0: none). At most one: the sector is then left alone. */
  readonly unknown: Uint32Array;
  private readonly busy: Uint8Array;
  /** Sectors of each unknown write, to tell whether a multi-sector write landed in part. */
  private readonly unknownRequests = new Map<number, { lba: number; count: number }>();
  private nextGen = 1;

  constructor(readonly sectors: number) {
    this.acked = new Uint32Array(sectors);
    this.unknown = new Uint32Array(sectors);
    this.busy = new Uint8Array(sectors);
  }

  /** Claims [lba, lba+count) for one write if no sector of it is in flight or unresolved. */
  tryLock(lba: number, count: number): boolean {
    if (lba < 0 || lba + count > this.sectors) return false;
    for (let i = lba; i < lba + count; i++) if (this.busy[i] || this.unknown[i]) return false;
    this.busy.fill(1, lba, lba + count);
    return true;
  }

  /** A new generation for a write about to be sent on a locked range. */
  begin(lba: number, count: number): number {
    const gen = this.nextGen++;
    this.unknown.fill(gen, lba, lba + count);
    this.unknownRequests.set(gen, { lba, count });
    return gen;
  }

  /** The write was acknowledged: it must be there from now on. */
  acknowledged(lba: number, count: number, gen: number): void {
    this.acked.fill(gen, lba, lba + count);
    this.unknown.fill(0, lba, lba + count);
    this.unknownRequests.delete(gen);
    this.busy.fill(0, lba, lba + count);
  }

  /** The write failed or timed out: it may or may not have landed; the range stays unresolved. */
  failed(lba: number, count: number): void {
    this.busy.fill(0, lba, lba + count);
  }

  /** Writes whose outcome is unknown. */
  get unresolved(): number {
    return this.unknownRequests.size;
  }

  /**
   * Checks a read of sectors [lba, lba+count) against the model. With
   * `resolve`, each unknown write is settled by what was read (the sector's
   * acknowledged generation becomes what it holds), so writing can go on.
   */
  verify(buf: Buffer, lba: number, count: number, resolve: boolean): VerifyReport {
    const report: VerifyReport = {
      violations: [],
      unknownLanded: 0,
      unknownLost: 0,
      tornRequests: 0,
    };
    const landed = new Map<number, { yes: number; no: number }>();
    for (let i = 0; i < count; i++) {
      const s = lba + i;
      const c = decodeSector(buf, i * SECTOR, s);
      const a = this.acked[s]!;
      const u = this.unknown[s]!;
      const seen = c.kind === "zero" ? 0 : c.kind === "gen" ? c.gen : -1;
      if (c.kind === "bad") {
        report.violations.push(`sector ${s}: ${c.why} (acked gen ${a}, unknown ${u || "none"})`);
        continue;
      }
      if (seen !== a && (u === 0 || seen !== u)) {
        report.violations.push(
          seen < a
            ? `sector ${s}: holds gen ${seen}, older than acknowledged gen ${a} (lost or reordered write)`
            : `sector ${s}: holds gen ${seen}, expected acknowledged gen ${a}${u ? ` or unknown gen ${u}` : ""}`,
        );
        continue;
      }
      if (u !== 0) {
        const l = landed.get(u) ?? { yes: 0, no: 0 };
        if (seen === u) l.yes++;
        else l.no++;
        landed.set(u, l);
        if (resolve) {
          this.acked[s] = seen;
          this.unknown[s] = 0;
        }
      }
    }
    for (const [gen, l] of landed) {
      if (l.yes > 0 && l.no > 0) report.tornRequests++;
      if (l.yes > 0) report.unknownLanded++;
      else report.unknownLost++;
      if (resolve) {
        const r = this.unknownRequests.get(gen);
        // Settled only once every sector of the request has been read.
        if (r && r.lba >= lba && r.lba + r.count <= lba + count) this.unknownRequests.delete(gen);
      }
    }
    return report;
  }
}
