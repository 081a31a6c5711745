import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";

/**
 * The image's HEALTHCHECK is what Docker runs to call a container healthy; it must probe the port
 * the worker listens on, which HTTP_PORT sets.
 */
const healthcheck = (): string[] => {
  const dockerfile = readFileSync("Dockerfile", "utf8").replace(/\\\n/g, " ");
  const command = /^HEALTHCHECK .*?CMD (\[.*\])\s*$/m.exec(dockerfile)?.[1];
  if (command === undefined) throw new Error("the Dockerfile has no HEALTHCHECK CMD [...]");
  return JSON.parse(command) as string[];
};

let server: http.Server | undefined;
afterEach(() => {
  server?.close();
  server = undefined;
});

describe("the image's healthcheck", () => {
  it("probes /healthz on the port HTTP_PORT names", async () => {
    const hits: string[] = [];
    server = http.createServer((request, response) => {
      hits.push(request.url ?? "");
      response.writeHead(200, { "content-type": "application/json" }).end('{"status":"ok"}');
    });
    await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const [command, ...args] = healthcheck();
    expect(command).toBe("node");
    const run = promisify(execFile)(command ?? "node", args, {
      env: { ...process.env, HTTP_PORT: String(port) },
      timeout: 20_000,
    });
    await expect(run).resolves.toBeDefined();
    expect(hits).toEqual(["/healthz"]);
  });
});
