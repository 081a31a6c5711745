import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * Which npm packages a run of the binary loads. A module-loading hook (module.register, ahead of
 * tsx's) appends every URL the run's ESM imports resolve to to a file; the packages are the
 * node_modules folders among them. A package's own internal requires are not seen, but its entry
 * point, imported by our modules, always is.
 */
const RECORDER = `data:text/javascript,${encodeURIComponent(`
import { register } from "node:module";
register("data:text/javascript," + encodeURIComponent(\`
import { appendFileSync } from "node:fs";
let out;
export function initialize(data) { out = data.out; }
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  appendFileSync(out, resolved.url + "\\\\n");
  return resolved;
}\`), { data: { out: process.env.LOADED_URLS_FILE } });
`)}`;

/** Packages a command has no use for, and each heavy to load: the worker's and the Redis commands'. */
const HEAVY = ["bullmq", "ioredis", "twilio", "nodemailer", "fastify", "mailparser"];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "cli-startup-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let runs = 0;
async function loadedPackages(args: string[]): Promise<{ code: number; packages: string[] }> {
  const file = path.join(dir, `urls-${runs++}.txt`);
  const code = await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", "--import", RECORDER, "src/cli.ts", ...args],
    // A closed port: a command that connects fails at once, after loading what it needs. A run
    // that hangs is killed before the test's own timeout, so no child outlives the suite.
    {
      env: { ...process.env, LOADED_URLS_FILE: file, REDIS_URL: "redis://127.0.0.1:1" },
      timeout: 50_000,
      killSignal: "SIGKILL",
    },
  ).then(
    () => 0,
    (error: { code: number }) => error.code,
  );
  const urls = (await readFile(file, "utf8").catch(() => "")).split("\n");
  const packages = new Set(
    urls.flatMap((url) => {
      const found = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
      return found ? [found] : [];
    }),
  );
  return { code, packages: [...packages].sort() };
}

// Each run starts the CLI with tsx, which compiles what it loads: seconds each on a busy machine.
describe("the followups binary's start-up", { timeout: 60_000 }, () => {
  it("loads no command's packages for --version, --help or a usage error", async () => {
    const [version, help, usage] = await Promise.all([
      loadedPackages(["--version"]),
      loadedPackages(["customer", "--help"]),
      loadedPackages(["erase", "--yes"]),
    ]);
    expect([version.code, help.code, usage.code]).toEqual([0, 0, 2]);
    // The recorder works: commander, which parses the command line, is seen.
    expect(version.packages).toEqual(["commander"]);
    expect(help.packages).toEqual(["commander"]);
    expect(usage.packages).toEqual(["commander"]);
  });

  it("loads only what `check` and `plan` need: no Redis, queue, channel or web packages", async () => {
    const [check, plan] = await Promise.all([
      loadedPackages(["check", "--config", "config"]),
      loadedPackages(["plan", "config/examples/purchase-laptop.json"]),
    ]);
    expect([check.code, plan.code]).toEqual([0, 0]);
    for (const { packages } of [check, plan]) {
      expect(packages).toContain("liquidjs");
      expect(packages.filter((name) => HEAVY.includes(name))).toEqual([]);
    }
  });

  it("loads a Redis command's packages when it runs (the recorder sees them)", async () => {
    const schedule = await loadedPackages(["schedule"]);
    expect(schedule.code).toBe(1);
    expect(schedule.packages).toEqual(expect.arrayContaining(["bullmq", "ioredis"]));
  });
});
