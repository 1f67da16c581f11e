/**
 * Opening a backing store fails like any other I/O: the error names the
 * system call, the file and the export, and says what to change where it can.
 * From real failures: a missing file (ENOENT), a file user nobody may not
 * open (EACCES, in a child process), a FUSE file whose O_DIRECT probe reads
 * fail (root and /dev/fuse only), a block device ioctl on a regular file
 * (ENOTBLK) and a sysfs file that cannot be mapped (ENODEV), on the main
 * thread and where a worker thread adopts the descriptors.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { SharedBackend } from "../../src/io/backend.js";
import { blockDeviceSize, logicalBlockSize } from "../../src/io/blockdev.js";
import { namesExport } from "../../src/io/errors.js";
import { adoptFileBackend, type OpenOptions, openFileBackend } from "../../src/io/open.js";
import { setprivAs } from "../helpers/daemon-as.js";
import { FuseFaults, fuseUnavailable } from "../helpers/fuse-faults.js";
import { openOptions } from "../helpers/open-options.js";

const KiB = 1024;
const EINVAL = 22;
const isRoot = process.getuid?.() === 0;
const noFuse = isRoot ? fuseUnavailable() : "needs root";

/** What openFileBackend rejects with. */
async function openFailure(opts: OpenOptions): Promise<NodeJS.ErrnoException> {
  try {
    await (await openFileBackend(opts)).close();
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
  throw new Error(`${opts.path} opened`);
}

describe("opening a backing store", () => {
  let dir: string;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-open-errors-"));
    fs.chmodSync(dir, 0o755); // user nobody reaches the files (EACCES from the file, not the directory)
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("a missing file: ENOENT, naming the call, the file and the export", async () => {
    const file = path.join(dir, "missing.img");
    const err = await openFailure(openOptions(file, { exportName: "gone0" }));
    expect(err).toMatchObject({ code: "ENOENT", syscall: "stat", path: file });
    expect(err.message).toBe(`stat ${file} (export gone0): ENOENT (no such file or directory)`);
    // The engine reads this to not name the export twice in its list of failures.
    expect(namesExport(err, "gone0")).toBe(true);
    expect(namesExport(err, "gone")).toBe(false);
  });

  it("not a file: names the file and the export", async () => {
    const err = await openFailure(openOptions(dir, { exportName: "dir0" }));
    expect(err.message).toBe(`${dir} (export dir0): not a regular file or block device`);
    expect(namesExport(err, "dir0")).toBe(true);
  });

  it("a window past the end: names the file and the export", async () => {
    const file = path.join(dir, "small.img");
    fs.writeFileSync(file, Buffer.alloc(4 * KiB));
    const err = await openFailure(openOptions(file, { offset: 8 * KiB }));
    expect(err.message).toBe(`${file} (export e0.1): offset 8192 is past the end (4096 bytes)`);
  });

  const staged = inject("stagedRoot");
  it.skipIf(!isRoot || staged === null)(
    "a file user nobody may not open: EACCES, and what access aoed needs",
    () => {
      const file = path.join(dir, "root-only.img");
      fs.writeFileSync(file, Buffer.alloc(64 * KiB));
      fs.chmodSync(file, 0o600);
      const open = path.join(staged!, "dist", "src", "io", "open.js");
      const script = `
        const { openFileBackend } = await import(${JSON.stringify(open)});
        const base = ${JSON.stringify(openOptions(file, { exportName: "locked0" }))};
        const out = [];
        for (const readOnly of [false, true]) {
          try {
            await openFileBackend({ ...base, readOnly });
            out.push(null);
          } catch (e) {
            out.push({ message: e.message, code: e.code, syscall: e.syscall, path: e.path });
          }
        }
        console.log(JSON.stringify(out));
        process.exit(0);`;
      const [setpriv, ...args] = setprivAs("nobody", "nogroup", []);
      const r = spawnSync(
        setpriv!,
        [...args, process.execPath, "--input-type=module", "-e", script],
        {
          encoding: "utf8",
          timeout: 20_000,
        },
      );
      expect(r.stderr).toBe("");
      const [rw, ro] = JSON.parse(r.stdout) as NodeJS.ErrnoException[];
      expect(rw).toMatchObject({ code: "EACCES", syscall: "open", path: file });
      expect(rw!.message).toBe(
        `open ${file} (export locked0): EACCES (permission denied; aoed needs read/write access; set read-only: true to export it read-only)`,
      );
      expect(ro).toMatchObject({ code: "EACCES", syscall: "open", path: file });
      expect(ro!.message).toBe(
        `open ${file} (export locked0): EACCES (permission denied; aoed needs read access)`,
      );
    },
  );

  it("a block device ioctl on a regular file: ENOTBLK, naming the ioctl, the file and the export", () => {
    const file = path.join(dir, "not-a-disk.img");
    fs.writeFileSync(file, Buffer.alloc(4 * KiB));
    const fd = fs.openSync(file, "r");
    try {
      const site = { path: file, exportName: "blk0" };
      expect(() => blockDeviceSize(fd, site)).toThrow(
        `ioctl(BLKGETSIZE64) ${file} (export blk0): ENOTBLK (fd ${fd} is not a block device (a regular file))`,
      );
      expect(() => logicalBlockSize(fd, site)).toThrow(
        `ioctl(BLKSSZGET) ${file} (export blk0): ENOTBLK (fd ${fd} is not a block device (a regular file))`,
      );
      let err: NodeJS.ErrnoException | undefined;
      try {
        blockDeviceSize(fd, site);
      } catch (e) {
        err = e as NodeJS.ErrnoException;
      }
      expect(err).toMatchObject({ code: "ENOTBLK", errno: -15, path: file });
    } finally {
      fs.closeSync(fd);
    }
  });

  /** A sysfs attribute: a regular file of 4096 bytes that mmap refuses (ENODEV). */
  const unmappable = [
    "/sys/kernel/mm/transparent_hugepage/enabled",
    "/sys/kernel/profiling",
    "/sys/power/state",
  ].find((p) => fs.existsSync(p));

  it.skipIf(unmappable === undefined)(
    "a file that cannot be mapped: mmap, the file, the export",
    async () => {
      const file = unmappable!;
      const err = await openFailure(
        openOptions(file, { readOnly: true, io: "mmap", exportName: "map0" }),
      );
      expect(err).toMatchObject({ code: "ENODEV", syscall: "mmap", path: file });
      expect(err.message).toBe(`mmap ${file} (export map0): ENODEV (no such device)`);
    },
  );

  it.skipIf(unmappable === undefined)(
    "the same where a worker thread adopts the descriptors",
    () => {
      const file = unmappable!;
      const fd = fs.openSync(file, "r");
      try {
        const shared: SharedBackend = {
          path: file,
          exportName: "map1",
          fd,
          directFd: -1,
          size: 4 * KiB,
          offset: 0,
          readOnly: true,
          caps: { directIo: false, blockDevice: false, alignment: 512, engine: "mmap" },
        };
        const warnings: string[] = [];
        expect(() => adoptFileBackend(shared, (m) => warnings.push(m))).toThrow(
          `mmap ${file} (export map1): ENODEV (no such device)`,
        );
        expect(warnings).toEqual([]);
      } finally {
        fs.closeSync(fd);
      }
    },
  );
});

describe.skipIf(noFuse !== null)(
  "opening a backing store: the O_DIRECT alignment probe on FUSE",
  () => {
    let fuse: FuseFaults;

    beforeAll(async () => {
      fuse = await FuseFaults.mount();
    });
    afterAll(async () => {
      await fuse?.unmount();
    });

    it("a probe read that fails: the pread, the file, the export, and that it was the probe", async () => {
      const file = fuse.addFile("eio.img", 64 * KiB);
      fuse.fail("eio.img", { read: true });
      const err = await openFailure(openOptions(file, { directIo: true, exportName: "probe0" }));
      expect(err).toMatchObject({ code: "EIO", syscall: "pread", path: file });
      expect(err.message).toBe(
        `pread ${file} (export probe0): EIO (i/o error; probing the O_DIRECT alignment)`,
      );
    });

    it("probe reads refused at 512 and 4096 bytes: EINVAL, and to set direct-io: false", async () => {
      const file = fuse.addFile("einval.img", 64 * KiB);
      fuse.fail("einval.img", { read: true, errno: EINVAL });
      const err = await openFailure(openOptions(file, { directIo: true, exportName: "probe1" }));
      expect(err).toMatchObject({ code: "EINVAL", syscall: "pread", path: file });
      expect(err.message).toBe(
        `pread ${file} (export probe1): EINVAL (invalid argument; O_DIRECT reads fail at 512 and 4096-byte alignment; set direct-io: false)`,
      );
    });
  },
);
