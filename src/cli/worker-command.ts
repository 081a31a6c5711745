import { channelsFromEnv } from "../channels/channels-from-env.js";
import { readEnv } from "../config/env.js";
import { createLogger } from "../logger.js";
import { StartupError, startWorker } from "../worker.js";
import { type CommandIo, EXIT } from "./io.js";

/**
 * `followups worker`: validates the environment before connecting to anything, starts the
 * workers, reloads the config on SIGHUP and on file edits, and shuts down cleanly on SIGTERM/SIGINT.
 */
export async function runWorker(io: CommandIo): Promise<number> {
  const envResult = readEnv(process.env);
  if (!envResult.ok) {
    io.err(`invalid environment:\n${envResult.problems.map((p) => `  ${p}`).join("\n")}\n`);
    return EXIT.invalid;
  }
  const env = envResult.env;
  const pretty = env.LOG_FORMAT
    ? env.LOG_FORMAT === "pretty"
    : env.NODE_ENV === "development" && Boolean(process.stdout.isTTY);
  const logger = createLogger({ level: env.LOG_LEVEL, pretty });
  const channels = channelsFromEnv(env);
  let worker: Awaited<ReturnType<typeof startWorker>>;
  try {
    worker = await startWorker({ env, logger, channels });
  } catch (error) {
    await Promise.all(Object.values(channels).map((channel) => channel.close()));
    if (error instanceof StartupError) {
      io.err(`${error.message}\n`);
      return EXIT.invalid;
    }
    throw error;
  }
  process.on("SIGHUP", () => void worker.reload());
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      logger.info({ signal }, "shutting down");
      process.off("SIGTERM", stop);
      process.off("SIGINT", stop);
      void worker.close().then(resolve);
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
  logger.flush();
  return EXIT.ok;
}
