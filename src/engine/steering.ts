/**
 * The classic BPF program that steers an interface's AoE frames between the
 * sockets of one PACKET_FANOUT group: the main thread's socket, which joins
 * first and so is member 0, and one socket per worker thread.
 *
 * ATA reads and writes go to a worker chosen by a hash of the tag; everything
 * else (discovery, config strings, MAC masks, reservations, IDENTIFY, FLUSH)
 * goes to the main thread, so the state initiators can change has one writer.
 * The kernel takes the result modulo the group's size: until the workers have
 * joined, or if one could not, the main thread gets their share and serves it.
 *
 * Linux's aoe driver keeps a clock tick in the tag's low 16 bits and a counter
 * in the high ones, so the hash folds the high half and byte in before the modulo.
 */
import { endianness } from "node:os";
import { AtaOff, Command, ETH_HEADER, Off } from "../protocol/constants.js";
import {
  ATA_READ_COMMANDS,
  ATA_WRITE_COMMANDS,
  ataTransfer,
  readTag,
} from "../protocol/frame-readers.js";

// <linux/filter.h>
const BPF_LD = 0x00;
const BPF_ALU = 0x04;
const BPF_JMP = 0x05;
const BPF_RET = 0x06;
const BPF_MISC = 0x07;
const BPF_W = 0x00;
const BPF_B = 0x10;
const BPF_ABS = 0x20;
const BPF_K = 0x00;
const BPF_X = 0x08;
const BPF_A = 0x10;
const BPF_JEQ = 0x10;
const BPF_ADD = 0x00;
const BPF_RSH = 0x70;
const BPF_MOD = 0x90;
const BPF_XOR = 0xa0;
const BPF_TAX = 0x00;
/** Loads relative to the network header (the AoE header), wherever skb->data is. */
const SKF_NET_OFF = -0x100000;

/** A frame offset as a load relative to the AoE header, which follows the Ethernet header. */
const net = (frameOff: number): number => (SKF_NET_OFF + frameOff - ETH_HEADER) >>> 0;

const STEERED = [...ATA_READ_COMMANDS, ...ATA_WRITE_COMMANDS];

export interface BpfInsn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

const stmt = (code: number, k: number): BpfInsn => ({ code, jt: 0, jf: 0, k });
const jeq = (k: number, jt: number, jf: number): BpfInsn => ({
  code: BPF_JMP | BPF_JEQ | BPF_K,
  jt,
  jf,
  k,
});

/** The program for `workers` worker sockets (members 1..workers of the group). */
export function steeringProgram(workers: number): BpfInsn[] {
  if (!Number.isInteger(workers) || workers < 1) throw new RangeError("workers must be >= 1");
  const n = STEERED.length;
  // Layout: [0] load command, [1] ATA?, [2] load ATA command, [3..3+n) steered?,
  // [3+n] return 0 (main), [4+n..] hash the tag and return 1 + hash % workers.
  const toMain = (at: number) => 3 + n - at - 1;
  return [
    stmt(BPF_LD | BPF_B | BPF_ABS, net(Off.command)),
    jeq(Command.ata, 0, toMain(1)),
    stmt(BPF_LD | BPF_B | BPF_ABS, net(AtaOff.cmdStatus)),
    ...STEERED.map((cmd, i) => jeq(cmd, n - i, 0)),
    stmt(BPF_RET | BPF_K, 0),
    stmt(BPF_LD | BPF_W | BPF_ABS, net(Off.tag)),
    stmt(BPF_MISC | BPF_TAX, 0),
    stmt(BPF_ALU | BPF_RSH | BPF_K, 16),
    stmt(BPF_ALU | BPF_XOR | BPF_X, 0),
    stmt(BPF_MISC | BPF_TAX, 0),
    stmt(BPF_ALU | BPF_RSH | BPF_K, 8),
    stmt(BPF_ALU | BPF_XOR | BPF_X, 0),
    stmt(BPF_ALU | BPF_MOD | BPF_K, workers),
    stmt(BPF_ALU | BPF_ADD | BPF_K, 1),
    stmt(BPF_RET | BPF_A, 0),
  ];
}

/**
 * Everything to member 0: for a group being replaced, whose main-thread socket
 * no longer reads, so its workers get nothing the replacement group also serves.
 */
export const TO_MAIN_ONLY: BpfInsn[] = [stmt(BPF_RET | BPF_K, 0)];

/** struct sock_filter[] in the host's byte order, as setsockopt wants it. */
export function encodeProgram(program: BpfInsn[]): Buffer {
  const out = Buffer.alloc(program.length * 8);
  const le = endianness() === "LE";
  program.forEach((insn, i) => {
    const o = i * 8;
    if (le) {
      out.writeUInt16LE(insn.code, o);
      out.writeUInt32LE(insn.k, o + 4);
    } else {
      out.writeUInt16BE(insn.code, o);
      out.writeUInt32BE(insn.k, o + 4);
    }
    out[o + 2] = insn.jt;
    out[o + 3] = insn.jf;
  });
  return out;
}

/**
 * Where the program sends one frame, given the AoE header bytes (after the
 * Ethernet header): 0 for the main thread, 1..workers for a worker. The same
 * decision in TypeScript, for tests and for checking the program against it.
 */
export function steer(aoe: Buffer, workers: number): number {
  // The readers take the offset of the Ethernet header, which `aoe` starts after.
  const frame = -ETH_HEADER;
  if (ataTransfer(aoe, frame) === null) return 0;
  let h = readTag(aoe, frame);
  h = (h ^ (h >>> 16)) >>> 0;
  h = (h ^ (h >>> 8)) >>> 0;
  return 1 + (h % workers);
}
