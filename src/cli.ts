#!/usr/bin/env node
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command, InvalidArgumentError } from "commander";
import type { CancelOptions } from "./cli/cancel-command.js";
import { disconnectCommandConnections, unansweredText } from "./cli/command-connections.js";
import type { CustomerOptions } from "./cli/customer-command.js";
import type { EraseOptions } from "./cli/erase-command.js";
import type { FailedOptions } from "./cli/failed-command.js";
import { CommandError, EXIT, processIo } from "./cli/io.js";
import type { MigrateOptions as MigrateCommandOptions } from "./cli/migrate-command.js";
import type { OptOutOptions } from "./cli/opt-out-command.js";
import { packageVersion } from "./cli/package-version.js";
import type { RefusedOptions } from "./cli/refused-command.js";
import type { ReplanOptions } from "./cli/replan-command.js";
import type { ReportOptions } from "./cli/report-command.js";
import type { ReshardOptions as ReshardCommandOptions } from "./cli/reshard-command.js";
import type { ScheduleOptions } from "./cli/schedule-command.js";
import type { SimulateOptions } from "./cli/simulate-command.js";
import { terminalText } from "./cli/terminal-text.js";
import { REFUSED_DEFAULT_LIMIT } from "./operations/refused-limits.js";
import { isRedisUnavailable, isWriteRefusal } from "./store/redis-errors.js";

// Each command's module (and the packages it needs: BullMQ, ioredis, Twilio, nodemailer, …) is
// loaded by its action, when that command runs: `--version`, `--help`, a usage error or `check`
// load none of the others'. What is imported above is what every command needs, kept light.

/** `--config`'s default: CONFIG_DIR, as the worker reads it, else `config` (also when empty). */
const DEFAULT_CONFIG_DIR = process.env.CONFIG_DIR || "config";

function wholeNumber(text: string): number {
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError("expected a whole number of 0 or more");
  return Number(text);
}

/** The `followups` command: one binary for operators, publishers' shells and the container. */
const program = new Command()
  .name("followups")
  .description("Turns purchase events into well-timed customer follow-ups.")
  .version(
    packageVersion(path.dirname(fileURLToPath(import.meta.url))),
    "-V, --version",
    "print the version and exit",
  )
  .showHelpAfterError()
  .exitOverride();

const configOption = [
  "--config <dir>",
  "directory holding rules.yaml and templates/",
  DEFAULT_CONFIG_DIR,
] as const;

program
  .command("check")
  .description("validate the rules and templates; list every problem with file, line and column")
  .option(...configOption)
  .action(async (options: { config: string }) => {
    const { runCheck } = await import("./cli/check-command.js");
    process.exitCode = await runCheck(options.config, processIo);
  });

program
  .command("plan")
  .description("show which follow-ups a purchase event would get, and exactly when")
  .argument("<event>", "a purchase.completed event as JSON, or - for standard input")
  .option(...configOption)
  .option("--now <iso>", "plan as if it were this instant (default: the current time)")
  .option(
    "--previous-purchases <n>",
    "the customer's earlier purchases, for repeat-customer rules",
    wholeNumber,
    0,
  )
  .option("--json", "print the plan as JSON")
  .action(
    async (
      event: string,
      options: { config: string; now?: string; json?: boolean; previousPurchases: number },
    ) => {
      const { runPlan } = await import("./cli/plan-command.js");
      process.exitCode = await runPlan(event, options, processIo);
    },
  );

program
  .command("simulate")
  .description(
    "plan every purchase in an NDJSON file, replay the follow-ups as the worker would send them " +
      "(send windows, grace periods, frequency caps, budgets), and show the volume per week, " +
      "channel and kind, and messages, SMS segments and cost per month and channel",
  )
  .argument("<purchases>", "one event per line (NDJSON), or - for standard input")
  .option(...configOption)
  .option("--json", "print the volumes and the delivery replay as JSON")
  .option(
    "--steps",
    "print every planned step as NDJSON instead (eventId, stepId, ruleId, kind, channel, dueAt, " +
      "localDueAt, segments, cost), streamed; no delivery replay, so memory stays bounded by " +
      "the number of customers",
  )
  .action(async (file: string, options: SimulateOptions) => {
    const { runSimulate } = await import("./cli/simulate-command.js");
    process.exitCode = await runSimulate(file, options, processIo);
  });

program
  .command("worker")
  .description(
    "consume purchase events, schedule follow-ups and send them when due (what npm start runs)",
  )
  .action(async () => {
    const { runWorker } = await import("./cli/worker-command.js");
    process.exitCode = await runWorker(processIo);
    // Everything is closed and the log flushed; a timer a library left behind (BullMQ's guard on
    // a blocking read Redis never answered) must not hold the exit past SHUTDOWN_TIMEOUT_MS.
    process.exit();
  });

program
  .command("publish")
  .description(
    "validate events and put them on the purchase-events queue (REDIS_URL, QUEUE_PREFIX)",
  )
  .argument("<events>", "a JSON event, a JSON array of events or NDJSON; - for standard input")
  .option(
    "--occurred-at <when>",
    "replace occurredAt: an ISO date-time, now, or -PT2H for two hours ago",
  )
  .option("--new-id", "append a random suffix to each event id (to publish a sample again)")
  .action(async (file: string, options: { occurredAt?: string; newId?: boolean }) => {
    const { runPublish } = await import("./cli/publish-command.js");
    process.exitCode = await runPublish(file, options, processIo);
  });

program
  .command("report")
  .description("owners' report figures for a period, from the ledger (REDIS_URL, QUEUE_PREFIX)")
  .option(...configOption)
  .option("--since <date>", "first local day, YYYY-MM-DD (default: 7 days before --until)")
  .option("--until <date>", "day after the last, YYYY-MM-DD (default: today)")
  .option("--timezone <zone>", "zone of the dates (default: the rules' default time zone)")
  .option("--format <format>", "text, json or csv", "text")
  .option("--json", "same as --format json")
  .action(async (options: ReportOptions) => {
    const { runReport } = await import("./cli/report-command.js");
    process.exitCode = await runReport(options, processIo);
  });

program
  .command("schedule")
  .description(
    "pending follow-ups by due date (rules' default time zone), channel and rule (REDIS_URL, QUEUE_PREFIX)",
  )
  .option(...configOption)
  .option("--days <n>", "how many days ahead, from today", "30")
  .option("--json", 'print {"days": [{"date", "channel", "ruleId", "count"}]}')
  .action(async (options: ScheduleOptions) => {
    const { runSchedule } = await import("./cli/schedule-command.js");
    process.exitCode = await runSchedule(options, processIo);
  });

program
  .command("replan")
  .description(
    "preview what a rules directory would do to the follow-ups waiting in the schedule (REDIS_URL, QUEUE_PREFIX)",
  )
  .option(...configOption)
  .option("--dry-run", "only show what would change (required: workers apply rules they load)")
  .option("--json", "print the preview as JSON")
  .action(async (options: ReplanOptions) => {
    const { runReplan } = await import("./cli/replan-command.js");
    process.exitCode = await runReplan(options, processIo);
  });

const byOption = [
  "--by <name>",
  "who does this, for the audit trail (default: your login name)",
] as const;

program
  .command("reshard")
  .description(
    "change the deployment's shard count (FOLLOW_UP_SHARDS) with every worker stopped: customers move to their new shard (REDIS_URL, QUEUE_PREFIX)",
  )
  .requiredOption("--to <n>", "the new shard count (1 to 1024)")
  .option("--dry-run", "count what would move, change nothing")
  .option("--json", "print what was moved as JSON")
  .option(...byOption)
  .action(async (options: ReshardCommandOptions) => {
    const { runReshard } = await import("./cli/reshard-command.js");
    process.exitCode = await runReshard(options, processIo);
  });

program
  .command("migrate")
  .description(
    "copy the deployment at REDIS_URL to another Redis (a Redis Cluster, say) with every worker stopped; workers then refuse the old one",
  )
  .requiredOption("--to-url <url>", "the new Redis (a cluster's nodes comma-separated)")
  .option("--to-cluster", "the new Redis is a Redis Cluster")
  .option("--dry-run", "count what would be copied, change nothing")
  .option("--json", "print what was copied as JSON")
  .option(...byOption)
  .action(async (options: MigrateCommandOptions) => {
    const { runMigrate } = await import("./cli/migrate-command.js");
    process.exitCode = await runMigrate(options, processIo);
  });

program
  .command("customer")
  .description(
    "a customer's timeline: purchases, each follow-up with state, due time, attempts, replies; opt-outs and operator actions",
  )
  .argument("[id]", "the customer id")
  .option("--email <address>", "every customer who used this email address")
  .option("--phone <e164>", "every customer who used this phone number")
  .option(...configOption)
  .option("--json", 'print the timeline as JSON ({"customers": [...]} for --email and --phone)')
  .action(async (id: string | undefined, options: CustomerOptions) => {
    const { runCustomer } = await import("./cli/customer-command.js");
    process.exitCode = await runCustomer(id, options, processIo);
  });

program
  .command("order")
  .description("the timeline of one order: its purchases and their follow-ups")
  .argument("<orderId>", "the order id")
  .option(...configOption)
  .option("--json", "print the timeline as JSON")
  .action(async (orderId: string, options: { config: string; json?: boolean }) => {
    const { runOrder } = await import("./cli/order-command.js");
    process.exitCode = await runOrder(orderId, options, processIo);
  });

program
  .command("cancel")
  .description(
    "cancel pending follow-ups of a step, an order or a customer (recorded with who and why)",
  )
  .option("--step <ref>", "one step: <eventId>/<stepId>, such as evt-123/big-ticket.check-in")
  .option("--order <id>", "every pending follow-up of an order")
  .option("--customer <id>", "every pending follow-up of a customer")
  .option("--reason <text>", "why, kept on each step and in the audit trail")
  .option(...byOption)
  .option(...configOption)
  .option("--json", 'print {"cancelled": [...], "inFlight": [...]}')
  .action(async (options: CancelOptions) => {
    const { runCancel } = await import("./cli/cancel-command.js");
    process.exitCode = await runCancel(options, processIo);
  });

program
  .command("resend")
  .description(
    "send a sent or failed follow-up again, deliberately and once (a running worker sends it)",
  )
  .requiredOption("--step <ref>", "the step: <eventId>/<stepId>")
  .option(...byOption)
  .option(...configOption)
  .option("--json", 'print {"ref", "jobId"}')
  .action(async (options: { config: string; step: string; by?: string; json?: boolean }) => {
    const { runResend } = await import("./cli/resend-command.js");
    process.exitCode = await runResend(options, processIo);
  });

program
  .command("failed")
  .description("failed follow-ups with reasons in plain words; --retry queues them again for real")
  .option("--since <date>", "failed on or after this day (YYYY-MM-DD, rules' time zone) or instant")
  .option("--channel <channel>", "email, sms or voice")
  .option("--retry", "put them back in the queue, attempts counted again")
  .option(
    "--wait <seconds>",
    "with --retry: wait this long and say how many went out or failed again (exit 1 when any did)",
  )
  .option(...byOption)
  .option(...configOption)
  .option("--json", 'print {"failed": [...]} (and "requeued", "refs", "outcome" with --retry)')
  .action(async (options: FailedOptions) => {
    const { runFailed } = await import("./cli/failed-command.js");
    process.exitCode = await runFailed(options, processIo);
  });

program
  .command("refused")
  .description(
    "events the worker refused, latest first, with every problem: invalid ones, and those whose intake failed on every attempt (REDIS_URL, QUEUE_PREFIX)",
  )
  .option("--limit <n>", "at most this many (1 to 10000)", String(REFUSED_DEFAULT_LIMIT))
  .option(...configOption)
  .option("--json", 'print {"refused": [{"eventId", "type", "refusedAt", "attempts", "reason"}]}')
  .action(async (options: RefusedOptions) => {
    const { runRefused } = await import("./cli/refused-command.js");
    process.exitCode = await runRefused(options, processIo);
  });

program
  .command("erase")
  .description(
    "right to erasure: delete a customer's personal data everywhere, keep anonymous counts and hashed opt-outs",
  )
  .argument("[id]", "the customer id")
  .option("--email <address>", "every customer who used this email address")
  .option("--phone <e164>", "every customer who used this phone number")
  .option(...byOption)
  .option(...configOption)
  .option("--json", 'print the receipt as JSON ({"receipts": [...]} for --email and --phone)')
  .action(async (id: string | undefined, options: EraseOptions) => {
    const { runErase } = await import("./cli/erase-command.js");
    process.exitCode = await runErase(id, options, processIo);
  });

program
  .command("opt-out")
  .description(
    "stop messaging a customer or an address, as a customer.unsubscribed event does (recorded with who)",
  )
  .argument("[id]", "the customer id (and the addresses of their purchases still kept)")
  .option("--email <address>", "this email address, whether or not a customer is known by it")
  .option("--phone <e164>", "this phone number, whether or not a customer is known by it")
  .option(
    "--channels <list>",
    "comma-separated: email, sms, voice (default: every channel the customer or address is reached on)",
  )
  .option("--offers-only", "stop offers (marketing steps) only, not every follow-up")
  .option(...byOption)
  .option(...configOption)
  .option(
    "--json",
    'print {"customer", "address", "channels", "purposes", "addressesCovered", "newlyOptedOut", "optedOutAt", "by"}',
  )
  .action(async (id: string | undefined, options: OptOutOptions) => {
    const { runOptOut } = await import("./cli/opt-out-command.js");
    process.exitCode = await runOptOut(id, options, processIo);
  });

program
  .command("resolve")
  .description("mark a customer's reply (a complaint) resolved, with a note; the reports count it")
  .argument("<replyId>", "<eventId>/<stepId>/<n>, as `customer` and the reports show it")
  .option("--note <text>", "what was done, kept with the reply and in the audit trail")
  .option(...byOption)
  .option(...configOption)
  .option("--json", 'print {"id", "resolvedAt", "by", "note"}')
  .action(
    async (
      replyId: string,
      options: { config: string; note?: string; by?: string; json?: boolean },
    ) => {
      const { runResolve } = await import("./cli/resolve-command.js");
      process.exitCode = await runResolve(replyId, options, processIo);
    },
  );

program
  .command("code")
  .description(
    "look a discount code up as a till would: valid, expired, redeemed (by which order) or unknown",
  )
  .argument("<code>", "the code, in any case, with or without hyphens")
  .option("--json", 'print {"code", "status", "percent", "validUntil", "redeemedBy"?}')
  .action(async (code: string, options: { json?: boolean }) => {
    const { runCode } = await import("./cli/code-command.js");
    process.exitCode = await runCode(code, options, processIo);
  });

program
  .command("demo")
  .description(
    "publish sample purchases (fresh ids every run), some due at once, and say what will happen and where to look",
  )
  .option(...configOption)
  .action(async (options: { config: string }) => {
    const { runDemo } = await import("./cli/demo-command.js");
    process.exitCode = await runDemo(options, processIo);
  });

// A reader that stops early (`simulate --steps … | head`, `code … --json | head -c 100`) closes
// the pipe: nothing more is wanted, so a one-shot command ends quietly instead of with an EPIPE
// stack trace. Not the worker: it logs through its own writer and keeps running.
program.hook("preAction", (_program, action) => {
  if (action.name() === "worker") return;
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    process.exit(EXIT.ok);
  });
});

try {
  await program.parseAsync(process.argv);
} catch (error) {
  // Named while the command's connections are known: Redis accepted the connection, then left
  // a command unanswered (frozen, or paused).
  const unanswered = unansweredText(error);
  // A connection the failed command still holds (to a frozen Redis: its socket open, nothing
  // answered) would keep the process from ending.
  disconnectCommandConnections();
  if (error instanceof CommandError) {
    process.stderr.write(terminalText(`${error.message}\n`));
    process.exitCode = error.code;
  } else if (isCommanderExit(error)) {
    process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else if (unanswered) {
    process.stderr.write(`${unanswered}\n`);
    process.exitCode = EXIT.invalid;
  } else if (isRedisUnavailable(error)) {
    // Redis went away or stopped serving mid-command (a full or unreachable server, a failover):
    // what failed, without a stack trace; a command stopped half-way can be run again.
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(
      isWriteRefusal(error)
        ? `followups: Redis refused a write during the command (${message}); it stopped there: free memory (maxmemory) or disk on the Redis, then run it again\n`
        : `followups: Redis stopped answering during the command (${message}); it stopped there: run it again once Redis answers\n`,
    );
    process.exitCode = EXIT.invalid;
  } else {
    throw error;
  }
}

function isCommanderExit(error: unknown): error is { exitCode: number } {
  return typeof error === "object" && error !== null && "exitCode" in error && "code" in error;
}
