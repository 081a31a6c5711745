import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { openSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";

/**
 * Child processes of the bench: real `followups worker` processes and the no-op BullMQ worker of
 * the baselines, both compiled by tsc as `npm run build` compiles what `npm start` runs (see
 * compiled()). Their logs go to a file, not a pipe, so a chatty worker is never slowed by the
 * bench reading it.
 */
export interface BenchProcess {
  readonly pid: number;
  readonly logFile: string;
  /** CPU seconds (user + system) the process has used so far, from /proc. */
  cpuSeconds(): Promise<number>;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<number | null>;
}

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
const CLOCK_TICKS = 100;

/** Children still running; killed if the bench itself exits early (a crash, Ctrl-C). */
const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/** Only what a worker needs from the bench's own environment; the rest is given explicitly. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ["PATH", "HOME", "TMPDIR", "LANG"]) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}

async function startProcess(
  args: readonly string[],
  env: Record<string, string>,
  logFile: string,
  readyLine: string,
): Promise<BenchProcess> {
  const log = openSync(logFile, "a");
  const child: ChildProcess = spawn(process.execPath, [...args], {
    env: { ...baseEnv(), ...env },
    stdio: ["ignore", log, log],
  });
  running.add(child);
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  let ended = false;
  void exited.then(() => {
    ended = true;
    running.delete(child);
  });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const text = await readFile(logFile, "utf8").catch(() => "");
    if (text.includes(readyLine)) break;
    if (ended || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${args.join(" ")} did not start:\n${text.slice(-3000)}`);
    }
    await sleep(100);
  }
  const pid = child.pid ?? 0;
  return {
    pid,
    logFile,
    async cpuSeconds() {
      return processCpuSeconds(pid);
    },
    async stop() {
      if (!ended) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      const [code] = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Where the bench's compiled workers go (git-ignored); rebuilt by every bench run. */
const BUILD_DIR = "bench/.build";

/** How the bench runs its worker processes: compiled by tsc (the default) or through tsx. */
export type WorkerBuild = "tsc" | "tsx";

/**
 * BENCH_TSX=1 runs the workers through tsx, as the tests do, without compiling: quicker to
 * start, but tsx's transform (it names every function it creates, `keepNames`) cost our worker
 * about 5% more CPU per purchase and the reference worker 14% of its rate against the compiled
 * code `npm start` runs (2026-12-04), so its figures are not the product's.
 */
export function workerBuild(): WorkerBuild {
  return process.env.BENCH_TSX === "1" ? "tsx" : "tsc";
}

let compiling: Promise<void> | undefined;

/**
 * Compiles src/ and bench/noop-worker.ts with tsc into bench/.build, once per bench run: the
 * worker runs as the code `npm run build` makes, and the reference workers are compiled the same
 * way, so neither side of a ratio pays for a loader the other does not.
 */
function compiled(): Promise<void> {
  compiling ??= promisify(execFile)(
    process.execPath,
    ["node_modules/typescript/bin/tsc", "-p", "bench/tsconfig.build.json"],
    { maxBuffer: 16 * 1024 * 1024 },
  ).then(
    () => undefined,
    (error: Error & { stdout?: string }) => {
      throw new Error(`tsc -p bench/tsconfig.build.json failed:\n${error.stdout ?? error.message}`);
    },
  );
  return compiling;
}

/** Node's arguments to run a TypeScript entry point of this repository, as workerBuild() says. */
async function entryPoint(source: string): Promise<string[]> {
  if (workerBuild() === "tsx") return ["--import", "tsx", source];
  await compiled();
  return [`${BUILD_DIR}/${source.replace(/\.ts$/, ".js")}`];
}

/**
 * Starts `followups worker` (src/cli.ts, compiled) and waits for its start-up log line.
 * BENCH_WORKER_NODE_ARGS adds Node flags, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to see
 * where a worker's time goes.
 */
export async function startWorkerProcess(
  env: Record<string, string>,
  logFile: string,
): Promise<BenchProcess> {
  const nodeArgs = (process.env.BENCH_WORKER_NODE_ARGS ?? "").split(" ").filter(Boolean);
  return startProcess(
    [...nodeArgs, ...(await entryPoint("src/cli.ts")), "worker"],
    env,
    logFile,
    "followups worker started",
  );
}

/** Starts bench/noop-worker.ts (compiled): a plain BullMQ worker whose processor does nothing. */
export async function startNoopWorker(
  env: Record<string, string>,
  logFile: string,
): Promise<BenchProcess> {
  return startProcess(await entryPoint("bench/noop-worker.ts"), env, logFile, "noop worker ready");
}

/** User + system CPU seconds of a process (Linux /proc; 0 where unavailable). */
export async function processCpuSeconds(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
