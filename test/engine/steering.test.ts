/**
 * The fanout steering program, run through a small classic-BPF interpreter
 * (the opcodes it uses) over random AoE headers: it must agree with steer(),
 * send only ATA reads and writes to workers, and spread tags over every worker.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type BpfInsn, encodeProgram, steer, steeringProgram } from "../../src/engine/steering.js";
import { AtaCmd, Command } from "../../src/protocol/constants.js";

const SKF_NET_OFF = -0x100000;

/** Runs `prog` over an AoE header (the network header) as the kernel's fanout hook would. */
function run(prog: BpfInsn[], aoe: Buffer): number {
  let a = 0;
  let x = 0;
  const load = (k: number, size: number) => {
    const off = (k | 0) - SKF_NET_OFF;
    if (off < 0 || off + size > aoe.length) throw new Error(`load out of range: ${off}`);
    return size === 1 ? aoe[off]! : aoe.readUInt32BE(off);
  };
  for (let pc = 0; pc < prog.length; pc++) {
    const { code, jt, jf, k } = prog[pc]!;
    switch (code) {
      case 0x30: // ld b abs
        a = load(k, 1);
        break;
      case 0x20: // ld w abs
        a = load(k, 4);
        break;
      case 0x15: // jeq k
        pc += a === k ? jt : jf;
        break;
      case 0x07: // tax
        x = a;
        break;
      case 0x74: // rsh k
        a = a >>> k;
        break;
      case 0xac: // xor x
        a = (a ^ x) >>> 0;
        break;
      case 0x94: // mod k
        a = a % k;
        break;
      case 0x04: // add k
        a = (a + k) >>> 0;
        break;
      case 0x06: // ret k
        return k;
      case 0x16: // ret a
        return a;
      default:
        throw new Error(`opcode 0x${code.toString(16)} not expected`);
    }
  }
  throw new Error("fell off the end of the program");
}

const header = (command: number, ataCmd: number, tag: number) => {
  const h = Buffer.alloc(24);
  h[0] = 0x10;
  h[5] = command;
  h.writeUInt32BE(tag >>> 0, 6);
  h[13] = ataCmd;
  return h;
};

describe("fanout steering program", () => {
  it("agrees with steer() on random headers for 1 to 8 workers", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.constantFrom(Command.ata, Command.queryConfig, Command.macMask, Command.reserve, 7),
        fc.constantFrom(
          AtaCmd.readSectors,
          AtaCmd.readSectorsExt,
          AtaCmd.writeSectors,
          AtaCmd.writeSectorsExt,
          AtaCmd.flushCacheExt,
          AtaCmd.identifyDevice,
          0xb0,
        ),
        fc.integer({ min: 0, max: 0xffffffff }),
        (workers, command, ataCmd, tag) => {
          const h = header(command, ataCmd, tag);
          const to = run(steeringProgram(workers), h);
          expect(to).toBe(steer(h, workers));
          const rw = (
            [
              AtaCmd.readSectors,
              AtaCmd.readSectorsExt,
              AtaCmd.writeSectors,
              AtaCmd.writeSectorsExt,
            ] as number[]
          ).includes(ataCmd);
          if (command === Command.ata && rw) expect(to).toBeGreaterThanOrEqual(1);
          else expect(to).toBe(0);
          expect(to).toBeLessThanOrEqual(workers);
        },
      ),
    );
  });

  it("spreads Linux aoe tags (tick low, counter high) over every worker", () => {
    // Within one jiffy the low 16 bits stay put; only the counter moves.
    const counts = [0, 0, 0, 0];
    for (let n = 0; n < 400; n++)
      counts[
        run(steeringProgram(3), header(Command.ata, AtaCmd.readSectorsExt, (n << 16) | 0x1234))
      ]!++;
    expect(counts[0]).toBe(0);
    for (const c of counts.slice(1)) expect(c).toBeGreaterThan(100);
  });

  it("encodes struct sock_filter: code u16, jt u8, jf u8, k u32 in host order", () => {
    const bytes = encodeProgram([{ code: 0x15, jt: 2, jf: 3, k: 0x01020304 }]);
    expect(bytes.toString("hex")).toBe("1500020304030201");
  });
});
