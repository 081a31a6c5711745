import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { eventually } from "./pipeline-harness.js";

/** A `followups worker` in its own process, so tests can kill it like a crash would. */
export interface WorkerProcess {
  readonly child: ChildProcess;
  /** stdout and stderr so far (JSON log lines). */
  output(): string;
  /** SIGKILL: no shutdown code runs, in-flight sends are cut off. */
  kill9(): Promise<void>;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
  /** Resolves with the exit code once the process ends by itself. */
  exited(): Promise<number | null>;
}

/** Workers still running: killed when the test process exits, so a failed test leaks none. */
const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) if (child.exitCode === null) child.kill("SIGKILL");
});

/** Starts the real CLI (`src/cli.ts worker`) through tsx with the given environment. */
export function spawnWorker(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "worker"], {
    env: {
      ...process.env,
      ...env,
      LOG_LEVEL: !env.LOG_LEVEL || env.LOG_LEVEL === "silent" ? "warn" : env.LOG_LEVEL,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    text += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    text += chunk.toString();
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  const exited = once(child, "exit");
  return {
    child,
    output: () => text,
    async kill9() {
      if (child.exitCode === null) child.kill("SIGKILL");
      await exited;
    },
    async exited() {
      const [code] = (await exited) as [number | null];
      return code;
    },
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
}

/** The worker's start-up line (`followups worker started`), once written, as it was written. */
export function startedLine(worker: WorkerProcess, timeoutMs: number): Promise<string> {
  return eventually(
    async () =>
      worker
        .output()
        .split("\n")
        .find((line) => line.includes('"msg":"followups worker started"')),
    "the start-up line",
    timeoutMs,
  );
}
