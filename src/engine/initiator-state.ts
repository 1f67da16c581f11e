/**
 * What initiators set on an export at run time: the config string, the MAC
 * mask list and the reservation. One owner per export holds it; every change
 * goes through here so that it is, in this order and before the initiator is
 * answered:
 *  - published to the worker threads (src/engine/shared-state.ts, a seqlock
 *    they check on every frame), so a frame sent after the reply is judged by
 *    the new lists;
 *  - handed to `onChange`, which persists it (src/engine/state-store.ts);
 *  - logged.
 * Only the main thread writes (the steering program sends it every config,
 * mask and reserve command); a worker's copy only reads the shared lists.
 */
import type { Logger } from "pino";
import { macToString } from "../protocol/mac.js";
import type { SharedAccessLists } from "./shared-state.js";

/** What an initiator can set on an export at run time; persisted by the state store. */
export interface TargetState {
  config: Buffer;
  mask: number[];
  reserve: number[];
}

export function emptyState(): TargetState {
  return { config: Buffer.alloc(0), mask: [], reserve: [] };
}

export class InitiatorState {
  private current: TargetState;
  /** The shared lists' version `current` reflects; -1: not read yet. */
  private listsVersion = -1;

  constructor(
    private readonly exportName: string,
    private readonly log: Logger,
    initial: TargetState,
    private readonly onChange: (state: TargetState) => void,
    /** With worker threads: the mask and reservation every thread serving this export enforces. */
    readonly lists: SharedAccessLists | null,
  ) {
    this.current = initial;
  }

  /** The state now: with worker threads, the mask and reservation as last published by any thread. */
  get state(): TargetState {
    const lists = this.lists;
    if (lists !== null && lists.version !== this.listsVersion) {
      const { version, mask, reserve } = lists.read();
      this.listsVersion = version;
      this.current = { ...this.current, mask, reserve };
    }
    return this.current;
  }

  private set(next: TargetState): void {
    this.current = next;
    if (this.lists !== null) {
      this.lists.publish(next.mask, next.reserve);
      this.listsVersion = this.lists.version;
    }
    this.onChange(next);
  }

  setConfig(value: Buffer): void {
    this.set({ ...this.state, config: Buffer.from(value) });
    this.log.info(
      { export: this.exportName, config: value.toString("latin1") },
      "config string set",
    );
  }

  setMask(list: number[]): void {
    this.set({ ...this.state, mask: list });
  }

  /** A reservation set or released by `by`. */
  setReserve(macs: number[], by: number): void {
    this.set({ ...this.state, reserve: macs });
    this.log.info(
      { export: this.exportName, by: macToString(by), reserve: macs.map(macToString) },
      "reservation changed",
    );
  }

  /** The admin's reset of what initiators set (aoectl clear). */
  clear(what: "config" | "mask" | "reserve"): void {
    if (what === "config") this.set({ ...this.state, config: Buffer.alloc(0) });
    else if (what === "mask") this.set({ ...this.state, mask: [] });
    else this.set({ ...this.state, reserve: [] });
    this.log.info({ export: this.exportName, cleared: what }, "state cleared by the admin");
  }
}
