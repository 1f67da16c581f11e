/** The HTTP endpoint Prometheus scrapes: GET /metrics. */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export interface MetricsServerOptions {
  /** null: every address. */
  host: string | null;
  /** 0: any free port (tests). */
  port: number;
  registry: Registry;
}

export interface MetricsServer {
  /** "127.0.0.1:9288", "[::1]:9288" */
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

function listenText(host: string | null, port: number): string {
  if (host === null) return `:${port}`;
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Listens, or rejects with an error naming the address (in use, not local...). */
export function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const { registry } = opts;
  const server = http.createServer((req, res) => {
    const url = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (url === "/metrics") {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(req.method === "HEAD" ? undefined : text);
        },
        (err: Error) => {
          res.writeHead(500, { "content-type": "text/plain" }).end(`${err.message}\n`);
        },
      );
      return;
    }
    if (url === "/") {
      res
        .writeHead(200, { "content-type": "text/html; charset=utf-8" })
        .end('<html><body><h1>aoed</h1><p><a href="/metrics">metrics</a></p></body></html>\n');
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("not found; try /metrics\n");
  });
  server.keepAliveTimeout = 65_000; // longer than Prometheus' idle timeout; fewer reconnects
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const where = listenText(opts.host, opts.port);
      const why =
        err.code === "EADDRINUSE"
          ? "the address is in use (another aoed?)"
          : err.code === "EADDRNOTAVAIL"
            ? "no interface has that address"
            : err.code === "EACCES"
              ? "permission denied"
              : err.message;
      reject(
        new Error(
          `cannot serve metrics on ${where}: ${why}; change \`metrics: listen:\` or set \`metrics: false\``,
        ),
      );
    };
    server.once("error", onError);
    const ready = (): void => {
      server.off("error", onError);
      const port = (server.address() as AddressInfo).port;
      resolve({
        address: listenText(opts.host, port),
        port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    };
    if (opts.host === null) server.listen(opts.port, ready);
    else server.listen(opts.port, opts.host, ready);
  });
}
