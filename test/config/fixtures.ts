import {
  type LoadOptions,
  type LoadResult,
  loadConfigText,
  type StatInfo,
} from "../../src/config/load.js";

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

/** A fake filesystem: what stat() sees. */
export const FILES: Record<string, StatInfo> = {
  "/srv/a.img": { kind: "file", size: GiB },
  "/srv/b.img": { kind: "file", size: GiB },
  "/srv/small.img": { kind: "file", size: 4 * MiB },
  "/srv/empty.img": { kind: "file", size: 0 },
  "/srv/dir": { kind: "directory", size: 4096 },
  "/dev/vg0/lv0": { kind: "block", size: 0 },
  "/dev/vg0/lv1": { kind: "block", size: 0 },
  "/dev/disk/by-uuid/6f1c2a9e-3b7d-4e8a-9c51-0d2f4a6b8e10": { kind: "block", size: 0 },
};

export const IFACES = ["lo", "eth0", "eth1", "eth10", "eth2", "enp3s0", "wlan0"];

export const fakeStat = async (path: string): Promise<StatInfo> =>
  FILES[path] ?? { kind: "missing" };

export const OPTS: LoadOptions = {
  interfaces: IFACES,
  stat: fakeStat,
  defaultControlSocket: "/run/aoed/aoed.sock", // not $AOED_SOCKET: tests see the built-in default
};

/** Lines joined with "\n", so test cases can count lines and columns. */
export const yaml = (...lines: string[]): string => `${lines.join("\n")}\n`;

export function load(text: string, opts: LoadOptions = OPTS): Promise<LoadResult> {
  return loadConfigText(text, "aoed.yaml", opts);
}
