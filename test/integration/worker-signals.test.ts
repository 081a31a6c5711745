import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { type AddressInfo, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, expect, it } from "vitest";
import { startEmbeddedRedis } from "../../src/embedded-redis.js";
import { StartupStopped } from "../../src/startup-error.js";
import { StoreKeys } from "../../src/store/keys.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";
import { spawnWorker, startedLine } from "../support/worker-process.js";

let pipeline: PipelineHarness | undefined;
let silent: Server | undefined;
let root: string | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await pipeline?.close();
  pipeline = undefined;
  silent?.close();
  silent = undefined;
  if (root) await rm(root, { recursive: true, force: true });
  root = undefined;
});

const STOPPED_LINE = '"msg":"stopped while starting; nothing left running"';

it("stops cleanly (exit 0, one line) on a SIGTERM while waiting for Redis", async () => {
  // A Redis that accepts connections and never answers (loading, overloaded): the worker waits.
  silent = createServer((socket) => {
    sockets.push(socket);
  });
  await new Promise<void>((resolve) => silent?.listen(0, "127.0.0.1", resolve));
  const port = (silent.address() as AddressInfo).port;
  pipeline = await startPipeline("stop-while-connecting", { startWorker: false });
  const worker = spawnWorker({
    ...pipeline.envVars,
    REDIS_URL: `redis://127.0.0.1:${port}`,
    REDIS_CLUSTER: "false",
    LOG_LEVEL: "info",
  });
  await eventually(async () => sockets.length > 0 || undefined, "a connection to Redis", 30_000);
  worker.child.kill("SIGTERM");
  // Before, the default action of SIGTERM ended it: no exit code, no line.
  expect(await worker.exited()).toBe(0);
  const lines = worker.output().split("\n");
  expect(lines.filter((line) => line.includes(STOPPED_LINE))).toHaveLength(1);
  expect(worker.output()).toContain('"signal":"SIGTERM"');
  expect(worker.output()).not.toContain("cannot reach Redis");
}, 60_000);

it("stops cleanly on a SIGINT while waiting for another worker's key layout upgrade", async () => {
  pipeline = await startPipeline("stop-while-upgrade-waits", { startWorker: false });
  // Another worker holds the upgrade: this one waits for it, its connections open.
  const lock = new StoreKeys(pipeline.prefix).layoutLock();
  await pipeline.redis.set(lock, "another-worker", "PX", 120_000);
  const worker = spawnWorker({ ...pipeline.envVars, LOG_LEVEL: "info" });
  try {
    await eventually(
      async () => worker.output().includes("waiting for another worker to finish") || undefined,
      "the wait for the upgrade",
      30_000,
    );
    worker.child.kill("SIGINT");
    expect(await worker.exited()).toBe(0);
    expect(worker.output()).toContain(STOPPED_LINE);
    expect(worker.output()).toContain('"signal":"SIGINT"');
    expect(worker.output()).not.toContain("followups worker started");
  } finally {
    await worker.kill9();
    await pipeline.redis.del(lock);
  }
}, 60_000);

it("stops cleanly on a SIGTERM as soon as it logs its first line", async () => {
  pipeline = await startPipeline("stop-at-first-line", { startWorker: false });
  const worker = spawnWorker({ ...pipeline.envVars, LOG_LEVEL: "info" });
  await eventually(async () => worker.output().includes("\n") || undefined, "a first line", 30_000);
  worker.child.kill("SIGTERM");
  expect(await worker.exited()).toBe(0);
  // Stopped during start-up, or just after it (then it closes as on any SIGTERM).
  expect(worker.output()).toMatch(
    /"msg":"stopped while starting; nothing left running"|"msg":"followups worker stopped"/,
  );
}, 60_000);

it("stops the redis-server it started when the start-up is stopped", async () => {
  root = await mkdtemp(path.join(tmpdir(), "followups-embedded-stop-"));
  // A redis-server that never answers (loading a large data set looks like this): the worker's
  // start-up waits for it. It writes its process id, then becomes a long sleep.
  const bin = path.join(root, "bin");
  const pidFile = path.join(root, "redis-server.pid");
  await mkdir(bin);
  await writeFile(
    path.join(bin, "redis-server"),
    `#!/bin/sh\necho $$ > ${JSON.stringify(pidFile)}\nexec sleep 60\n`,
  );
  await chmod(path.join(bin, "redis-server"), 0o755);
  const pathBefore = process.env.PATH;
  process.env.PATH = `${bin}:${pathBefore}`;
  const stop = new AbortController();
  try {
    const starting = startEmbeddedRedis(root, stop.signal);
    const pid = Number(
      await eventually(
        async () => (await readFile(pidFile, "utf8").catch(() => "")).trim() || undefined,
        "the redis-server's process id",
      ),
    );
    expect(alive(pid)).toBe(true);
    stop.abort();
    await expect(starting).rejects.toBeInstanceOf(StartupStopped);
    // Before, it was left running after the worker ended.
    expect(alive(pid)).toBe(false);
  } finally {
    process.env.PATH = pathBefore;
  }
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

it("answers a SIGHUP with unchanged files with one line naming the version and generation", async () => {
  pipeline = await startPipeline("sighup-unchanged", { startWorker: false });
  const worker = spawnWorker({ ...pipeline.envVars, LOG_LEVEL: "info" });
  try {
    const started = JSON.parse(await startedLine(worker, 30_000)) as {
      rulesVersion: string;
      rulesGeneration: number;
    };
    worker.child.kill("SIGHUP");
    // Before, nothing was said: the operator could not tell the reload happened.
    const line = JSON.parse(
      await eventually(
        async () =>
          worker
            .output()
            .split("\n")
            .find((text) => text.includes('"msg":"config unchanged; nothing to reload"')),
        "the answer to the SIGHUP",
      ),
    ) as { version: string; generation: number };
    expect(line.version.startsWith(started.rulesVersion)).toBe(true);
    expect(line.generation).toBe(started.rulesGeneration);
    expect(await worker.stop()).toBe(0);
  } finally {
    await worker.kill9();
  }
}, 60_000);
