/**
 * Which network interfaces exist, and when that changes. linkState() asks the
 * kernel about one interface now; a LinkMonitor is told by rtnetlink
 * (RTM_NEWLINK, RTM_DELLINK) whenever a link of this network namespace
 * appears, goes, is renamed, or changes its MTU or up/down state, so nobody
 * has to poll. Both see the namespace the process runs in, as packet sockets do.
 */
import { constants } from "node:os";
import { loadNative, type NativeLinkEvent, type NativeLinkWatch } from "../native/addon.js";

export type LinkEvent = NativeLinkEvent;

/**
 * An interface as this network namespace has it now; null when it does not
 * exist. Asked by ioctl: a container's sysfs may show another namespace's links.
 */
export function linkState(name: string): { ifindex: number; mtu: number; up: boolean } | null {
  try {
    return loadNative().interfaceLink(name);
  } catch {
    return null;
  }
}

/** Receives link changes: the events of one wake-up in order, or null when some were lost. */
export type LinkListener = (events: readonly LinkEvent[] | null) => void;

/** One rtnetlink socket subscribed to link changes. It does not keep the process alive. */
export class LinkMonitor {
  private constructor(private readonly watch: NativeLinkWatch) {}

  /**
   * Starts listening. `listener` gets null when the kernel dropped events (its
   * socket buffer was full): then any link may have changed, and linkState()
   * says how each one is now. `onFailure` is told when the watch stopped for
   * good (the listener hears nothing more).
   */
  static open(listener: LinkListener, onFailure: (err: Error) => void): LinkMonitor {
    const watch = loadNative().watchLinks((status, events) => {
      if (status === 0) listener(events);
      else if (status === -constants.errno.ENOBUFS) listener(null);
      else {
        watch.close();
        onFailure(new Error(`rtnetlink: watching links failed: errno ${-status}`));
      }
    });
    watch.unref();
    return new LinkMonitor(watch);
  }

  close(): void {
    this.watch.close();
  }
}
