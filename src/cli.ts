#!/usr/bin/env node
import { Command, InvalidArgumentError } from "commander";
import { runCheck } from "./cli/check-command.js";
import { CommandError, EXIT, processIo } from "./cli/io.js";
import { runPlan } from "./cli/plan-command.js";
import { runPublish } from "./cli/publish-command.js";
import { type ReplanOptions, runReplan } from "./cli/replan-command.js";
import { type ReportOptions, runReport } from "./cli/report-command.js";
import { runSchedule, type ScheduleOptions } from "./cli/schedule-command.js";
import { runSimulate } from "./cli/simulate-command.js";
import { runWorker } from "./cli/worker-command.js";

/** The `followups` command: one binary for operators, publishers' shells and the container. */
const DEFAULT_CONFIG_DIR = process.env.CONFIG_DIR ?? "config";

function wholeNumber(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0)
    throw new InvalidArgumentError("expected a whole number of 0 or more");
  return value;
}

const program = new Command()
  .name("followups")
  .description("Turns purchase events into well-timed customer follow-ups.")
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
      process.exitCode = await runPlan(event, options, processIo);
    },
  );

program
  .command("simulate")
  .description(
    "plan every purchase in an NDJSON file and show the volume per week, channel and kind",
  )
  .argument("<purchases>", "one event per line (NDJSON), or - for standard input")
  .option(...configOption)
  .option("--json", "print the volumes as JSON")
  .action(async (file: string, options: { config: string; json?: boolean }) => {
    process.exitCode = await runSimulate(file, options, processIo);
  });

program
  .command("worker")
  .description(
    "consume purchase events, schedule follow-ups and send them when due (what npm start runs)",
  )
  .action(async () => {
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
  .action(async (options: ReportOptions) => {
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
    process.exitCode = await runReplan(options, processIo);
  });

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommandError) {
    process.stderr.write(`${error.message}\n`);
    process.exitCode = error.code;
  } else if (isCommanderExit(error)) {
    process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else {
    throw error;
  }
}

function isCommanderExit(error: unknown): error is { exitCode: number } {
  return typeof error === "object" && error !== null && "exitCode" in error && "code" in error;
}
