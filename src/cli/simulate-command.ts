import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createInterface } from "node:readline";
import { DateTime } from "luxon";
import { describeProblems, parseEvent } from "../domain/events.js";
import { type PlannedStep, planFollowUps } from "../domain/planner.js";
import { hasCooldowns, type StepKind, underCooldown } from "../domain/rules.js";
import { formatTable } from "../reports/text-table.js";
import { loadRulesForCommand } from "./check-command.js";
import { CommandError, type CommandIo, EXIT } from "./io.js";

export interface SimulateOptions {
  readonly config: string;
  readonly json?: boolean;
}

interface BadLine {
  readonly line: number;
  readonly problem: string;
}

/** How many bad lines the readable report lists one by one. */
const LISTED_BAD_LINES = 20;

/**
 * `followups simulate PURCHASES.ndjson`: plans every purchase as if it had just arrived (now =
 * its occurredAt) and reports the resulting volume per ISO week, channel and kind. Earlier lines
 * of the same customer count as history, so repeat-customer rules fire as they would live. A line
 * the intake would refuse, such as one that happens more than a day from now, is a bad line.
 */
export async function runSimulate(
  file: string,
  options: SimulateOptions,
  io: CommandIo,
): Promise<number> {
  const rules = await loadRulesForCommand(options.config);
  const clockNow = DateTime.utc();
  const size = file === "-" ? undefined : await fileSize(file);
  const input = file === "-" ? process.stdin : createReadStream(file);
  const progress = size && io.interactive ? progressBar(size, io) : undefined;

  // Cooldowns need each customer's latest planned step per rule and kind, as the worker keeps them.
  const cooldowns = hasCooldowns(rules);
  const recentByCustomer = new Map<
    string,
    { byRule: Map<string, number>; byKind: Map<StepKind, number> }
  >();
  function rememberRecent(customerId: string, steps: readonly PlannedStep[]): void {
    if (steps.length === 0) return;
    const recent = recentByCustomer.get(customerId) ?? { byRule: new Map(), byKind: new Map() };
    for (const step of steps) {
      const at = Date.parse(step.dueAt);
      const held = underCooldown(rules, step);
      if (held.byRule && at >= (recent.byRule.get(step.ruleId) ?? 0))
        recent.byRule.set(step.ruleId, at);
      if (held.byKind && at >= (recent.byKind.get(step.kind) ?? 0))
        recent.byKind.set(step.kind, at);
    }
    recentByCustomer.set(customerId, recent);
  }

  const volume = new Map<string, number>();
  const purchasesByCustomer = new Map<string, number>();
  const bad: BadLine[] = [];
  let lineNumber = 0;
  let bytes = 0;
  let planned = 0;
  let fallbacks = 0;
  let purchases = 0;
  for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
    lineNumber++;
    bytes += Buffer.byteLength(line) + 1;
    if (lineNumber % 2000 === 0) progress?.update(bytes);
    if (line.trim() === "") continue;
    const problem = planLine(line);
    if (typeof problem === "string") bad.push({ line: lineNumber, problem });
  }
  progress?.done();

  function planLine(line: string): string | undefined {
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (error) {
      return `not valid JSON (${(error as Error).message})`;
    }
    const parsed = parseEvent(json, { now: clockNow });
    if (!parsed.ok) return describeProblems(parsed.problems).replaceAll("\n", "; ");
    const event = parsed.event;
    if (event.type !== "purchase.completed") return undefined;
    purchases++;
    const previousPurchases = purchasesByCustomer.get(event.customer.id) ?? 0;
    purchasesByCustomer.set(event.customer.id, previousPurchases + 1);
    const now = DateTime.fromISO(event.occurredAt, { setZone: true });
    const recent = cooldowns ? recentByCustomer.get(event.customer.id) : undefined;
    const plan = planFollowUps(event, rules, { previousPurchases, ...(recent && { recent }) }, now);
    if (cooldowns) rememberRecent(event.customer.id, plan.steps);
    for (const step of plan.steps) {
      // Sent only when its call is not answered, which no simulation can know: counted apart.
      if (step.fallbackOf) {
        fallbacks++;
        continue;
      }
      const week =
        DateTime.fromISO(step.dueAt, { zone: "utc" }).toISOWeekDate()?.slice(0, 8) ?? "?";
      const key = `${week}\t${step.channel}\t${step.kind}`;
      volume.set(key, (volume.get(key) ?? 0) + 1);
      planned++;
    }
    return undefined;
  }

  const weeks = [...volume.entries()]
    .map(([key, count]) => {
      const [week = "", channel = "", kind = ""] = key.split("\t");
      return { week, channel, kind, count };
    })
    .sort(
      (a, b) =>
        a.week.localeCompare(b.week) ||
        a.channel.localeCompare(b.channel) ||
        a.kind.localeCompare(b.kind),
    );

  if (options.json) {
    io.out(
      `${JSON.stringify({ lines: lineNumber, purchases, planned, fallbacks, invalid: bad, weeks }, null, 2)}\n`,
    );
  } else {
    io.out(
      `${purchases} purchases read from ${lineNumber} lines, ${planned} follow-ups planned${fallbacks > 0 ? ` (and ${fallbacks} fallbacks, sent only when a call is not answered)` : ""}\n\n`,
    );
    io.out(
      weeks.length === 0
        ? "No follow-ups planned.\n"
        : formatTable(
            ["WEEK", "CHANNEL", "KIND", "COUNT"],
            weeks.map((w) => [w.week, w.channel, w.kind, String(w.count)]),
          ),
    );
    if (bad.length > 0) {
      io.out(`\n${bad.length} bad line${bad.length === 1 ? "" : "s"} (not planned):\n`);
      for (const entry of bad.slice(0, LISTED_BAD_LINES))
        io.out(`  line ${entry.line}: ${entry.problem}\n`);
      if (bad.length > LISTED_BAD_LINES)
        io.out(`  … and ${bad.length - LISTED_BAD_LINES} more (use --json for all)\n`);
    }
  }
  return EXIT.ok;
}

async function fileSize(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CommandError(`${file}: ${code === "ENOENT" ? "file not found" : String(error)}`);
  }
}

function progressBar(total: number, io: CommandIo) {
  const width = 30;
  return {
    update(done: number) {
      const share = Math.min(1, done / total);
      const filled = Math.round(share * width);
      io.err(
        `\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${(share * 100).toFixed(0).padStart(3)}%`,
      );
    },
    done() {
      io.err(`\r${" ".repeat(width + 8)}\r`);
    },
  };
}
