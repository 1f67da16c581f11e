/**
 * Persists what initiators set on an export (config string, MAC mask list,
 * reservation) in state-dir, one JSON file per export name, so it survives
 * restarts and reloads. Writes are atomic (temp file, fsync, rename, fsync
 * of the directory) and synchronous: they are rare, and a reservation should
 * be on disk before the initiator is told it holds it.
 */
import fs from "node:fs";
import path from "node:path";
import { macToString, parseMac } from "../protocol/mac.js";
import { emptyState, type TargetState } from "./initiator-state.js";

interface StateFile {
  version: 1;
  /** The config string as latin1 text (AoE config strings are bytes). */
  config: string;
  mask: string[];
  reserve: string[];
}

export class StateStore {
  constructor(
    readonly dir: string,
    private readonly onError: (message: string) => void,
  ) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private file(name: string): string {
    return path.join(this.dir, `${name}.json`);
  }

  load(name: string): TargetState {
    let text: string;
    try {
      text = fs.readFileSync(this.file(name), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT")
        this.onError(`${this.file(name)}: ${(err as Error).message}; starting with empty state`);
      return emptyState();
    }
    try {
      const s = JSON.parse(text) as StateFile;
      const macs = (list: unknown) =>
        Array.isArray(list)
          ? list.map((m) => parseMac(String(m))).filter((m): m is number => m !== null)
          : [];
      return {
        config: Buffer.from(typeof s.config === "string" ? s.config : "", "latin1").subarray(
          0,
          1024,
        ),
        mask: macs(s.mask),
        reserve: macs(s.reserve),
      };
    } catch (err) {
      this.onError(
        `${this.file(name)}: not valid state (${(err as Error).message}); starting with empty state`,
      );
      return emptyState();
    }
  }

  save(name: string, state: TargetState): void {
    const body: StateFile = {
      version: 1,
      config: state.config.toString("latin1"),
      mask: state.mask.map(macToString),
      reserve: state.reserve.map(macToString),
    };
    const target = this.file(name);
    const tmp = `${target}.tmp`;
    try {
      const fd = fs.openSync(tmp, "w", 0o600);
      try {
        fs.writeFileSync(fd, `${JSON.stringify(body, null, 2)}\n`);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, target);
      const dirFd = fs.openSync(this.dir, "r");
      try {
        fs.fsyncSync(dirFd);
      } finally {
        fs.closeSync(dirFd);
      }
    } catch (err) {
      this.onError(`cannot save state of ${name} to ${target}: ${(err as Error).message}`);
    }
  }
}
