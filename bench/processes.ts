import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { openSync } from "node:fs";
import { readFile } from "node:fs/promises";

/**
 * Child processes of the bench: real `followups worker` processes (the CLI through tsx, as
 * test/support/worker-process.ts starts them) and the no-op BullMQ worker of the baselines. Their
 * logs go to a file, not a pipe, so a chatty worker is never slowed by the bench reading it.
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

/**
 * Starts `followups worker` (src/cli.ts through tsx) and waits for its start-up log line.
 * BENCH_WORKER_NODE_ARGS adds Node flags, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to see
 * where a worker's time goes.
 */
export function startWorkerProcess(
  env: Record<string, string>,
  logFile: string,
): Promise<BenchProcess> {
  const nodeArgs = (process.env.BENCH_WORKER_NODE_ARGS ?? "").split(" ").filter(Boolean);
  return startProcess(
    [...nodeArgs, "--import", "tsx", "src/cli.ts", "worker"],
    env,
    logFile,
    "followups worker started",
  );
}

/** Starts bench/noop-worker.ts: a plain BullMQ worker whose processor does nothing. */
export function startNoopWorker(
  env: Record<string, string>,
  logFile: string,
): Promise<BenchProcess> {
  return startProcess(
    ["--import", "tsx", "bench/noop-worker.ts"],
    env,
    logFile,
    "noop worker ready",
  );
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
