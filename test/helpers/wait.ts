/**
 * Waiting for conditions instead of for time. A test that sleeps and then
 * asserts passes or fails with the machine's speed; one that polls until the
 * condition holds passes on any machine, and when it cannot, says what it was
 * waiting for and what it saw last.
 */
import type { AoeClient, TargetInfo } from "../../src/client/client.js";

export interface WaitOptions {
  /** Give up after this long (default 15 s: generous, only reached when something is broken). */
  timeoutMs?: number;
  /** Poll interval (default 5 ms). */
  intervalMs?: number;
}

/**
 * Polls `probe` until it returns a value that is not `undefined`, `null` or
 * `false`, and resolves with it. A probe that throws is retried, and its last
 * error is quoted if time runs out. `what` names the condition for the failure
 * message: "the daemon to log ready", "tp_drops to account for every frame".
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  { timeoutMs = 15_000, intervalMs = 5 }: WaitOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== null && v !== false) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${seen})`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Discovers from `client` until the targets found satisfy `enough`, and
 * returns them. On a loaded machine an answer can miss one collection window,
 * so a positive discovery is asked again rather than judged on one window; a
 * refusal is never proven by this.
 */
export function discoverUntil(
  client: AoeClient,
  opts: { shelf?: number; slot?: number },
  enough: (found: TargetInfo[]) => boolean,
): Promise<TargetInfo[]> {
  return waitFor(`a discovery of ${JSON.stringify(opts)} to find what the test needs`, async () => {
    const found = await client.discover({ ...opts, timeoutMs: 300 });
    return enough(found) && found;
  });
}
