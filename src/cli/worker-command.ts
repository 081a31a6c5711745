import { createRequire } from "node:module";
import { channelsFromEnv } from "../channels/channels-from-env.js";
import { readEnv } from "../config/env.js";
import {
  ADMIN_TOKEN_FILE,
  EMBEDDED_URL_FILE,
  type EmbeddedRedis,
  embeddedAdminToken,
  NoRedisError,
  redisAnswers,
  startEmbeddedRedis,
} from "../embedded-redis.js";
import { createLogger } from "../logger.js";
import { settlesWithin } from "../shutdown.js";
import { createTracing } from "../tracing.js";
import { StartupError, StartupStopped, startWorker } from "../worker.js";
import { type CommandIo, EXIT } from "./io.js";

/**
 * `followups worker`: validates the environment before connecting to anything, starts the
 * workers, reloads the config on SIGHUP and on file edits, and shuts down cleanly on SIGTERM/SIGINT.
 */
export async function runWorker(io: CommandIo): Promise<number> {
  // By default a SIGHUP ends a process: one sent while the worker starts (a deploy tool's reload
  // of a config just edited) is remembered and applied once it runs, as one sent later is.
  let reloadAsked = false;
  let onReload = () => {
    reloadAsked = true;
  };
  process.on("SIGHUP", () => onReload());
  // A SIGTERM or SIGINT while it starts (by default either ends the process at once, leaving an
  // embedded redis-server running) stops the start-up: what was opened is closed, and it exits 0.
  const starting = new AbortController();
  let stoppedBy: NodeJS.Signals | undefined;
  let onStop = (signal: NodeJS.Signals) => {
    stoppedBy ??= signal;
    starting.abort();
  };
  const stop = (signal: NodeJS.Signals) => onStop(signal);
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  const envResult = readEnv(process.env);
  if (!envResult.ok) {
    io.err(`invalid environment:\n${envResult.problems.map((p) => `  ${p}`).join("\n")}\n`);
    return EXIT.invalid;
  }
  let env = envResult.env;
  // pino-pretty is a development dependency: a production install (npm ci --omit=dev, the
  // image) writes JSON even to a terminal rather than fail to start.
  const pretty =
    (env.LOG_FORMAT ? env.LOG_FORMAT === "pretty" : Boolean(process.stdout.isTTY)) &&
    prettyPrinterInstalled();
  const logger = createLogger({ level: env.LOG_LEVEL, pretty });
  // REDIS_URL unset and nothing at the default address: a private redis-server from PATH.
  let embedded: EmbeddedRedis | undefined;
  const stoppedWhileStarting = async () => {
    await embedded?.stop();
    logger.info({ signal: stoppedBy }, "stopped while starting; nothing left running");
    logger.flush();
    return EXIT.ok;
  };
  if (!process.env.REDIS_URL && !(await redisAnswers(env.REDIS_URL))) {
    try {
      embedded = await startEmbeddedRedis(".", starting.signal);
    } catch (error) {
      if (error instanceof StartupStopped) return stoppedWhileStarting();
      if (!(error instanceof NoRedisError)) throw error;
      io.err(`${error.message}\n`);
      return EXIT.invalid;
    }
    logger.info(
      { redis: embedded.url, dir: embedded.dir },
      `REDIS_URL is unset and nothing answers at ${env.REDIS_URL}: started an embedded redis-server (stopped with the worker; other commands find it through ${EMBEDDED_URL_FILE})`,
    );
    const embeddedEnv = readEnv(
      withEmbeddedRedis(
        process.env,
        embedded.url,
        process.env.ADMIN_TOKENS ? undefined : await embeddedAdminToken(),
      ),
    );
    if (!embeddedEnv.ok) throw new Error(embeddedEnv.problems.join("; "));
    env = embeddedEnv.env;
  }
  const channels = channelsFromEnv(env);
  // Off (nothing loaded) unless OTEL_EXPORTER_OTLP_ENDPOINT is set; the worker flushes it on close.
  // A collector that is down costs the spans, not the worker: said at most once a minute.
  let lastSaid = 0;
  let dropped = 0;
  const tracing = await createTracing(env, ({ spans, reason }) => {
    dropped += spans;
    if (Date.now() - lastSaid < 60_000) return;
    logger.warn(
      { droppedSpans: dropped, reason },
      "traces could not be sent to OTEL_EXPORTER_OTLP_ENDPOINT and were dropped",
    );
    lastSaid = Date.now();
    dropped = 0;
  });
  let worker: Awaited<ReturnType<typeof startWorker>>;
  try {
    if (starting.signal.aborted) throw new StartupStopped();
    worker = await startWorker({ env, logger, channels, tracing, stop: starting.signal });
  } catch (error) {
    await Promise.all(Object.values(channels).map((channel) => channel.close()));
    // A collector that is down must not hide why the worker could not start, nor hold it up.
    await settlesWithin(tracing.shutdown(), env.SHUTDOWN_TIMEOUT_MS);
    if (error instanceof StartupStopped) return stoppedWhileStarting();
    await embedded?.stop();
    if (error instanceof StartupError) {
      io.err(`${error.message}\n`);
      return EXIT.invalid;
    }
    throw error;
  }
  if (embedded && worker.httpAddress && !process.env.ADMIN_TOKENS) {
    logger.info(
      { console: `${worker.httpAddress}/console/sign-in`, tokenFile: ADMIN_TOKEN_FILE },
      `console: open ${worker.httpAddress}/console/sign-in and sign in with the token in ${ADMIN_TOKEN_FILE}`,
    );
  }
  onReload = () => void worker.reload();
  if (reloadAsked && !stoppedBy) {
    logger.info("a SIGHUP came while the worker started: reloading the config");
    onReload();
  }
  await new Promise<void>((resolve) => {
    const shutDown = (signal: NodeJS.Signals) => {
      logger.info({ signal }, "shutting down");
      process.off("SIGTERM", stop);
      process.off("SIGINT", stop);
      void worker
        .close()
        .then(() => embedded?.stop())
        .then(resolve);
    };
    // A stop asked once the workers were checked: start-up finished, the worker closes now.
    if (stoppedBy) shutDown(stoppedBy);
    else onStop = shutDown;
  });
  logger.flush();
  return EXIT.ok;
}

/**
 * The environment of a worker on the embedded Redis: its URL, the HTTP server on the loopback
 * address unless HTTP_HOST names another (set empty, it counts as unset, as everywhere), and the
 * generated console token unless ADMIN_TOKENS gives the operators (`adminToken` undefined).
 */
export function withEmbeddedRedis(
  source: NodeJS.ProcessEnv,
  redisUrl: string,
  adminToken: string | undefined,
): NodeJS.ProcessEnv {
  return {
    ...source,
    REDIS_URL: redisUrl,
    HTTP_HOST: source.HTTP_HOST || "127.0.0.1",
    ...(adminToken !== undefined && { ADMIN_TOKENS: `admin:${adminToken}` }),
  };
}

/** Whether pino-pretty can be loaded (it is not installed with --omit=dev). */
function prettyPrinterInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve("pino-pretty");
    return true;
  } catch {
    return false;
  }
}
